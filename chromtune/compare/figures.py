"""The comparison's figures (paper Fig. 1C-E and precision-recall curves), written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path  # noqa: E402
from chromtune.compare.runs import BASELINES, METRIC_LABELS  # noqa: E402

FIGURES = ("paired_folds.png", "bars.png", "binned_auprc.png", "pr_curves.png")


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
