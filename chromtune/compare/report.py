"""The report: Markdown, the files of the comparison, its MLflow run, and the whole comparison."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from chromtune.atomic import write_text
from chromtune.compare.figures import FIGURES, plot_bars, plot_binned, plot_paired_folds, plot_pr
from chromtune.compare.runs import (METRIC_LABELS, METRICS, Sweep, common_folds, find_sweeps, fold_scores,
                                    open_experiment, pr_points, read_fold_metrics, select_sweeps)
from chromtune.compare.statistics import default_pairs, resolve_pairs, row_order, summary_table, wilcoxon_tests
from chromtune.errors import UserError

PAPER = ("Paper (Nair et al. 2019, fixed split, test AUPRC / AUROC): ResNet+mean 0.76 / 0.954; "
         "Factorized 0.69 / 0.937; Basset+expr 0.656; Factorized+expr 0.692; ResNet+expr 0.700; "
         "mean baseline 0.579 / 0.902; RNA-weighted mean baseline 0.587 / 0.903.")


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
