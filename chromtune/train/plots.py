"""Precision-recall curves of a model and the baselines on the same (bin, cell type) pairs.

Shape contract: for :func:`plot_pr_curves` ``curves`` maps a name to ``(labels, scores)``, each
flattened to (n_pairs,); for :func:`plot_curve_points` to ``(precision, recall, auprc)``, the curve
already computed (e.g. by :class:`chromtune.train.metrics.StreamingMetrics`). All entries should
hold the same pairs so the curves are comparable. The figure is written as a PNG with
matplotlib's Agg backend (no display needed), atomically.
"""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from sklearn.metrics import precision_recall_curve

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path  # noqa: E402
from chromtune.train.metrics import auprc, thin_curve  # noqa: E402


def curve_points(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) of one precision-recall curve, thinned; empty for one class."""
    labels, scores = np.ravel(labels), np.ravel(scores)
    if np.isnan(auprc(labels, scores)):
        return np.empty(0), np.empty(0)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return thin_curve(precision, recall)


def plot_pr_curves(curves: dict, path: str | os.PathLike, title: str = "Precision-recall") -> None:
    """Draw each named (labels, scores) precision-recall curve, AUPRC in the legend; save a PNG at ``path``."""
    plot_curve_points({name: (*curve_points(labels, scores), auprc(labels, scores))
                       for name, (labels, scores) in curves.items()}, path, title)


def plot_curve_points(curves: dict, path: str | os.PathLike, title: str = "Precision-recall") -> None:
    """Draw each named (precision, recall, auprc) curve, AUPRC in the legend; save a PNG at ``path``."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    try:
        for name, (precision, recall, value) in curves.items():
            if np.isnan(value):
                ax.plot([], [], label=f"{name} (AUPRC n/a: one class)")
                continue
            ax.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AUPRC {value:.3f})")
        ax.set(xlabel="Recall", ylabel="Precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
