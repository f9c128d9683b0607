"""The sweep: the paper's protocol on Ray Tune + Optuna, tracked in MLflow (``python -m chromtune.sweep``;
the command itself is :mod:`chromtune.cli.sweep`).

``plan``     flags -> a validated SweepPlan (before Ray or MLflow start)
``driver``   one or several sweeps from start or --resume to the end: lease, signals, folds, summary
``fold``     the fold driver: stage 1, stage 2, the test evaluation; a fold in a process of its own
``stage``    one (fold, stage) Tune experiment, its Tune trainable, the selection of its best trial, pruning
``progress`` the live status line and its events (from fold processes through a queue)
``summary``  the per-fold table, the selected models, the next commands, the storage size
``lease``    one driver per sweep: a lease object in the sweep's storage
``signals``  SIGINT/SIGTERM: a resumable stop, and an immediate exit on the second
``search_space``  the search-space YAML files: schema, loading, Optuna samplers
``ray_runtime``   starting Ray, the cluster's capacity, the resource and shared-storage checks
"""
