"""t-SNE of cell types by predicted accessibility beside their expression (the paper's Fig. 3B)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path  # noqa: E402

EXACT_TSNE = 200          # cell types up to which t-SNE is computed exactly


def tsne_embedding(features: np.ndarray, seed: int) -> np.ndarray:
    """(C, 2) t-SNE of (C, F) rows, standardised per feature, perplexity fitted to small C."""
    from sklearn.manifold import TSNE

    std = features.std(0)
    scaled = (features - features.mean(0)) / np.where(std > 0, std, 1.0)
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
    method = "exact" if len(features) <= EXACT_TSNE else "barnes_hut"  # exact is faster for a few cell types
    return TSNE(n_components=2, perplexity=perplexity, init="pca", method=method,
                random_state=seed).fit_transform(scaled)


def plot_tsne(embeddings: dict[str, np.ndarray], cells: list[str], groups: list[str] | None, path: Path) -> None:
    """Side-by-side scatter plots of the cell types, coloured by group when known, labelled by name."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(6 * len(embeddings), 5.5))
    try:
        names = sorted(set(groups)) if groups else []
        colours = plt.get_cmap("tab10")
        for ax, (title, xy) in zip(np.atleast_1d(axes), embeddings.items()):
            for g, name in enumerate(names):
                rows = [k for k, x in enumerate(groups) if x == name]
                ax.scatter(xy[rows, 0], xy[rows, 1], s=40, color=colours(g % 10), label=name)
            if not groups:
                ax.scatter(xy[:, 0], xy[:, 1], s=40, color=colours(0))
            for k, cell in enumerate(cells):
                ax.annotate(cell, xy[k], fontsize=6, alpha=0.7, xytext=(3, 3), textcoords="offset points")
            ax.set(title=title, xticks=[], yticks=[])
        if names:
            np.atleast_1d(axes)[-1].legend(fontsize=7, loc="best")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
