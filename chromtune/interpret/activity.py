"""Motif activity per cell type and its correlation with TF expression (the paper's Fig. 3A)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path  # noqa: E402
from chromtune.data.dataset import Dataset  # noqa: E402
from chromtune.interpret.attribution import span_contributions  # noqa: E402


def motif_base(label: str) -> str:
    """The database name in a row label."""
    return label.removesuffix(" (negative)")


def motif_label(name: str, sign: int) -> str:
    """Row label of a matched motif: its database name, marked when its patterns carry negative contributions."""
    return name if sign > 0 else f"{name} (negative)"


def instance_loci(records: list[dict], max_instances: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per matched TF motif label (from a record's ``motif``), its (k, 3) unique loci (bin, start, end in the
    context window), at most max_instances.

    Positive and negative patterns matched to one database motif give two labels: a motif the
    model reads as repressive in some bins is not averaged with its activating instances.
    """
    by_label: dict[str, list[np.ndarray]] = {}
    for r in records:
        if r["motif"]:
            by_label.setdefault(motif_label(r["motif"], r["sign"]), []).append(r["loci"])
    loci = {}
    for label in sorted(by_label):
        unique = np.unique(np.concatenate(by_label[label]), axis=0)
        if len(unique) > max_instances:
            unique = unique[np.sort(rng.choice(len(unique), max_instances, replace=False))]
        loci[label] = unique
    return loci


def motif_activity(model, ds: Dataset, loci: dict[str, np.ndarray], expression: np.ndarray,
                   mean: np.ndarray | None, batch_size: int, device, steps: int = 1) -> np.ndarray:
    """(M, C) mean over each motif's instances of the contribution summed over the instance, per cell type."""
    all_loci = np.concatenate(list(loci.values()))
    summed = span_contributions(model, ds, all_loci[:, 0], all_loci[:, 1], all_loci[:, 2], expression, mean,
                                batch_size, device, steps)
    bounds = np.cumsum([0] + [len(v) for v in loci.values()])
    return np.stack([summed[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])])


def pearson_columns(activity: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """(M, G) Pearson r across cell types of activity (M, C) rows with expression (C, G) columns; NaN where constant."""
    a = activity - activity.mean(1, keepdims=True)
    e = expression - expression.mean(0, keepdims=True)
    norm = np.sqrt((a ** 2).sum(1))[:, None] * np.sqrt((e ** 2).sum(0))[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a @ e) / norm
    return np.where(norm > 0, np.clip(r, -1, 1), np.nan)


def plot_correlation(table: pd.DataFrame, own: dict[str, list[str]], path: Path, max_genes: int = 60) -> None:
    """Heatmap of motif x gene r; with many genes, the union of each motif's top-|r| genes and its own TFs."""
    columns = list(table.columns)
    if len(columns) > max_genes:
        top = max(1, max_genes // max(1, len(table)) - 1)
        wanted = {g for name in table.index for g in own.get(name, [])}
        for name, row in table.iterrows():
            wanted |= set(row.abs().sort_values(ascending=False).index[:top])
        columns = [g for g in columns if g in wanted][:max_genes]
    values = table[columns].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(columns) + 3), max(2.5, 0.4 * len(table) + 1.5)))
    try:
        image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
        ax.set_yticks(range(len(table)), table.index, fontsize=8)
        for i, name in enumerate(table.index):
            for gene in own.get(name, []):
                if gene in columns:
                    j = columns.index(gene)
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, ec="black"))
        fig.colorbar(image, ax=ax, label="Pearson r across cell types", shrink=0.8)
        ax.set_title("Motif activity vs TF expression (boxed: the motif's own TF)")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
