"""The sweep: the paper's protocol on Ray Tune + Optuna, tracked in MLflow (``python -m chromtune.sweep``).

``plan``    flags -> a validated SweepPlan (before Ray or MLflow start)
``stage``   one (fold, stage) Tune experiment, its Tune trainable and the selection of its best trial
``fold``    the fold driver: stage 1, stage 2, the test evaluation; the sweep over folds
"""
