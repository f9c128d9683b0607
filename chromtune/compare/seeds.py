"""Sweeps repeated over seeds (``chromtune sweep --seeds``): each model's test AUPRC as mean +- sd over
the seeds, the folds it beats both baselines on at each seed, and its test against each baseline
over (seed, cell type) — per-cell-type differences averaged over the seeds, then the Wilcoxon
signed-rank test over cell types (:func:`chromtune.compare.statistics.seed_averaged_wilcoxon`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chromtune.compare.names import BASELINES
from chromtune.compare.runs import Sweep, read_fold_metrics
from chromtune.compare.statistics import seed_averaged_wilcoxon

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
