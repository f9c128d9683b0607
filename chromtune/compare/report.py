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
from chromtune.compare.figures import (figure_files, plot_bars, plot_binned, plot_critical_difference,
                                       plot_paired_folds, plot_pr)
from chromtune.compare.names import ALPHA, METRIC_LABELS, METRICS, ROPE
from chromtune.compare.seeds import seed_pairs, seed_pairs_text, seed_rows, seeds_text
from chromtune.compare.runs import (Sweep, common_folds, find_sweeps, fold_scores, open_experiment, pr_points,
                                    read_fold_metrics, select_sweeps)
from chromtune.compare.statistics import (cell_matrix, cell_metric, compare_pairs, default_pairs,
                                          friedman_nemenyi, min_wilcoxon_p, resolve_pairs, row_order,
                                          summary_table)
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


def design_section(tests: pd.DataFrame, friedman: dict | None, metric: str, n_cells: int, n_folds: int,
                   ratio: float, rope: float) -> str:
    """What the primary test is and why, n, and the smallest p each design allows."""
    per_cell = cell_metric(metric).upper()
    lines = [
        f"**Primary test: two-sided Wilcoxon signed-rank over test cell types**, on per-cell-type test "
        f"{per_cell} (n = {n_cells} cell types, each tested once, by the fold that held it out; pooled across "
        f"the {n_folds} folds), Holm-adjusted across the {len(tests)} comparisons made; verdicts at α = {ALPHA}.",
        "Why: the claim is about cell types the model has never seen, so a test cell type is the unit of "
        "replication; there are many more of them than folds, and the signed-rank test needs no normality. "
        f"The smallest p it allows is 2/2^{n_cells} = {min_wilcoxon_p(n_cells):.3g}. Caveat: cell types of one fold "
        "share one trained model, so they are not fully independent; the fold-level tests below account for that.",
        f"On the {n_folds} fold values: Nadeau & Bengio's corrected resampled t-test (df = {n_folds - 1}, variance "
        f"inflated by 1/K + n_test/n_train = 1/{n_folds} + {ratio:.3f}, the mean ratio of test to training cell "
        "types), Holm-adjusted too; and the Bayesian correlated t-test (same correction) with a region of "
        f"practical equivalence of ±{rope} {metric_name(metric)}, giving P(A better), P(equivalent), P(B better). "
        f"The paper's fold-level Wilcoxon is shown for reference: with {n_folds} folds its smallest two-sided p is "
        f"{min_wilcoxon_p(n_folds):.3g}" + (" (p < 0.05 impossible)." if min_wilcoxon_p(n_folds) >= 0.05 else "."),
    ]
    if friedman is not None:
        lines.append(f"Several methods at once: Friedman's test over the {friedman['n']} test cell types with all "
                     f"{friedman['k']} methods (baselines included): χ² = {friedman['chi2']:.3f}, p = {friedman['p']:.3g}; "
                     f"Nemenyi's critical difference of mean ranks at α = {friedman['alpha']}: {friedman['cd']:.3f} "
                     "(critical_difference.png).")
    return "\n\n".join(lines) + "\n"


def metric_name(metric: str) -> str:
    return "AUROC" if metric.startswith("auroc") else "AUPRC"


def tests_section(tests: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "comparison": [f"{a} vs {b}" for a, b in zip(tests["a"], tests["b"])],
        "verdict (primary)": tests["verdict"],
        "cells: n": tests["n_cells"], "cells: mean diff": tests["cells_mean_diff"],
        "cells: p": tests["cells_p"], "cells: p Holm": tests["cells_p_holm"],
        "folds: mean diff": tests["folds_mean_diff"], "corrected t": tests["nb_t"],
        "corrected t: p": tests["nb_p"], "corrected t: p Holm": tests["nb_p_holm"],
        "P(A better)": tests["p_a_better"], "P(equivalent)": tests["p_equivalent"], "P(B better)": tests["p_b_better"],
        "folds: Wilcoxon p": tests["folds_wilcoxon_p"],
    }).set_index("comparison")
    notes = [f"- {a} vs {b}: {n}" for a, b, n in zip(tests["a"], tests["b"], tests["note"]) if n]
    return markdown_table(shown) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def friedman_section(friedman: dict) -> str:
    ranks = friedman["mean_ranks"].sort_values().to_frame("mean rank (1 = best)")
    ranks.index.name = "method"
    pairwise = friedman["pairwise_p"].copy()
    pairwise.index.name = "Nemenyi p"
    return f"{markdown_table(ranks)}\n\n{markdown_table(pairwise)}\n"


def report_markdown(experiment: str, tracking_uri: str, sweeps: list[Sweep], folds: list[int], left_out: list[str],
                    table: pd.DataFrame, tests: pd.DataFrame, friedman: dict | None, design: str,
                    figures: list[str], notes: list[str]) -> str:
    used = pd.DataFrame([{"sweep": s.key, "model": s.label, "run id": s.run_id,
                          "folds finished": f"{len(s.folds)} of {s.n_folds}"} for s in sweeps]).set_index("sweep")
    metric = tests["metric"].iloc[0] if len(tests) else "auprc"
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
        f"## Tests: {METRIC_LABELS[metric]} over folds, per-cell-type {metric_name(metric)} over cell types\n",
        design,
        tests_section(tests) if len(tests) else "No pairs to test.\n",
        *(["## Friedman and Nemenyi over test cell types\n", friedman_section(friedman)] if friedman else []),
        "## Figures\n",
        "Each figure is also written as SVG beside the PNG.\n",
        *[f"![{name}]({name})\n" for name in figures if name.endswith(".png")],
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
    for test in tests.itertuples():
        pair = f"{_slug(test.a)}.vs.{_slug(test.b)}"
        values |= {f"p_cells.{pair}": test.cells_p, f"p_cells_holm.{pair}": test.cells_p_holm,
                   f"p_corrected_t_holm.{pair}": test.nb_p_holm, f"prob_a_better.{pair}": test.p_a_better,
                   f"prob_equivalent.{pair}": test.p_equivalent, f"prob_b_better.{pair}": test.p_b_better}
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
                pr_fold: int | None = None, rope: float = ROPE) -> dict:
    """Compare the experiment's sweeps: write table, tests, figures and report to ``out`` and log
    them to a new MLflow run. Returns {"table", "tests", "friedman", "cells", "binned", "run_id",
    "files", "folds", "sweeps", "left_out"}. Every check runs before the first file is written."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not rope >= 0:
        raise UserError(f"--rope {rope}: must be 0 or more")
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
        details = read_fold_metrics(chosen, folds, Path(tmp))
        curves = pr_points(chosen, pr_fold, Path(tmp))
        seeds = seed_rows(chosen, Path(tmp))
        pairs_over_seeds = seed_pairs(chosen, Path(tmp), rope)
    table = summary_table(scores, rows)
    tests = compare_pairs(table, details.cells, resolve_pairs(pairs, chosen) if pairs else default_pairs(rows),
                          metric, details.test_train_ratio, rope)
    per_cell = cell_matrix(details.cells, metric).reindex(columns=rows) if len(details.cells) else pd.DataFrame()
    complete = per_cell.dropna()
    friedman = friedman_nemenyi(complete) if len(rows) >= 3 and len(complete) >= 2 else None
    notes = [] if not details.binned.empty else ["binned_auprc is empty: the fold runs' metrics.json hold no binned AUPRC"]
    if per_cell.empty:
        notes.append("the fold runs' metrics.json hold no per-cell-type values: no cell-type test, no Friedman test")
    n_cells = int(tests["n_cells"].max()) if len(tests) else len(complete)
    design = design_section(tests, friedman, metric, n_cells, len(folds), details.test_train_ratio, rope)

    out = Path(out)
    files = [out / "table.csv", out / "tests.csv", out / "per_cell.csv", out / "binned_auprc.csv"]
    write_text(files[0], table.reset_index().to_csv(index=False))
    write_text(files[1], tests.to_csv(index=False))
    write_text(files[2], per_cell.reset_index().to_csv(index=False))
    write_text(files[3], details.binned.to_csv(index=False))
    plot_paired_folds(table, rows, metric, out / "paired_folds")
    plot_bars(table, rows, out / "bars")
    plot_binned(details.binned, rows, out / "binned_auprc")
    plot_pr(curves, rows, pr_fold, out / "pr_curves")
    plot_critical_difference(friedman, rows, out / "critical_difference")
    files += [out / name for name in figure_files()]
    if len(seeds):
        files.append(out / "seeds.csv")
        write_text(files[-1], seeds.to_csv(index=False))
    if len(pairs_over_seeds):
        files.append(out / "seed_pairs.csv")
        write_text(files[-1], pairs_over_seeds.to_csv(index=False))
    report = out / "report.md"
    write_text(report, report_markdown(experiment, tracking_uri, chosen, folds, left_out, table, tests, friedman,
                                       design, figure_files(), notes)
               + (f"\n## Over seeds\n\nThe tables above compare each model at its first seed. Per-cell-type "
                  f"differences are averaged over the seeds before the Wilcoxon test over cell types (the "
                  f"repeats of a cell type are not independent samples); seeds.csv holds the figures.\n\n"
                  f"```\n{seeds_text(seeds)}\n```\n" if len(seeds) else "")
               + (f"\nModels repeated at the same seeds, against each other (seed_pairs.csv):\n\n"
                  f"```\n{seed_pairs_text(pairs_over_seeds)}\n```\n" if len(pairs_over_seeds) else ""))
    files.append(report)
    run_id = log_comparison(client, experiment_id, chosen, folds, metric, table, tests, files)
    return {"table": table, "tests": tests, "friedman": friedman, "cells": per_cell, "binned": details.binned,
            "run_id": run_id, "experiment_id": experiment_id, "files": files, "folds": folds, "sweeps": [s.key for s in chosen],
            "left_out": left_out, "seeds": seeds, "seed_pairs": pairs_over_seeds}




def verdict_text(result: dict, metric: str = "auprc") -> str:
    """What a comparison found, in lines of at most about 100 columns (``chromtune compare`` and a
    sweep of several models print it): each row's mean and sd over the folds, then each test's
    verdict with its p-values and the Bayesian probabilities."""
    table = result["table"].loc[metric, ["mean", "sd"]]
    width = max(len(str(row)) for row in table.index)
    lines = [f"left out {note}" for note in result["left_out"]]
    lines += [f"{METRIC_LABELS[metric]} over folds {', '.join(map(str, result['folds']))}:",
              f"  {'':<{width}}    mean      sd"]
    lines += [f"  {row:<{width}}  {values['mean']:>6.4f}  {values['sd']:>6.4f}" for row, values in table.iterrows()]
    lines += ["", "tests (primary: two-sided Wilcoxon over test cell types, Holm-adjusted; details in report.md):"]
    for t in result["tests"].itertuples():
        lines += [f"  {t.a} vs {t.b}: {t.verdict}",
                  f"    cell types n={t.n_cells}: p={t.cells_p:.4g} (Holm {t.cells_p_holm:.4g}); "
                  f"corrected t over folds: p={t.nb_p:.4g} (Holm {t.nb_p_holm:.4g})",
                  f"    P(A better) {t.p_a_better:.3f}, P(equivalent) {t.p_equivalent:.3f}, "
                  f"P(B better) {t.p_b_better:.3f}"]
        if t.note:
            lines.append(f"    note: {t.note}")
    if result["friedman"] is not None:
        f = result["friedman"]
        lines.append(f"  Friedman over {f['n']} cell types, {f['k']} methods: p={f['p']:.4g}; Nemenyi CD {f['cd']:.3f}")
    if len(result.get("seeds", [])):
        lines += ["", "over seeds (the tests above: each model at its first seed):", seeds_text(result["seeds"])]
    if len(result.get("seed_pairs", [])):
        lines += [seed_pairs_text(result["seed_pairs"])]
    return "\n".join(lines)
