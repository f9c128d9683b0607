"""The sweep: the paper's protocol on Ray Tune + Optuna, tracked in MLflow (``python -m chromtune.sweep``;
the command itself is :mod:`chromtune.cli.sweep`).

``plan``     flags -> a validated SweepPlan (before Ray or MLflow start)
``driver``   one or several sweeps from start or --resume to the end: lease, signals, folds, summary
``fold``     the fold driver: stage 1, stage 2, the test evaluation; a fold in a process of its own
``stage``    one (fold, stage) Tune experiment, its Tune trainable and the selection of its best trial
``lease``    one driver per sweep: a lease object in the sweep's storage
``signals``  SIGINT/SIGTERM: a resumable stop, and an immediate exit on the second
"""
