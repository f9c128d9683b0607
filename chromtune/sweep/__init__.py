"""The sweep: the paper's protocol on Ray Tune + Optuna, tracked in MLflow (``python -m chromtune.sweep``;
the command itself is :mod:`chromtune.cli.sweep`).

``settings`` a sweep's settings (keyword arguments or flags) and the flags that repeat them
``plan``     settings -> a validated SweepPlan (before Ray or MLflow start)
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

from __future__ import annotations

from typing import Sequence


def sweep(arch: str | Sequence[str] = "resnet", paradigm: str | Sequence[str] = "tune", **settings) -> dict:
    """Run the sweep (one per architecture x paradigm, then their comparison) as ``chromtune sweep``
    does, from keyword arguments named as its flags (``folds=5, data="data.h5", seed=0,
    smoke_test=True, valid_pairs=None, ...``; chromtune.sweep.settings.SweepSettings lists them).
    Returns each finished sweep's per-fold summary table (a pandas DataFrame) by sweep key. A bad
    setting raises chromtune.errors.UserError; a stop (Ctrl-C) raises Interrupted, after the line
    saying how to continue (``resume=True``)."""
    from chromtune.sweep.driver import run_sweeps
    from chromtune.sweep.settings import each_sweep
    from chromtune.sweep.signals import Interrupted

    code, tables = run_sweeps(each_sweep(arch, paradigm, **settings))
    if code:
        raise Interrupted("the sweep stopped before its end; run it again with resume=True to continue")
    return tables
