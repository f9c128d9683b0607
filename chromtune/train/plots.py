"""Precision-recall curves of a model and the baselines on the same (bin, cell type) pairs.

Shape contract: ``curves`` maps a name to ``(labels, scores)``, each flattened to (n_pairs,);
all entries should hold the same pairs so the curves are comparable. The figure is written as a
PNG with matplotlib's Agg backend (no display needed), atomically.
"""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from sklearn.metrics import precision_recall_curve

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from chromtune.atomic import atomic_path  # noqa: E402
from chromtune.train.metrics import auprc  # noqa: E402

MAX_POINTS = 5000  # curve points drawn per model; keeps the PNG small for ~1e6 thresholds


def _thin(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS evenly spaced points of the curve, both ends kept."""
    if len(precision) <= MAX_POINTS:
        return precision, recall
    keep = np.unique(np.linspace(0, len(precision) - 1, MAX_POINTS).round().astype(np.int64))
    return precision[keep], recall[keep]


def curve_points(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) of one precision-recall curve, thinned to MAX_POINTS; empty for one class."""
    labels, scores = np.ravel(labels), np.ravel(scores)
    if np.isnan(auprc(labels, scores)):
        return np.empty(0), np.empty(0)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return _thin(precision, recall)


def plot_pr_curves(curves: dict, path: str | os.PathLike, title: str = "Precision-recall") -> None:
    """Draw each named (labels, scores) precision-recall curve, AUPRC in the legend; save a PNG at ``path``."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    try:
        for name, (labels, scores) in curves.items():
            labels, scores = np.ravel(labels), np.ravel(scores)
            value = auprc(labels, scores)
            if np.isnan(value):
                ax.plot([], [], label=f"{name} (AUPRC n/a: one class)")
                continue
            precision, recall = curve_points(labels, scores)
            ax.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AUPRC {value:.3f})")
        ax.set(xlabel="Recall", ylabel="Precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
