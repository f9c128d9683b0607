"""Reading finished sweeps from MLflow: sweep and fold runs, their test metrics and artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from chromtune.compare.names import BASELINES, METRICS
from chromtune.errors import UserError

BASELINE_TOLERANCE = 1e-6  # two sweeps' baseline values for one fold further apart: different test pairs


@dataclass
class Sweep:
    """One sweep run and its FINISHED fold runs (fold index -> run); ``problem`` says why it cannot be
    compared (a tag or param missing: its driver died while creating it)."""

    key: str
    run_id: str
    arch: str
    paradigm: str
    mean: bool
    n_folds: int
    smoke: bool
    problem: str = ""
    folds: dict = field(default_factory=dict)
    mean_feature: str = "reference"
    seed: int = 0
    precision: str = "fp32"
    pairs_per_bin: int = 1
    repeats: list = field(default_factory=list)  # the same sweep at other seeds (``--seeds``)

    @property
    def label(self) -> str:
        """e.g. ``resnet+mean (tune)``; ``resnet+mean[loo] (tune)`` when training pairs' mean feature
        left their own label out (``--mean-feature loo``); ``resnet+mean (tune, bf16)`` when it trained
        in bf16, so the two precisions are compared as two models; ``resnet+mean (tune, 4 pairs/bin)`` when
        its stage-2 training pairs came grouped by bin (``--pairs-per-bin 4``)."""
        loo = "[loo]" if self.mean and self.mean_feature == "loo" else ""
        bf16 = ", bf16" if self.precision == "bf16" else ""
        grouped = f", {self.pairs_per_bin} pairs/bin" if self.pairs_per_bin > 1 else ""
        return f"{self.arch}{'+mean' if self.mean else ''}{loo} ({self.paradigm}{bf16}{grouped})"

    @property
    def complete(self) -> bool:
        return set(self.folds) >= set(range(self.n_folds))


# ---------------------------------------------------------------------------------------------------
# Finding the sweeps

def open_experiment(tracking_uri: str, experiment: str):
    """(client, experiment id) of an existing store and experiment; never creates either."""
    from mlflow.exceptions import MlflowException

    from chromtune import tracking

    tracking.require_store(tracking_uri, "run a sweep first, or give its URI")
    try:
        client = tracking.client(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        names = [e.name for e in client.search_experiments()] if found is None else []
    except MlflowException as err:
        raise UserError(f"--tracking-uri {tracking_uri}: {str(err).splitlines()[0]}") from err
    if found is None:
        raise UserError(f"--experiment {experiment}: no such experiment in {tracking_uri}; "
                        f"there: {', '.join(names) or 'none'}")
    return client, found.experiment_id


def _search(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def find_sweeps(client, experiment_id: str) -> dict[str, Sweep]:
    """Every sweep run of the experiment (by its tags), with its finished fold runs."""
    sweeps = {}
    for run in _search(client, experiment_id, "tags.`chromtune.level` = 'sweep'"):
        tags, params = run.data.tags, run.data.params
        key = tags.get("chromtune.sweep", run.info.run_id)
        missing = [f"tag {t}" for t in ("arch", "paradigm", "mean") if t not in tags]
        missing += [f"param {p}" for p in ("folds",) if p not in params]
        sweeps[key] = Sweep(key, run.info.run_id, tags.get("arch", "?"), tags.get("paradigm", "?"),
                            tags.get("mean") == "True", int(params.get("folds", 0)), params.get("smoke_test") == "True",
                            f"sweep run {run.info.run_id} lacks {', '.join(missing)}" if missing else "",
                            mean_feature=params.get("mean_feature", "reference"),  # sweeps before it: the reference's
                            seed=int(params.get("seed", 0)), precision=params.get("precision", "fp32"),
                            pairs_per_bin=int(params.get("pairs_per_bin", 1)))
    finished = _search(client, experiment_id, "tags.`chromtune.level` = 'fold' and attributes.status = 'FINISHED'")
    for run in sorted(finished, key=lambda r: r.info.end_time or 0):  # a later duplicate wins
        sweep = sweeps.get(run.data.tags.get("chromtune.sweep"))
        if sweep is not None and "fold" in run.data.tags:
            sweep.folds[int(run.data.tags["fold"])] = run
    return sweeps


def select_sweeps(sweeps: dict[str, Sweep], keys: list[str] | None, allow_partial: bool,
                  where: str) -> tuple[list[Sweep], list[str]]:
    """The sweeps to compare and a note per sweep left out (see the module docstring for the rules)."""
    ready = (lambda s: not s.problem and bool(s.folds)) if allow_partial else (lambda s: not s.problem and s.complete)
    if keys:
        unknown = [k for k in keys if k not in sweeps]
        if unknown:
            raise UserError(f"--sweep {unknown[0]}: no such sweep in {where}; "
                            f"there: {', '.join(sorted(sweeps)) or 'none'}")
        chosen = [sweeps[k] for k in dict.fromkeys(keys)]
        for sweep in chosen:
            if sweep.problem:
                raise UserError(f"--sweep {sweep.key}: {sweep.problem}")
            if not ready(sweep):
                raise UserError(f"--sweep {sweep.key}: {_progress(sweep)}; wait for it"
                                + ("" if allow_partial else ", or pass --allow-partial to compare on the common folds"))
        left_out = []
    else:
        chosen = [s for s in sweeps.values() if ready(s)]
        left_out = [f"{s.key}: {s.problem or _progress(s)}" for s in sweeps.values() if not ready(s)]
        if any(not s.smoke for s in chosen):
            left_out += [f"{s.key}: smoke test (full sweeps exist)" for s in chosen if s.smoke]
            chosen = [s for s in chosen if not s.smoke]
        if not chosen:
            raise UserError(f"no finished sweep in {where}"
                            + (f" ({'; '.join(left_out)})" if left_out else "; run `chromtune sweep` first"))
    by_model: dict[str, Sweep] = {}
    for sweep in sorted(chosen, key=lambda s: (s.arch, s.paradigm, not s.mean, s.seed, s.key)):
        other = by_model.setdefault(sweep.label, sweep)
        if other is not sweep and _seed_repeat(other, sweep):  # compared at its first seed; all in seeds.csv
            other.repeats.append(sweep)
        elif other is not sweep:
            raise UserError(f"sweeps {other.key} and {sweep.key} are both {sweep.label}; choose one with --sweep")
    return list(by_model.values()), left_out


def _seed_repeat(first: Sweep, other: Sweep) -> bool:
    """``other`` is ``first`` at another seed (its key: ``first``'s with another ``-s<seed>``)."""
    split = f"-k{other.n_folds}-s"
    return other.seed != first.seed and other.key.replace(f"{split}{other.seed}", f"{split}{first.seed}", 1) == first.key


def _progress(sweep: Sweep) -> str:
    done = ", ".join(map(str, sorted(sweep.folds))) or "none"
    return f"{len(sweep.folds)} of {sweep.n_folds} folds finished (done: {done})"


def common_folds(sweeps: list[Sweep]) -> list[int]:
    folds = sorted(set.intersection(*(set(s.folds) for s in sweeps)))
    if not folds:
        raise UserError("--allow-partial: the selected sweeps have no finished fold in common: "
                        + "; ".join(f"{s.key} {_progress(s)}" for s in sweeps))
    return folds


# ---------------------------------------------------------------------------------------------------
# Reading the fold runs

def fold_scores(sweeps: list[Sweep], folds: list[int]) -> pd.DataFrame:
    """Long table (row, fold, metric, value) of the models and both baselines; baselines must agree
    across sweeps (same test pairs). A metric the fold run lacks is nan (MLflow holds no NaN)."""
    records, baseline_from = [], {}
    for sweep in sweeps:
        for fold in folds:
            run = sweep.folds[fold]
            values = run.data.metrics
            if "test_model_auprc" not in values:
                raise UserError(f"sweep {sweep.key} fold {fold} (run {run.info.run_id}): no test metrics "
                                f"(test_model_auprc missing)")
            for name, row in [("model", sweep.label), *BASELINES.items()]:
                for metric in METRICS:
                    value = values.get(f"test_{name}_{metric}", np.nan)  # the sweep logs no NaN
                    if name != "model":
                        first = baseline_from.setdefault((name, fold, metric), (sweep.key, value))
                        if abs(first[1] - value) > BASELINE_TOLERANCE:
                            raise UserError(f"fold {fold}: sweeps {first[0]} and {sweep.key} disagree on the {row}'s "
                                            f"{metric} ({first[1]:.6f} vs {value:.6f}); different test pairs")
                        if first[0] != sweep.key:
                            continue
                    records.append({"row": row, "fold": fold, "metric": metric, "value": value})
    return pd.DataFrame(records)


def read_artifact(run, name: str, folder: Path) -> Path:
    """Download one artifact of a fold run (straight from its artifact URI); a clear error when it is missing."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        return Path(get_artifact_repository(run.info.artifact_uri).download_artifacts(name, str(folder)))
    except (MlflowException, OSError) as err:
        raise UserError(f"fold run {run.info.run_id} ({run.data.tags.get('chromtune.sweep')} fold "
                        f"{run.data.tags.get('fold')}): artifact {name} cannot be read: "
                        f"{str(err).splitlines()[0]}") from err


@dataclass
class FoldDetails:
    """What the fold runs' metrics.json add to their logged metrics.

    binned            (row, fold, lo, hi, n_pairs, auprc): AUPRC by fraction of accessible training cell types
    cells             (row, fold, cell_type, metric, value): per-test-cell-type AUPRC and AUROC
    test_train_ratio  mean over folds of (test cell types / training cell types), the overlap correction
                      of the corrected and Bayesian t-tests
    """

    binned: pd.DataFrame
    cells: pd.DataFrame
    test_train_ratio: float


def read_fold_metrics(sweeps: list[Sweep], folds: list[int], folder: Path) -> FoldDetails:
    """The binned and per-cell-type tables from the fold runs' metrics.json, after checking that every
    sweep tested the same cell types in each fold."""
    test_cells, binned, per_cell, ratios = {}, [], [], {}
    for sweep in sweeps:
        for fold in folds:
            run = sweep.folds[fold]
            target = folder / sweep.run_id / str(fold)
            target.mkdir(parents=True)
            metrics = json.loads(read_artifact(run, "metrics.json", target).read_text())
            try:
                order = list(metrics["split"]["test"])
                ratios[fold] = len(order) / len(metrics["split"]["train"])
                tests = metrics["test"]
            except (KeyError, TypeError, ZeroDivisionError) as err:
                raise UserError(f"fold run {run.info.run_id} ({sweep.key} fold {fold}): metrics.json lacks "
                                f"'split.test', 'split.train' or 'test'") from err
            cells = sorted(order)
            first = test_cells.setdefault(fold, (sweep.key, cells))
            if first[1] != cells:
                raise UserError(f"fold {fold}: sweeps {first[0]} and {sweep.key} tested different cell types "
                                f"(different splits or seeds); compare sweeps of one split with --sweep")
            names = [("model", sweep.label)] + (list(BASELINES.items()) if first[0] == sweep.key else [])
            for name, row in names:
                for b in tests.get(name, {}).get("binned", []):
                    binned.append({"row": row, "fold": fold, "lo": b["lo"], "hi": b["hi"],
                                   "n_pairs": b["n_pairs"], "auprc": b["auprc"]})
                for metric, values in tests.get(name, {}).get("per_cell", {}).items():
                    per_cell += [{"row": row, "fold": fold, "cell_type": cell, "metric": metric,
                                  "value": np.nan if v is None else float(v)} for cell, v in zip(order, values)]
    return FoldDetails(pd.DataFrame(binned, columns=["row", "fold", "lo", "hi", "n_pairs", "auprc"]),
                       pd.DataFrame(per_cell, columns=["row", "fold", "cell_type", "metric", "value"]),
                       float(np.mean(list(ratios.values()))))


def pr_points(sweeps: list[Sweep], fold: int, folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Row label -> (recall, precision, AUPRC) on one fold: every model, and both baselines once."""
    curves = {}
    for sweep in sweeps:
        run = sweep.folds[fold]
        target = folder / f"pr-{sweep.run_id}"
        target.mkdir(parents=True)
        path = read_artifact(run, "pr_curves.npz", target)
        with np.load(path) as npz:
            for name, row in [("model", sweep.label), *BASELINES.items()]:
                if row in curves:
                    continue
                if f"{name}_recall" not in npz or f"{name}_precision" not in npz:
                    raise UserError(f"fold run {run.info.run_id} ({sweep.key} fold {fold}): pr_curves.npz lacks "
                                    f"{name}_recall / {name}_precision")
                curves[row] = (npz[f"{name}_recall"], npz[f"{name}_precision"],
                               run.data.metrics.get(f"test_{name}_auprc", np.nan))
    return curves


def default_experiment(data: str | None) -> str:
    """The sweep's default experiment name: chromtune-<data set file stem>, the demo's without --data."""
    if data:
        return f"chromtune-{Path(data).stem}"
    from chromtune.data.demo import cache_file

    return f"chromtune-{Path(cache_file(0)).stem}"
