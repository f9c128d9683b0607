"""chromtune: the ChromDragoNN experimental protocol as a Ray Tune + Optuna + MLflow orchestrator.

Layers (each a subpackage or module, kept apart): ``io`` (the outside world's formats), ``data``
(genome, data set file, folds, sampling, demo), ``models`` (trunks, heads, registry), ``train``
(per-worker loop, metrics, baselines, evaluation), ``predict`` (the Predictor), ``variants``,
``interpret``, ``sweep`` (Ray Tune searches over folds and stages), ``compare``, ``tracking``
(MLflow), ``cli`` (the commands).

From Python (README "From Python"): :func:`train_fold`, :class:`Predictor`, :func:`predict_variant_effects`,
:func:`interpret_cells` (:mod:`chromtune.api`), imported on first use so ``import chromtune`` stays light.
"""

__version__ = "0.1.0"

_API = ("Predictor", "interpret_cells", "predict_variant_effects", "train_fold")


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'chromtune' has no attribute {name!r}")
    from chromtune import api

    return getattr(api, name)


def __dir__():
    return sorted([*globals(), *_API])
