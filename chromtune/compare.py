"""``python -m chromtune.compare``: compare finished sweeps from MLflow — table, Wilcoxon tests, figures, report.

    python -m chromtune.compare                          # every finished sweep of the demo's experiment
    python -m chromtune.compare --data data.h5           # the experiment of data.h5: chromtune-data
    python -m chromtune.compare --sweep KEY --sweep KEY  # exactly these sweeps
    python -m chromtune.compare --pair "resnet+mean (tune)" "basset+mean (tune)"

Input is MLflow only (the store and experiment a sweep writes; same defaults). A *model* is one
(architecture, paradigm, mean feature) — one sweep — labelled like ``resnet+mean (tune)``; the two
baselines come from the same fold runs. Only FINISHED fold runs count.

Which sweeps (documented choice):
- ``--sweep KEY`` (repeatable): exactly those; each must have all its folds finished
  (``--allow-partial``: at least one).
- default: every sweep run of the experiment whose folds have all finished (``--allow-partial``:
  at least one). Smoke-test sweeps are left out when any full sweep qualifies, so the two are
  never mixed. Sweeps left out are named on stdout and in the report.
Two selected sweeps of one model, or folds whose test cell types (or baseline values) differ
between sweeps, are one-line errors. ``--allow-partial`` compares on the folds every selected
sweep has finished.

Outputs, in ``--out`` (default ``comparison/<experiment>``), each written atomically, and all
logged as artifacts of a new MLflow run named ``comparison`` (tag ``chromtune.level=comparison``)
in the same experiment, whose tags, params and description link the sweep runs used:

    table.csv           one row per (metric, model or baseline): fold 0..K-1, mean, sd
    tests.csv           one-sided Wilcoxon signed-rank tests of the chosen pairs (n, statistic, p, method, note)
    binned_auprc.csv    test AUPRC per fold and per bin of the fraction of accessible training cell types
    report.md           the tables in Markdown, the tests, the figures, the sweeps used
    paired_folds.png    per-fold paired lines across models (paper Fig. 1D)
    bars.png            mean +- sd test AUPRC / AUROC across models and paradigms (Fig. 1C)
    binned_auprc.png    AUPRC by fraction of accessible training cell types, mean over folds (Fig. 1E)
    pr_curves.png       precision-recall curves of every model and both baselines on one fold

Shape contracts: ``scores`` is long — one row per (row label, fold, metric) with its value; the
table pivots it to (metric, row) x folds. Wilcoxon inputs are two equal-length (n_folds,) vectors
paired by fold.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import pandas as pd
from scipy import stats

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path, write_text  # noqa: E402
from chromtune.errors import UserError, run_cli  # noqa: E402

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
METRICS = ("auprc", "auroc", "auprc_mean_per_cell", "auroc_mean_per_cell")
METRIC_LABELS = {"auprc": "test AUPRC (pooled)", "auroc": "test AUROC (pooled)",
                 "auprc_mean_per_cell": "test AUPRC (mean per cell type)",
                 "auroc_mean_per_cell": "test AUROC (mean per cell type)"}
BASELINES = {"mean_baseline": "mean baseline", "weighted_mean_baseline": "RNA-weighted mean baseline"}
BASELINE_TOLERANCE = 1e-6  # two sweeps' baseline values for one fold further apart: different test pairs
EXACT_MAX_N = 50  # scipy's exact null distribution is used up to here (no ties, no zeros)
PERMUTATION_MAX_N = 13  # with ties or zeros: all 2^n sign flips, still exact and deterministic
PAPER = ("Paper (Nair et al. 2019, fixed split, test AUPRC / AUROC): ResNet+mean 0.76 / 0.954; "
         "Factorized 0.69 / 0.937; Basset+expr 0.656; Factorized+expr 0.692; ResNet+expr 0.700; "
         "mean baseline 0.579 / 0.902; RNA-weighted mean baseline 0.587 / 0.903.")
FIGURES = ("paired_folds.png", "bars.png", "binned_auprc.png", "pr_curves.png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chromtune compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow tracking URI (default %(default)s)")
    p.add_argument("--experiment", help="MLflow experiment (default: chromtune-<data set name>, as the sweep's)")
    p.add_argument("--data", help="data set file whose default experiment to use (default: the embedded demo)")
    p.add_argument("--sweep", dest="sweeps", action="append", metavar="KEY",
                   help="a sweep key to compare (repeatable; default: every finished sweep, see above)")
    p.add_argument("--allow-partial", action="store_true",
                   help="include sweeps with some folds unfinished; compare on the folds all have finished")
    p.add_argument("--metric", default="auprc", choices=METRICS,
                   help="metric of the tests and Fig. 1D (default %(default)s)")
    p.add_argument("--pair", dest="pairs", nargs=2, action="append", metavar=("A", "B"),
                   help="test A > B (model labels, sweep keys or baseline names; repeatable); "
                        "replaces the default pairs")
    p.add_argument("--pr-fold", type=int, help="fold of the precision-recall figure (default: the first compared)")
    p.add_argument("--out", help="output folder (default: comparison/<experiment>)")
    return p


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

    @property
    def label(self) -> str:
        return f"{self.arch}{'+mean' if self.mean else ''} ({self.paradigm})"

    @property
    def complete(self) -> bool:
        return set(self.folds) >= set(range(self.n_folds))


# ---------------------------------------------------------------------------------------------------
# Finding the sweeps

def open_experiment(tracking_uri: str, experiment: str):
    """(client, experiment id) of an existing store and experiment; never creates either."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).is_file():
        raise UserError(f"--tracking-uri {tracking_uri}: no such MLflow store (run a sweep first, or give its URI)")
    try:
        client = MlflowClient(tracking_uri)
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
                            f"sweep run {run.info.run_id} lacks {', '.join(missing)}" if missing else "")
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
    for sweep in sorted(chosen, key=lambda s: (s.arch, s.paradigm, not s.mean, s.key)):
        other = by_model.setdefault(sweep.label, sweep)
        if other is not sweep:
            raise UserError(f"sweeps {other.key} and {sweep.key} are both {sweep.label}; choose one with --sweep")
    return list(by_model.values()), left_out


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


def read_fold_metrics(sweeps: list[Sweep], folds: list[int], folder: Path) -> pd.DataFrame:
    """The binned AUPRC table (row, fold, lo, hi, n_pairs, auprc) from the fold runs' metrics.json,
    after checking that every sweep tested the same cell types in each fold."""
    test_cells, binned = {}, []
    for sweep in sweeps:
        for fold in folds:
            run = sweep.folds[fold]
            target = folder / sweep.run_id / str(fold)
            target.mkdir(parents=True)
            metrics = json.loads(read_artifact(run, "metrics.json", target).read_text())
            try:
                cells = sorted(metrics["split"]["test"])
                tests = metrics["test"]
            except (KeyError, TypeError) as err:
                raise UserError(f"fold run {run.info.run_id} ({sweep.key} fold {fold}): metrics.json lacks "
                                f"'split.test' or 'test'") from err
            first = test_cells.setdefault(fold, (sweep.key, cells))
            if first[1] != cells:
                raise UserError(f"fold {fold}: sweeps {first[0]} and {sweep.key} tested different cell types "
                                f"(different splits or seeds); compare sweeps of one split with --sweep")
            names = [("model", sweep.label)] + (list(BASELINES.items()) if first[0] == sweep.key else [])
            for name, row in names:
                for b in tests.get(name, {}).get("binned", []):
                    binned.append({"row": row, "fold": fold, "lo": b["lo"], "hi": b["hi"],
                                   "n_pairs": b["n_pairs"], "auprc": b["auprc"]})
    return pd.DataFrame(binned, columns=["row", "fold", "lo", "hi", "n_pairs", "auprc"])


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


# ---------------------------------------------------------------------------------------------------
# Table and tests

def row_order(sweeps: list[Sweep]) -> list[str]:
    """Baselines first, then the models in the order of the sweeps (architecture, paradigm, mean)."""
    return list(BASELINES.values()) + [s.label for s in sweeps]


def summary_table(scores: pd.DataFrame, rows: list[str]) -> pd.DataFrame:
    """(metric, row) x [fold 0, ..., fold K-1, mean, sd]; sd is the sample sd over folds (nan for one fold)."""
    table = scores.pivot(index=["metric", "row"], columns="fold", values="value")
    folds = list(table.columns)
    table.columns = [f"fold {f}" for f in folds]
    values = table.to_numpy(dtype=float)
    table["mean"] = values.mean(axis=1)
    table["sd"] = values.std(axis=1, ddof=1) if len(folds) > 1 else np.nan
    order = pd.MultiIndex.from_product([METRICS, rows], names=["metric", "row"])
    return table.reindex(order)


def paired_wilcoxon(a, b) -> dict:
    """One-sided Wilcoxon signed-rank test of ``a > b`` over pairs (equal-length vectors, paired by fold).

    Exact null distribution when there are no ties and no zero differences (n <= 50); with ties
    or zeros an exhaustive sign-flip permutation (n <= 13, still exact), else the normal
    approximation. Zero differences are dropped (Wilcoxon's convention). Fewer than two non-zero
    differences: no test (p is nan). The note says when p < 0.05 cannot be reached (1/2^n >= 0.05).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    nonzero = d[d != 0]  # exact comparisons, as scipy's ranking makes them
    n, n_nonzero = len(d), len(nonzero)
    ties = n_nonzero - len(np.unique(np.abs(nonzero)))
    notes = []
    if n_nonzero < n:
        notes.append(f"{n - n_nonzero} zero difference(s) dropped")
    if ties:
        notes.append(f"{ties} tied |difference|(s)")
    result = {"n": n, "statistic": np.nan, "p": np.nan, "method": "none"}
    if np.isnan(d).any():
        return {**result, "note": "no test: a value is missing"}
    if n_nonzero < 2:
        notes.append(f"no test: {n_nonzero} non-zero difference(s), at least 2 needed")
        return {**result, "note": "; ".join(notes)}
    if 0.5 ** n_nonzero >= 0.05:
        notes.append(f"p < 0.05 impossible with n = {n_nonzero}")
    if not ties and n_nonzero == n and n <= EXACT_MAX_N:
        method, label = "exact", "exact"
    elif n <= PERMUTATION_MAX_N:
        method, label = stats.PermutationMethod(), "exact permutation (ties/zeros)"
    else:
        method, label = "asymptotic", "normal approximation"
    test = stats.wilcoxon(d, alternative="greater", method=method)
    return {**result, "statistic": float(test.statistic), "p": float(test.pvalue), "method": label,
            "note": "; ".join(notes)}


def default_pairs(rows: list[str], means: pd.Series) -> list[tuple[str, str]]:
    """Every model against both baselines, and every model against the best other model (by mean)."""
    models = [r for r in rows if r not in BASELINES.values()]
    pairs = [(m, b) for m in models for b in BASELINES.values()]
    for model in models:
        others = [m for m in models if m != model]
        if others:
            pairs.append((model, max(others, key=lambda m: means[m])))
    return pairs


def resolve_pairs(pairs: list[list[str]], sweeps: list[Sweep]) -> list[tuple[str, str]]:
    """``--pair`` names (a row label or a sweep key, case-insensitive) -> row labels."""
    names = {r.lower(): r for r in row_order(sweeps)} | {s.key.lower(): s.label for s in sweeps}
    resolved = []
    for a, b in pairs:
        for name in (a, b):
            if name.lower() not in names:
                raise UserError(f"--pair {a!r} {b!r}: {name!r} is none of {', '.join(row_order(sweeps))}")
        if names[a.lower()] == names[b.lower()]:
            raise UserError(f"--pair {a!r} {b!r}: a model cannot be tested against itself")
        resolved.append((names[a.lower()], names[b.lower()]))
    return resolved


def wilcoxon_tests(table: pd.DataFrame, pairs: list[tuple[str, str]], metric: str) -> pd.DataFrame:
    """One row per pair: the hypothesis, n, the means, statistic, p, method and note."""
    folds = [c for c in table.columns if c.startswith("fold ")]
    rows = []
    for a, b in pairs:
        x, y = table.loc[(metric, a), folds].to_numpy(float), table.loc[(metric, b), folds].to_numpy(float)
        rows.append({"a": a, "b": b, "hypothesis": f"{a} > {b}", "metric": metric,
                     "mean_a": x.mean(), "mean_b": y.mean(), **paired_wilcoxon(x, y)})
    return pd.DataFrame(rows, columns=["a", "b", "hypothesis", "metric", "mean_a", "mean_b", "n", "statistic",
                                       "p", "method", "note"])


# ---------------------------------------------------------------------------------------------------
# Figures

def _style(row: str) -> str:
    """Baselines dashed, models solid."""
    return "--" if row in BASELINES.values() else "-"


def _save(fig, path: Path) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def plot_paired_folds(table: pd.DataFrame, rows: list[str], metric: str, path: Path) -> None:
    """Fig. 1D: one line per fold joining its value for every baseline and model."""
    data = table.loc[metric].reindex(rows)
    folds = [c for c in data.columns if c.startswith("fold ")]
    fig, ax = plt.subplots(layout="constrained", figsize=(1.6 * len(rows) + 2, 4.5))
    x = np.arange(len(rows))
    for fold in folds:
        ax.plot(x, data[fold].to_numpy(float), marker="o", alpha=0.8, label=fold)
    ax.set_xticks(x, rows, rotation=20, ha="right")
    ax.set(ylabel=METRIC_LABELS[metric], title=f"{METRIC_LABELS[metric]} per fold (paired by fold)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_bars(table: pd.DataFrame, rows: list[str], path: Path) -> None:
    """Fig. 1C: mean +- sd over folds of pooled test AUPRC and AUROC, fold values as dots."""
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=(1.4 * len(rows) + 4, 4.5))
    x = np.arange(len(rows))
    kinds = ["baseline" if r in BASELINES.values() else "tuned trunk" if r.endswith("(tune)") else "frozen trunk"
             for r in rows]
    legend = list(dict.fromkeys(kinds))
    colors = [f"C{legend.index(k)}" for k in kinds]
    for ax, metric in zip(axes, ("auprc", "auroc")):
        data = table.loc[metric].reindex(rows)
        folds = [c for c in data.columns if c.startswith("fold ")]
        ax.bar(x, data["mean"], yerr=data["sd"].fillna(0), color=colors, alpha=0.7, capsize=4)
        for fold in folds:
            ax.scatter(x, data[fold], color="black", s=10, zorder=3)
        ax.set_xticks(x, rows, rotation=30, ha="right")
        low = np.nanmin(data[folds].to_numpy(float))
        ax.set(ylabel=METRIC_LABELS[metric], ylim=(max(0.0, low - 0.1), 1.0),
               title=f"{METRIC_LABELS[metric]}, mean ± sd")
        ax.grid(axis="y", alpha=0.3)
    fig.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=f"C{i}", alpha=0.7) for i in range(len(legend))],
               labels=legend, loc="outside upper center", ncol=len(legend))
    _save(fig, path)


def plot_binned(binned: pd.DataFrame, rows: list[str], path: Path) -> None:
    """Fig. 1E: test AUPRC per bin of the fraction of accessible training cell types, mean over folds
    (the minority class's AUPRC where the fraction is above 0.5)."""
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 4.5))
    for row in rows:
        part = binned[binned["row"] == row]
        if part.empty:
            continue
        mean = part.groupby(["lo", "hi"])["auprc"].mean().dropna().reset_index()  # empty bins: nan
        ax.plot((mean["lo"] + mean["hi"]) / 2, mean["auprc"], marker="o", label=row, linestyle=_style(row))
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="fraction of training cell types in which the bin is accessible",
           ylabel="test AUPRC (minority class above 0.5)", xlim=(0, 1), ylim=(0, 1.02),
           title="AUPRC by mean accessibility (mean over folds)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_pr(curves: dict, rows: list[str], fold: int, path: Path) -> None:
    """Precision-recall curves of every model and both baselines on one fold's test pairs."""
    fig, ax = plt.subplots(layout="constrained", figsize=(5.5, 6))
    for row in rows:
        recall, precision, value = curves[row]
        ax.plot(recall, precision, drawstyle="steps-post", linestyle=_style(row), label=f"{row} (AUPRC {value:.3f})")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title=f"Fold {fold}: test cell types")
    fig.legend(loc="outside lower center", fontsize="small")
    ax.grid(alpha=0.3)
    _save(fig, path)


# ---------------------------------------------------------------------------------------------------
# Report

def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a frame (index as the first column); floats to 4 places."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "n/a" if np.isnan(v) else f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
        return str(v).replace("|", "\\|")
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in (index, *row)) + " |" for index, row in zip(frame.index, frame.values)]
    return "\n".join(lines)


def metric_section(table: pd.DataFrame, metric: str) -> str:
    part = table.loc[metric].copy()
    part["mean ± sd"] = [f"{m:.4f} ± {s:.4f}" if not np.isnan(s) else f"{m:.4f}"
                         for m, s in zip(part["mean"], part["sd"])]
    part = part.drop(columns=["mean", "sd"])
    part.index.name = "model"
    return f"### {METRIC_LABELS[metric]}\n\n{markdown_table(part)}\n"


def report_markdown(experiment: str, tracking_uri: str, sweeps: list[Sweep], folds: list[int], left_out: list[str],
                    table: pd.DataFrame, tests: pd.DataFrame, figures: list[str], notes: list[str]) -> str:
    used = pd.DataFrame([{"sweep": s.key, "model": s.label, "run id": s.run_id,
                          "folds finished": f"{len(s.folds)} of {s.n_folds}"} for s in sweeps]).set_index("sweep")
    shown = tests.drop(columns=["a", "b", "metric"]).set_index("hypothesis")
    for column, style in (("statistic", "g"), ("p", ".4g")):
        shown[column] = [f"{v:{style}}" if np.isfinite(v) else "n/a" for v in shown[column]]
    parts = [
        f"# Comparison: {experiment}\n",
        f"MLflow store `{tracking_uri}`, experiment `{experiment}`; folds compared: "
        f"{', '.join(map(str, folds))} (same test cell types and baseline values in every sweep).\n",
        "## Sweeps\n", markdown_table(used) + "\n",
        *(["Left out:\n", "\n".join(f"- {x}" for x in left_out) + "\n"] if left_out else []),
        "## Test metrics per fold\n",
        "Models and baselines on the same (bin, test cell type) pairs; pooled = over all pairs, "
        "mean per cell type = the mean of each test cell type's value.\n",
        *[metric_section(table, m) for m in METRICS],
        PAPER + "\n",
        f"## One-sided Wilcoxon signed-rank tests ({METRIC_LABELS[tests['metric'].iloc[0]] if len(tests) else ''})\n",
        "H1: the first model's value is greater, paired by fold; statistic = sum of the ranks of the "
        "positive differences.\n",
        markdown_table(shown) + "\n" if len(tests) else "No pairs to test.\n",
        "## Figures\n",
        *[f"![{name}]({name})\n" for name in figures],
        *(["Notes:\n", "\n".join(f"- {n}" for n in notes) + "\n"] if notes else []),
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------
# MLflow

def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


def log_comparison(client, experiment_id: str, sweeps: list[Sweep], folds: list[int], metric: str,
                   table: pd.DataFrame, tests: pd.DataFrame, files: list[Path]) -> str:
    """A FINISHED run ``comparison`` with every output file, the means and p-values, linked to the sweeps."""
    from mlflow.entities import Metric, Param

    links = "\n".join(f"- [{s.key}](#/experiments/{experiment_id}/runs/{s.run_id}): {s.label}" for s in sweeps)
    tags = {"chromtune.level": "comparison", "chromtune.sweeps": ",".join(s.key for s in sweeps),
            "chromtune.sweep_runs": ",".join(s.run_id for s in sweeps),
            "mlflow.note.content": f"Comparison of {len(sweeps)} sweep(s) on folds {folds}:\n\n{links}"}
    run = client.create_run(experiment_id, run_name="comparison", tags=tags)
    run_id = run.info.run_id
    params = {"sweeps": tags["chromtune.sweeps"], "sweep_run_ids": tags["chromtune.sweep_runs"],
              "folds": ",".join(map(str, folds)), "metric": metric}
    values = {f"{_slug(row)}.mean_test_{m}": table.loc[(m, row), "mean"] for m, row in table.index}
    values |= {f"p.{_slug(a)}.gt.{_slug(b)}": p for a, b, p in zip(tests["a"], tests["b"], tests["p"])}
    stamp = int(time.time() * 1000)
    metrics = [Metric(k, float(v), stamp, 0) for k, v in values.items() if np.isfinite(v)]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v[:6000]) for k, v in params.items()])
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


# ---------------------------------------------------------------------------------------------------
# The whole comparison

def run_compare(tracking_uri: str, experiment: str, out: str | Path, sweeps: list[str] | None = None, *,
                allow_partial: bool = False, metric: str = "auprc", pairs: list[list[str]] | None = None,
                pr_fold: int | None = None) -> dict:
    """Compare the experiment's sweeps: write table, tests, figures and report to ``out`` and log
    them to a new MLflow run. Returns {"table", "tests", "binned", "run_id", "files", "folds",
    "sweeps", "left_out"}. Every check runs before the first file is written."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client, experiment_id = open_experiment(tracking_uri, experiment)
    where = f"experiment {experiment} ({tracking_uri})"
    chosen, left_out = select_sweeps(find_sweeps(client, experiment_id), sweeps, allow_partial, where)
    folds = common_folds(chosen)
    if pr_fold is None:
        pr_fold = folds[0]
    elif pr_fold not in folds:
        raise UserError(f"--pr-fold {pr_fold}: not a compared fold; choose from {', '.join(map(str, folds))}")
    rows = row_order(chosen)
    scores = fold_scores(chosen, folds)
    with tempfile.TemporaryDirectory(prefix="chromtune-compare-") as tmp:
        binned = read_fold_metrics(chosen, folds, Path(tmp))
        curves = pr_points(chosen, pr_fold, Path(tmp))
    table = summary_table(scores, rows)
    tests = wilcoxon_tests(table, resolve_pairs(pairs, chosen) if pairs else
                           default_pairs(rows, table.loc[metric, "mean"]), metric)
    notes = [] if not binned.empty else ["binned_auprc.png is empty: the fold runs' metrics.json hold no binned AUPRC"]

    out = Path(out)
    files = [out / "table.csv", out / "tests.csv", out / "binned_auprc.csv"]
    write_text(files[0], table.reset_index().to_csv(index=False))
    write_text(files[1], tests.to_csv(index=False))
    write_text(files[2], binned.to_csv(index=False))
    plot_paired_folds(table, rows, metric, out / FIGURES[0])
    plot_bars(table, rows, out / FIGURES[1])
    plot_binned(binned, rows, out / FIGURES[2])
    plot_pr(curves, rows, pr_fold, out / FIGURES[3])
    files += [out / name for name in FIGURES]
    report = out / "report.md"
    write_text(report, report_markdown(experiment, tracking_uri, chosen, folds, left_out, table, tests,
                                       list(FIGURES), notes))
    files.append(report)
    run_id = log_comparison(client, experiment_id, chosen, folds, metric, table, tests, files)
    return {"table": table, "tests": tests, "binned": binned, "run_id": run_id, "files": files, "folds": folds,
            "sweeps": [s.key for s in chosen], "left_out": left_out}


def default_experiment(data: str | None) -> str:
    """The sweep's default experiment name: chromtune-<data set file stem>, the demo's without --data."""
    if data:
        return f"chromtune-{Path(data).stem}"
    from chromtune.data.demo import cache_file

    return f"chromtune-{Path(cache_file(0)).stem}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    experiment = args.experiment or default_experiment(args.data)
    out = Path(args.out or Path("comparison") / experiment)
    result = run_compare(args.tracking_uri, experiment, out, args.sweeps, allow_partial=args.allow_partial,
                         metric=args.metric, pairs=args.pairs, pr_fold=args.pr_fold)
    for note in result["left_out"]:
        print(f"left out {note}")
    summary = result["table"].loc[args.metric, ["mean", "sd"]]
    print(f"{METRIC_LABELS[args.metric]} over folds {', '.join(map(str, result['folds']))}:")
    print(summary.round(4).to_string())
    print("\none-sided Wilcoxon signed-rank tests:")
    for test in result["tests"].itertuples():
        print(f"  {test.hypothesis}: n={test.n} statistic={test.statistic:g} p={test.p:.4g} ({test.method})"
              + (f"; {test.note}" if test.note else ""))
    print(f"\nwrote {', '.join(p.name for p in result['files'])} to {out}")
    print(f"MLflow run {result['run_id']} (comparison) in experiment {experiment}; view with "
          f"`mlflow ui --backend-store-uri {args.tracking_uri}`")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
