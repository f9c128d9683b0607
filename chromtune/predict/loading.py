"""Loading a stage-2 model from what a user names: a checkpoint file, a run folder, a fold run's MLflow
id (its artifact ``best.pt`` downloaded) or a sweep run's id (every finished fold's model)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from torch import nn

from chromtune.errors import UserError
from chromtune.models import Stage2Model
from chromtune.models.checkpoint import load_model

RUN_ID = re.compile(r"[0-9a-f]{32}")


def load_one(source: str, tracking_uri: str | None = None) -> tuple[nn.Module, dict]:
    """A stage-2 model in eval mode (on the CPU) and its checkpoint's metadata (all but the weights).

    `source` is a checkpoint file, a run folder holding ``best.pt``, or an MLflow run id whose
    artifact ``best.pt`` is downloaded from `tracking_uri`. The metadata gains ``source`` and, for a
    run id, ``run_id``; ``checkpoint`` is the file's absolute path (``runs:/ID/best.pt`` for a run).
    Anything unusable is a one-line :class:`UserError`.
    """
    source = str(source)
    path = Path(source)
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise UserError(f"--model {source}: the folder holds no best.pt")
        return _load_checkpoint(path / "best.pt", source)
    if path.is_file():
        return _load_checkpoint(path, source)
    if RUN_ID.fullmatch(source):
        with tempfile.TemporaryDirectory(prefix="chromtune-predict-") as tmp:
            model, meta = _load_checkpoint(_download_checkpoint(source, tracking_uri, tmp), source)
        meta.update(run_id=source, checkpoint=f"runs:/{source}/best.pt")
        return model, meta
    raise UserError(f"--model {source}: no such checkpoint file or run folder, and not an MLflow run id "
                    "(32 hex digits)")


def load_all(source: str, tracking_uri: str | None = None) -> list[tuple[nn.Module, dict]]:
    """The models `source` names: every finished fold's selected model (in fold order) when it is a
    sweep's MLflow run id, else the one model of :func:`load_one`. An ensemble's members must share
    genes and expression transform."""
    source = str(source)
    folds = _sweep_folds(source, tracking_uri) if RUN_ID.fullmatch(source) and not Path(source).exists() else None
    if folds is None:
        return [load_one(source, tracking_uri)]
    members = [load_one(run_id, tracking_uri) for run_id in folds]
    for model, meta in members[1:]:
        for key in ("genes", "expression_transform"):
            if meta[key] != members[0][1][key]:
                raise UserError(f"--model {source}: the sweep's fold models differ in {key}; predict with one "
                                "fold's run id")
    return members


def _sweep_folds(run_id: str, tracking_uri: str | None) -> list[str] | None:
    """Run ids of a sweep run's FINISHED fold runs in fold order; None when `run_id` is no sweep run."""
    from chromtune import tracking  # imported here: only a run id needs MLflow (slow)

    tracking_uri = tracking_uri or tracking.DEFAULT_TRACKING_URI
    if tracking_uri.startswith(tracking.SQLITE) and not Path(tracking_uri[len(tracking.SQLITE):]).is_file():
        return None  # load_one says what is missing
    from mlflow.exceptions import MlflowException

    client = tracking.client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    if run.data.tags.get("chromtune.level") != "sweep":
        return None
    folds = client.search_runs([run.info.experiment_id], max_results=10_000, filter_string=(
        f"tags.`{tracking.PARENT_TAG}` = '{run_id}' and tags.`chromtune.level` = 'fold' "
        "and attributes.status = 'FINISHED'"))
    if not folds:
        raise UserError(f"--model {run_id}: a sweep run with no finished fold; wait for one, or name a fold's run id")
    return [r.info.run_id for r in sorted(folds, key=lambda r: int(r.data.tags.get("fold", 0)))]


def _load_checkpoint(path: Path, source: str) -> tuple[nn.Module, dict]:
    try:
        model, checkpoint = load_model(path)
    except ValueError as err:
        raise UserError(f"--model {err}") from None
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    if not isinstance(model, Stage2Model):
        raise UserError(f"--model {source}: a stage-{model.config.get('stage')} model; predict needs a stage-2 "
                        "(sequence + expression) model such as a sweep's selected model")
    missing = [k for k in ("genes", "expression_transform") if k not in meta]
    if missing and "train_cells" in meta:
        raise UserError(f"--model {source}: an epoch checkpoint of a training run, written by a chromtune that kept "
                        f"no gene list in it; {_finished_run(path)}")
    if missing:
        raise UserError(f"--model {source}: the checkpoint lacks {' and '.join(missing)} (written by an older "
                        "chromtune?); use the best.pt of a `chromtune train` run or a sweep's fold run")
    if len(meta["genes"]) != model.config["n_genes"]:
        raise UserError(f"--model {source}: the checkpoint names {len(meta['genes'])} genes but the model takes "
                        f"{model.config['n_genes']}")
    meta.update(source=str(source), checkpoint=str(path.resolve()))
    return model.eval(), meta


def _finished_run(path: Path) -> str:
    """Which file to give instead of an old epoch checkpoint ``RUN/ray/train/epoch_N/best.pt``."""
    parts = path.resolve().parts
    if len(parts) < 5 or parts[-4:-2] != ("ray", "train"):
        return "give the best.pt of the run folder (written when the run ends) or a sweep's fold run id"
    run = Path(*parts[:-4])
    if (run / "best.pt").is_file():
        return f"give the run folder {run} (its best.pt holds the genes) instead"
    return (f"finish the run with `chromtune train --resume --out {run}` and its other flags, then give that "
            "folder")


def _download_checkpoint(run_id: str, tracking_uri: str | None, folder: str) -> Path:
    """The run's artifact ``best.pt``, downloaded into `folder`."""
    from chromtune import tracking  # imported here: only a run id needs MLflow (slow)

    tracking_uri = tracking.require_store(tracking_uri, "a sweep writes sqlite:///mlflow.db in the folder it ran in")
    from mlflow.exceptions import MlflowException

    try:
        tracking.client(tracking_uri).get_run(run_id)
    except MlflowException:
        raise UserError(f"--model {run_id}: no such run in the MLflow store {tracking_uri}") from None
    try:
        return tracking.download_artifact(run_id, "best.pt", folder, tracking_uri)
    except (MlflowException, OSError):
        raise UserError(f"--model {run_id}: the run has no artifact best.pt; use a sweep's fold run "
                        "(tag chromtune.level=fold), which holds the selected model") from None
