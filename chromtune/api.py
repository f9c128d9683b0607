"""The functions a notebook calls (exported by ``chromtune``): train one fold's two stages, load a model
into a :class:`~chromtune.predict.predictor.Predictor`, variant effects as a DataFrame, interpretation.
Each takes keyword arguments; the commands of :mod:`chromtune.cli` are thin layers over the same code."""

from __future__ import annotations

import os
from pathlib import Path

from chromtune.errors import UserError
from chromtune.interpret.pipeline import interpret_cells
from chromtune.predict.predictor import Predictor
from chromtune.train.config import STAGE_DEFAULTS, TrainConfig, config_values
from chromtune.variants.run import predict_variant_effects

__all__ = ["Predictor", "interpret_cells", "predict_variant_effects", "train_fold"]



def train_fold(out: str | os.PathLike, *, data: str | os.PathLike | None = None, stage1: dict | None = None,
               stage2: dict | None = None, workers: int = 0, cpus_per_worker: float = 1, gpu: bool = False,
               address: str | None = None, resume: bool = False, **settings) -> Path:
    """Train one fold as ``chromtune train --stage 1`` then ``--stage 2 --init OUT/stage1 --evaluate-test``
    do: stage 1 into ``OUT/stage1``, stage 2 into ``OUT/stage2``; returns ``OUT/stage2``, the run folder that
    :meth:`Predictor.load` takes (its ``metrics.json`` holds the test metrics).

    `data`: the data set file (default: the embedded demo). `settings`: :class:`TrainConfig` fields for
    both stages (``arch``, ``fold``, ``folds``, ``epochs``, ``samples_per_epoch``, ``width``, ``seed``, ...);
    `stage1` / `stage2`: fields for one stage only (``lr``, ``batch_size``, ``head``, ``paradigm``,
    ``with_mean``, ...). ``workers=0`` trains in this process; more train through Ray Train on a private
    local Ray (or the cluster at `address`), as the command does.
    """
    from chromtune.train.runner import run_training

    unknown = sorted(set(settings) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise UserError(f"train_fold: unknown setting(s) {', '.join(unknown)}")
    out = Path(out).expanduser().absolute()
    base = config_values(None if data is None else os.fspath(data), cpus_per_worker, **settings)

    def start():
        from chromtune.errors import handle_stop_signals
        from chromtune.sweep.ray_runtime import check_resources, start_ray

        start_ray(address)
        handle_stop_signals()  # ray.init replaced SIGTERM's handler
        check_resources(workers, cpus_per_worker, 1 if gpu else 0)
    runs = {1: out / "stage1", 2: out / "stage2"}
    for stage, extra in ((1, stage1 or {}), (2, {"init": str(runs[1]), "evaluate_test": True, **(stage2 or {})})):
        cfg = TrainConfig(**{**STAGE_DEFAULTS[stage], **base, **extra, "stage": stage})
        run_training(cfg, runs[stage], workers, gpu, cpus_per_worker, resume, start=start)
    return runs[2]
