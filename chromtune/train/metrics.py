"""Evaluation metrics: AUPRC / AUROC pooled, per cell type, per task and binned by mean accessibility.

Shape contracts:
    labels, scores      (n_bins, n_cells)  0/1 labels and real-valued scores of the evaluated
                                           (bin, cell type) pairs — for evaluation the held-out
                                           cell types, for stage-1 selection the tasks
    train_fraction      (n_bins,)          fraction of TRAINING cell types in which each bin is
                                           accessible (:func:`chromtune.train.baselines.mean_accessibility`)

Every result is a plain Python float / int / list / dict (JSON-serialisable). A metric that is
undefined — no pairs, or only one class among them — is ``float('nan')`` and is skipped by the
means, never an exception.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

DEFAULT_EDGES = tuple(np.arange(11) / 10)  # 0, 0.1, ..., 1.0 exactly as k/10
_EDGE_DECIMALS = 6  # fractions and edges are compared after rounding, so float32 k/n lands on its edge


def _single_class(y: np.ndarray) -> bool:
    return y.size == 0 or y.min() == y.max()


def auprc(y, score) -> float:
    """Area under the precision-recall curve (sklearn average precision); nan for a single class."""
    y, score = np.ravel(y), np.ravel(score)
    return float("nan") if _single_class(y) else float(average_precision_score(y, score))


def auroc(y, score) -> float:
    """Area under the ROC curve (sklearn); nan for a single class."""
    y, score = np.ravel(y), np.ravel(score)
    return float("nan") if _single_class(y) else float(roc_auc_score(y, score))


def _nanmean(values: list[float]) -> float:
    """Mean of the non-nan values; nan (without a warning) when there are none."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _check_pairs(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be equal (n_bins, n_cells) shapes")
    return labels, scores


def mean_task_auprc(labels, scores) -> float:
    """Stage-1 selection metric: mean over tasks (columns) of per-task AUPRC, single-class tasks skipped."""
    labels, scores = _check_pairs(labels, scores)
    return _nanmean([auprc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])])


def binned_auprc(labels, scores, train_fraction, edges=DEFAULT_EDGES) -> list[dict]:
    """AUPRC of the pairs grouped by their bin's fraction of accessible training cell types (Fig. 1E).

    Intervals are [lo, hi), the last one [lo, hi]; pairs outside [edges[0], edges[-1]] are left
    out. Where the interval's midpoint is above 0.5, accessible is the majority class, so the
    AUPRC is that of the minority class — inaccessible pairs, labels ``1 - y`` and scores
    ``-score`` — as in the paper. ``positive_rate`` is always the fraction of accessible pairs.
    """
    labels, scores = _check_pairs(labels, scores)
    fraction = np.round(np.asarray(train_fraction, dtype=np.float64), _EDGE_DECIMALS)
    if fraction.shape != (labels.shape[0],):
        raise ValueError(f"train_fraction {fraction.shape} must be ({labels.shape[0]},), one value per bin")
    edges = np.round(np.asarray(edges, dtype=np.float64), _EDGE_DECIMALS)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be at least two strictly increasing values")
    which = np.searchsorted(edges, fraction, side="right") - 1
    which[fraction == edges[-1]] = len(edges) - 2
    which[(fraction < edges[0]) | (fraction > edges[-1])] = -1
    out = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        rows = which == k
        y, s = labels[rows].ravel(), scores[rows].ravel()
        minority = "inaccessible" if (lo + hi) / 2 > 0.5 else "accessible"
        value = auprc(y == 0, -s.astype(np.float64)) if minority == "inaccessible" else auprc(y, s)
        out.append({
            "lo": float(lo),
            "hi": float(hi),
            "n_pairs": int(y.size),
            "positive_rate": float(y.mean()) if y.size else float("nan"),
            "auprc": value,
            "minority": minority,
        })
    return out


def evaluate_scores(labels, scores, train_fraction=None, edges=DEFAULT_EDGES) -> dict:
    """All evaluation metrics of scores on (bin, held-out cell type) pairs.

    ``auprc`` / ``auroc`` are pooled over every pair (the reference's "OVERALL");
    ``*_mean_per_cell`` average the per-cell-type values (single-class cell types skipped);
    ``per_cell`` lists them in column order; ``binned`` (only with ``train_fraction``) is
    :func:`binned_auprc`.
    """
    labels, scores = _check_pairs(labels, scores)
    per_auprc = [auprc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    per_auroc = [auroc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    result = {
        "auprc": auprc(labels, scores),
        "auroc": auroc(labels, scores),
        "auprc_mean_per_cell": _nanmean(per_auprc),
        "auroc_mean_per_cell": _nanmean(per_auroc),
        "per_cell": {"auprc": per_auprc, "auroc": per_auroc},
    }
    if train_fraction is not None:
        result["binned"] = binned_auprc(labels, scores, train_fraction, edges)
    return result
