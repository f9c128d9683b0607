"""chromtune: the ChromDragoNN experimental protocol as a Ray Tune + Optuna + MLflow orchestrator.

Layers (each a subpackage or module, kept apart): ``data`` (genome, data set file, folds,
sampling, demo), ``models`` (trunks, heads, registry), ``train`` (per-worker loop, metrics,
baselines, evaluation), ``sweep`` (Ray Tune searches over folds and stages), ``tracking`` (MLflow).
"""

__version__ = "0.1.0"
