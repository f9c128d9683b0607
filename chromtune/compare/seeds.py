"""Sweeps repeated over seeds (``chromtune sweep --seeds``): each model's test AUPRC as mean +- sd over
the seeds, the folds it beats both baselines on at each seed, and its test against each baseline
over (seed, cell type) — per-cell-type differences averaged over the seeds, then the Wilcoxon
signed-rank test over cell types (:func:`chromtune.compare.statistics.seed_averaged_wilcoxon`).
Two models repeated at the same seeds are tested against each other the same way, and with the
Bayesian correlated t over their (seed, fold) test AUPRCs (repeated cross-validation) and the ROPE."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from chromtune.compare.names import BASELINES
from chromtune.compare.runs import Sweep, read_fold_metrics
from chromtune.compare.statistics import ROPE, bayes_correlated_t, seed_averaged_wilcoxon

RESULTS = ("model", *BASELINES)


def seed_rows(sweeps: list[Sweep], folder: Path) -> pd.DataFrame:
    """One row per compared sweep that has repeats at other seeds (empty when none has)."""
    rows = []
    for first in sweeps:
        group = sorted([first, *first.repeats], key=lambda s: s.seed)
        if len(group) < 2:
            continue
        means, wins, cells = {}, [], []
        for sweep in group:
            folds = sorted(sweep.folds)
            values = {name: np.array([sweep.folds[f].data.metrics[f"test_{name}_auprc"] for f in folds])
                      for name in RESULTS}
            means[sweep.seed] = {name: float(v.mean()) for name, v in values.items()}
            beaten = (values["model"] > values["mean_baseline"]) & (values["model"] > values["weighted_mean_baseline"])
            wins.append(f"{int(beaten.sum())}/{len(folds)}")
            part = read_fold_metrics([sweep], folds, folder / f"seed{sweep.seed}").cells
            cells.append(part[part["metric"] == "auprc"].assign(seed=sweep.seed))
        per_seed = pd.DataFrame(means).T
        row = {"model": first.label, "seeds": " ".join(str(s.seed) for s in group), "folds_beaten": " ".join(wins)}
        for name in RESULTS:
            row[f"{name}_mean"], row[f"{name}_sd"] = per_seed[name].mean(), per_seed[name].std(ddof=1)
        values = pd.concat(cells).pivot_table(index=["seed", "cell_type"], columns="row", values="value")
        for name, label in BASELINES.items():
            test = seed_averaged_wilcoxon(values.dropna(), first.label, label)
            row.update({f"vs_{name}_diff": test["mean_diff"], f"vs_{name}_n_cells": test["n"],
                        f"vs_{name}_p": test["p"]})
        rows.append(row)
    return pd.DataFrame(rows)


def seed_pairs(sweeps: list[Sweep], folder: Path, rope: float = ROPE) -> pd.DataFrame:
    """One row per two compared models repeated at two or more common seeds: A - B per cell type averaged
    over those seeds, Wilcoxon over cell types; P(A better), P(equivalent: within ``rope``), P(B better)
    from the Bayesian correlated t over the (seed, fold) pairs of test AUPRC, whose scale counts the
    folds' overlapping training sets (Corani and Benavoli's test for repeated cross-validation)."""
    groups = {first.label: {s.seed: s for s in [first, *first.repeats]} for first in sweeps if first.repeats}
    rows = []
    for index, ((a, at), (b, bt)) in enumerate(itertools.combinations(groups.items(), 2)):
        seeds = sorted(set(at) & set(bt))
        if len(seeds) < 2:
            continue
        cells, fold_values, ratios = [], {a: [], b: []}, []
        for seed in seeds:
            folds = sorted(set(at[seed].folds) & set(bt[seed].folds))
            details = read_fold_metrics([at[seed], bt[seed]], folds, folder / f"pair{index}-seed{seed}")
            cells.append(details.cells[details.cells["metric"] == "auprc"].assign(seed=seed))
            ratios.append(details.test_train_ratio)
            for label, sweep in ((a, at[seed]), (b, bt[seed])):
                fold_values[label] += [sweep.folds[f].data.metrics["test_model_auprc"] for f in folds]
        values = pd.concat(cells).pivot_table(index=["seed", "cell_type"], columns="row", values="value")
        test = seed_averaged_wilcoxon(values[[a, b]].dropna(), a, b)
        p_a, p_eq, p_b = bayes_correlated_t(fold_values[a], fold_values[b], float(np.mean(ratios)), rope)
        rows.append({"a": a, "b": b, "seeds": " ".join(map(str, seeds)), "a_mean": float(np.mean(fold_values[a])),
                     "b_mean": float(np.mean(fold_values[b])), "diff": test["mean_diff"], "n_cells": test["n"],
                     "p": test["p"], "n_fold_pairs": len(fold_values[a]), "p_a_better": p_a, "p_equivalent": p_eq,
                     "p_b_better": p_b, "rope": rope})
    return pd.DataFrame(rows)


def seed_pairs_text(frame: pd.DataFrame) -> str:
    """The rows of :func:`seed_pairs` as lines."""
    return "\n".join(
        f"{row['a']} vs {row['b']} over seeds {row['seeds']}: test AUPRC {row['a_mean']:.4f} vs {row['b_mean']:.4f}; "
        f"per-cell-type difference averaged over seeds {row['diff']:+.4f}, Wilcoxon over {row['n_cells']} cell types "
        f"p={row['p']:.4g}; over {row['n_fold_pairs']} (seed, fold) pairs P(A better) {row['p_a_better']:.3f}, "
        f"P(equivalent, ROPE {row['rope']:g}) {row['p_equivalent']:.3f}, P(B better) {row['p_b_better']:.3f}"
        for row in frame.to_dict("records"))


def seeds_text(frame: pd.DataFrame) -> str:
    """The rows as lines (``chromtune compare``'s verdict and report.md)."""
    lines = []
    for row in frame.to_dict("records"):
        lines.append(f"{row['model']} over seeds {row['seeds']}: test AUPRC (mean over folds) "
                     + " | ".join(f"{name.replace('_', ' ')} {row[f'{name}_mean']:.4f} +- {row[f'{name}_sd']:.4f}"
                                  for name in RESULTS))
        lines.append(f"  folds beating both baselines, per seed: {row['folds_beaten']}")
        for name in BASELINES:
            lines.append(f"  vs {name.replace('_', ' ')}: per-cell-type difference averaged over seeds "
                         f"{row[f'vs_{name}_diff']:+.4f}, Wilcoxon over {row[f'vs_{name}_n_cells']} cell types "
                         f"p={row[f'vs_{name}_p']:.4g}")
    return "\n".join(lines)
