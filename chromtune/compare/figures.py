"""The comparison's figures (paper Fig. 1C-E, precision-recall curves, a critical-difference diagram).

Every figure is written atomically as PNG and SVG, and gives each model and baseline the same name
and colour (:func:`row_colors`): baselines grey and dashed, models in the tab10 colours.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path  # noqa: E402
from chromtune.compare.names import BASELINES, METRIC_LABELS  # noqa: E402

FIGURES = ("paired_folds", "bars", "binned_auprc", "pr_curves", "critical_difference")
FORMATS = ("png", "svg")
BASELINE_COLOURS = ("0.35", "0.65")


def figure_files(names=FIGURES) -> list[str]:
    """File names of the figures, every format."""
    return [f"{name}.{fmt}" for name in names for fmt in FORMATS]


def row_colors(rows: list[str]) -> dict[str, str]:
    """One colour per row, the same in every figure: greys for the baselines, tab10 for the models."""
    models = [r for r in rows if r not in BASELINES.values()]
    colours = dict(zip(BASELINES.values(), BASELINE_COLOURS))
    return {r: colours[r] if r in colours else f"C{models.index(r) % 10}" for r in rows}


def _style(row: str) -> str:
    """Baselines dashed, models solid."""
    return "--" if row in BASELINES.values() else "-"


def _save(fig, stem: Path) -> None:
    try:
        for fmt in FORMATS:
            with atomic_path(stem.with_name(f"{stem.name}.{fmt}")) as tmp:
                fig.savefig(tmp, format=fmt, dpi=100)
    finally:
        plt.close(fig)


def plot_paired_folds(table: pd.DataFrame, rows: list[str], metric: str, stem: Path) -> None:
    """Fig. 1D: one grey line per fold joining its value for every baseline and model."""
    data = table.loc[metric].reindex(rows)
    folds = [c for c in data.columns if c.startswith("fold ")]
    colours = row_colors(rows)
    fig, ax = plt.subplots(layout="constrained", figsize=(1.6 * len(rows) + 2, 4.5))
    x = np.arange(len(rows))
    for fold in folds:
        ax.plot(x, data[fold].to_numpy(float), color="0.6", alpha=0.8, zorder=1)
        ax.scatter(x, data[fold].to_numpy(float), c=[colours[r] for r in rows], zorder=2)
    ax.set_xticks(x, rows, rotation=20, ha="right")
    ax.set(ylabel=METRIC_LABELS[metric], title=f"{METRIC_LABELS[metric]}: {len(folds)} folds, paired by fold")
    ax.grid(alpha=0.3)
    _save(fig, stem)


def plot_bars(table: pd.DataFrame, rows: list[str], stem: Path, metrics=("auprc", "auroc")) -> None:
    """Fig. 1C: mean +- sd over folds per metric, bars from 0, fold values as dots."""
    colours = row_colors(rows)
    fig, axes = plt.subplots(1, len(metrics), layout="constrained", figsize=((1.0 * len(rows) + 2) * len(metrics), 4.5))
    x = np.arange(len(rows))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        data = table.loc[metric].reindex(rows)
        folds = [c for c in data.columns if c.startswith("fold ")]
        ax.bar(x, data["mean"], yerr=data["sd"].fillna(0), color=[colours[r] for r in rows], capsize=4)
        for fold in folds:
            ax.scatter(x, data[fold], color="black", s=10, zorder=3)
        ax.set_xticks(x, rows, rotation=30, ha="right")
        ax.set(ylabel=METRIC_LABELS[metric], ylim=(0.0, 1.0), title=f"{METRIC_LABELS[metric]}, mean ± sd")
        ax.grid(axis="y", alpha=0.3)
    _save(fig, stem)


def plot_binned(binned: pd.DataFrame, rows: list[str], stem: Path) -> None:
    """Fig. 1E: test AUPRC per bin of the fraction of accessible training cell types, mean over folds
    (the minority class's AUPRC where the fraction is above 0.5); a bin without pairs breaks the line.
    Below it, the number of test pairs per bin (over all folds)."""
    colours = row_colors(rows)
    fig, (ax, counts) = plt.subplots(2, 1, layout="constrained", figsize=(7, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
    edges = binned[["lo", "hi"]].drop_duplicates().sort_values("lo")
    centres = ((edges["lo"] + edges["hi"]) / 2).to_numpy(float)
    for row in rows:
        part = binned[binned["row"] == row]
        if part.empty:
            continue
        mean = part.groupby(["lo", "hi"])["auprc"].mean()  # a bin without both classes: nan
        values = mean.reindex(pd.MultiIndex.from_frame(edges)).to_numpy(float)  # nan breaks the line
        ax.plot(centres, values, marker="o", color=colours[row], label=row, linestyle=_style(row))
    if not binned.empty:
        first = binned[binned["row"] == binned["row"].iloc[0]]
        pairs = first.groupby(["lo", "hi"])["n_pairs"].sum().reindex(pd.MultiIndex.from_frame(edges)).fillna(0)
        width = (edges["hi"] - edges["lo"]).to_numpy(float)
        counts.bar(centres, pairs.to_numpy(float), width=0.9 * width, color="0.7")
        for x, n in zip(centres, pairs.to_numpy(int)):
            counts.annotate(f"{n:,}", (x, n), ha="center", va="bottom", fontsize="x-small")
    for axis in (ax, counts):
        axis.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.grid(alpha=0.3)
    ax.set(ylabel="test AUPRC (minority class above 0.5)", xlim=(0, 1), ylim=(0, 1.02),
           title="AUPRC by mean accessibility (mean over folds)")
    ax.legend(fontsize="small")
    counts.set(xlabel="fraction of training cell types in which the bin is accessible", ylabel="test pairs")
    _save(fig, stem)


def plot_pr(curves: dict, rows: list[str], fold: int, stem: Path) -> None:
    """Precision-recall curves of every model and both baselines on one fold's test pairs."""
    colours = row_colors(rows)
    fig, ax = plt.subplots(layout="constrained", figsize=(5.5, 6))
    for row in rows:
        recall, precision, value = curves[row]
        ax.plot(recall, precision, drawstyle="steps-post", linestyle=_style(row), color=colours[row],
                label=f"{row} (AUPRC {value:.3f})")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02), title=f"Fold {fold}: test cell types")
    fig.legend(loc="outside lower center", fontsize="small")
    ax.grid(alpha=0.3)
    _save(fig, stem)


def cliques(mean_ranks: pd.Series, cd: float) -> list[list[str]]:
    """Maximal runs of methods (sorted by mean rank) whose ranks lie within ``cd`` of each other:
    the groups a critical-difference diagram joins with a bar."""
    ranked = mean_ranks.sort_values()
    names, values = list(ranked.index), ranked.to_numpy(float)
    groups, last_end = [], -1
    for i in range(len(values)):
        j = int(np.searchsorted(values, values[i] + cd, side="left")) - 1  # ranks strictly within cd
        if j > i and j > last_end:
            groups.append(names[i:j + 1])
            last_end = j
    return groups


def plot_critical_difference(friedman: dict | None, rows: list[str], stem: Path) -> None:
    """Demsar's critical-difference diagram: mean ranks over test cell types (1 = best); methods a
    bar joins are not significantly different (Nemenyi, ``alpha``)."""
    colours = row_colors(rows)
    half = (len(rows) + 1) // 2
    fig = plt.figure(figsize=(10, 1.6 + 0.4 * half))
    ax = fig.add_axes((0.27, 0.05, 0.46, 0.75))  # the labels go in the margins either side
    ax.set_axis_off()
    if friedman is None:
        ax.text(0.5, 0.5, "fewer than 3 methods or 2 cell types: no Friedman test", ha="center", va="center")
        _save(fig, stem)
        return
    ranks, k, cd = friedman["mean_ranks"].sort_values(), friedman["k"], friedman["cd"]
    ax.set(xlim=(1, k), ylim=(-(half + 0.5), 1.8))
    ax.hlines(0, 1, k, color="black")
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.2, color="black")
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize="small")
    ax.hlines(1.2, 1, 1 + cd, color="black", linewidth=2)
    ax.text(1 + cd / 2, 1.3, f"CD = {cd:.2f} (Nemenyi, α = {friedman['alpha']})", ha="center", va="bottom",
            fontsize="small")
    for i, (name, rank) in enumerate(ranks.items()):
        left = i < half
        y = -((i if left else i - half) + 1)
        end = 1 - 0.05 * (k - 1) if left else k + 0.05 * (k - 1)
        colour = colours.get(name, "black")
        ax.plot([rank, rank, end], [0, y, y], color=colour, linewidth=1.2, clip_on=False)
        ax.text(end, y, f" {name} ({rank:.2f}) " if left else f" {name} ({rank:.2f}) ", ha="right" if left else "left",
                va="center", color=colour, fontsize="small", clip_on=False)
    for level, group in enumerate(cliques(ranks, cd)):
        ax.hlines(-0.25 - 0.2 * level, ranks[group[0]] - 0.03, ranks[group[-1]] + 0.03, color="black", linewidth=3)
    fig.suptitle(f"Mean rank over {friedman['n']} test cell types (1 = best); Friedman p = {friedman['p']:.3g}",
                 fontsize="medium")
    _save(fig, stem)
