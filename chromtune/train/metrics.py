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

:class:`StreamingMetrics` gives the same metrics without holding the scores: blocks of rows are
added as they are scored, each score rounded to float16 (``SCORE_DTYPE``) and counted per
(cell type, float16 value, label) and per (training-fraction bin, value, label). AUPRC, AUROC and
the precision-recall curve follow exactly from these counts (sklearn's on the float16 scores), so
memory is fixed — about 1 MiB per cell type and per fraction bin — whatever the number of pairs.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

DEFAULT_EDGES = tuple(np.arange(11) / 10)  # 0, 0.1, ..., 1.0 exactly as k/10
_EDGE_DECIMALS = 6  # fractions and edges are compared after rounding, so float32 k/n lands on its edge
SCORE_DTYPE = np.float16  # the compact dtype in which streamed scores are counted
_KEYS = 1 << 16  # one count per float16 bit pattern
_PENDING = 1 << 21  # counted pairs buffered before a bincount
SPECIFIC_FRACTION = 0.3  # cell-type-specific pairs: the bin is accessible in < 30 % of training cell types
MAX_CURVE_POINTS = 5000  # precision-recall points kept per curve (files and plots stay small)


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


def _per_cell(per_auprc: list[float], per_auroc: list[float]) -> dict:
    """The per-cell-type part of a result: the means over the cell types whose metric is defined,
    ``n_cells_skipped`` the cell types left out of them (one class only: no positive, or no negative,
    among their pairs), and the values in column order."""
    return {"auprc_mean_per_cell": _nanmean(per_auprc), "auroc_mean_per_cell": _nanmean(per_auroc),
            "n_cells_skipped": int(np.isnan(per_auprc).sum()), "per_cell": {"auprc": per_auprc, "auroc": per_auroc}}


def skipped_text(result: dict, cell_types: list[str]) -> str:
    """One line naming the cell types left out of ``result``'s per-cell-type means ('' when none);
    ``cell_types`` names its columns."""
    skipped = [name for name, value in zip(cell_types, result["per_cell"]["auprc"]) if np.isnan(value)]
    if not skipped:
        return ""
    return (f"{len(skipped)} of {len(cell_types)} cell type(s) have no positive (or no negative) among the scored "
            f"pairs, so no AUPRC/AUROC of their own: left out of the per-cell-type means ({', '.join(skipped)})")


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
    edges = _check_edges(edges)
    which = _fraction_bin(train_fraction, edges, labels.shape[0])
    out = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        rows = which == k
        y, s = labels[rows].ravel(), scores[rows].ravel()
        minority = _minority(lo, hi)
        value = auprc(y == 0, -s.astype(np.float64)) if minority == "inaccessible" else auprc(y, s)
        out.append(_bin_entry(lo, hi, int(y.size), int(np.count_nonzero(y)), value, minority))
    return out


def _check_edges(edges) -> np.ndarray:
    edges = np.round(np.asarray(edges, dtype=np.float64), _EDGE_DECIMALS)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be at least two strictly increasing values")
    return edges


def _fraction_bin(train_fraction, edges: np.ndarray, n_bins: int) -> np.ndarray:
    """(n_bins,) index of each bin's [lo, hi) interval of ``edges`` (the last one closed); -1 outside."""
    fraction = np.round(np.asarray(train_fraction, dtype=np.float64), _EDGE_DECIMALS)
    if fraction.shape != (n_bins,):
        raise ValueError(f"train_fraction {fraction.shape} must be ({n_bins},), one value per bin")
    which = np.searchsorted(edges, fraction, side="right") - 1
    which[fraction == edges[-1]] = len(edges) - 2
    which[(fraction < edges[0]) | (fraction > edges[-1])] = -1
    return which


def _minority(lo: float, hi: float) -> str:
    return "inaccessible" if (lo + hi) / 2 > 0.5 else "accessible"


def _bin_entry(lo, hi, n_pairs: int, n_positive: int, value: float, minority: str) -> dict:
    return {"lo": float(lo), "hi": float(hi), "n_pairs": n_pairs,
            "positive_rate": n_positive / n_pairs if n_pairs else float("nan"), "auprc": value, "minority": minority}


def evaluate_scores(labels, scores, train_fraction=None, edges=DEFAULT_EDGES) -> dict:
    """All evaluation metrics of scores on (bin, held-out cell type) pairs.

    ``auprc`` / ``auroc`` are pooled over every pair (the reference's "OVERALL");
    ``*_mean_per_cell`` average the per-cell-type values (single-class cell types skipped, counted
    in ``n_cells_skipped``); ``per_cell`` lists them in column order; with ``train_fraction``, ``binned`` is
    :func:`binned_auprc` and ``auprc_specific`` the AUPRC of the cell-type-specific pairs (bins
    accessible in fewer than ``SPECIFIC_FRACTION`` of the training cell types), ``n_specific`` their number,
    both over the cell types that are not skipped (a cell type without positives would otherwise be a
    column of inaccessible "minority" pairs in every bin above 0.5).
    """
    labels, scores = _check_pairs(labels, scores)
    per_auprc = [auprc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    per_auroc = [auroc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    result = {"auprc": auprc(labels, scores), "auroc": auroc(labels, scores), **_per_cell(per_auprc, per_auroc)}
    if train_fraction is not None:  # pooled over the cell types with both classes only
        kept = ~np.isnan(per_auprc)
        labels, scores = labels[:, kept], scores[:, kept]
        result["binned"] = binned_auprc(labels, scores, train_fraction, edges)
        specific = specific_rows(train_fraction, labels.shape[0])
        result["auprc_specific"] = auprc(labels[specific], scores[specific])
        result["n_specific"] = int(specific.sum()) * labels.shape[1]
    return result


def specific_rows(train_fraction, n_rows: int) -> np.ndarray:
    """(n_rows,) bool: bins accessible in fewer than SPECIFIC_FRACTION of the training cell types."""
    fraction = np.round(np.asarray(train_fraction, dtype=np.float64), _EDGE_DECIMALS)
    if fraction.shape != (n_rows,):
        raise ValueError(f"train_fraction {fraction.shape} must be ({n_rows},), one value per bin")
    return fraction < SPECIFIC_FRACTION


# -- streaming ---------------------------------------------------------------------------------
def score_keys(scores) -> np.ndarray:
    """int64 keys 0..65535 that order the scores, rounded to float16, as their values do (-0 == +0)."""
    with np.errstate(over="ignore"):  # beyond float16's range is +-inf, still in order
        half = np.asarray(scores, dtype=SCORE_DTYPE) + SCORE_DTYPE(0)  # rounds, and turns -0 into +0
    if np.isnan(half).any():
        raise ValueError("scores contain NaN")
    bits = half.view(np.uint16).astype(np.int64)
    return np.where(bits >= 0x8000, 0xFFFF - bits, bits | 0x8000)


def _descending(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (tp, fp) at each distinct score from the highest down; counts are in ascending key order."""
    pos, neg = pos[::-1], neg[::-1]
    present = (pos + neg) > 0
    return np.cumsum(pos[present]), np.cumsum(neg[present])


def _counts_auprc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision (sklearn's definition) from per-score-value counts; nan for one class."""
    if not pos.any() or not neg.any():
        return float("nan")
    tp, fp = _descending(pos, neg)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * (tp / (tp + fp))))


def _counts_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC (trapezoids through every distinct threshold, as sklearn) from counts; nan for one class."""
    if not pos.any() or not neg.any():
        return float("nan")
    tp, fp = _descending(pos, neg)
    return float(np.trapezoid(np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]))


def thin_curve(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_CURVE_POINTS evenly spaced points of a curve, both ends kept."""
    if len(precision) <= MAX_CURVE_POINTS:
        return precision, recall
    keep = np.unique(np.linspace(0, len(precision) - 1, MAX_CURVE_POINTS).round().astype(np.int64))
    return precision[keep], recall[keep]


class StreamingMetrics:
    """:func:`evaluate_scores` accumulated from blocks of rows (bins) of one score matrix.

    ``add(labels, scores, train_fraction)`` takes a (n, n_cells) block and its (n,) training
    fractions (or None: then ``binned`` is left out of the result); the columns ``skip`` (cell types
    known to have one class only over all the rows to come) are left out of ``binned`` and
    ``auprc_specific``, as :func:`evaluate_scores` leaves them out; ``result()`` returns the dict of
    :func:`evaluate_scores` for every row added, computed on the scores rounded to float16;
    ``curve()`` the pooled precision-recall curve as sklearn's ``precision_recall_curve`` gives it.
    """

    def __init__(self, n_cells: int, edges=DEFAULT_EDGES, skip=()):
        self.edges = _check_edges(edges)
        self.n_cells = int(n_cells)
        self.pooled_by_fraction = np.setdiff1d(np.arange(self.n_cells), skip)  # columns of ``binned`` and specific
        self.cells = np.zeros((self.n_cells, _KEYS, 2), np.int64)  # [cell, key, label]
        self.bins = np.zeros((len(self.edges) - 1, _KEYS, 2), np.int64)  # [fraction bin, key, label]
        self.specific = np.zeros((_KEYS, 2), np.int64)  # [key, label] of the cell-type-specific pairs
        self.binned = False
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_pairs = 0

    def add(self, labels, scores, train_fraction=None) -> None:
        labels, scores = _check_pairs(labels, scores)
        if labels.shape[1] != self.n_cells:
            raise ValueError(f"blocks have {labels.shape[1]} cell types, expected {self.n_cells}")
        code = score_keys(scores) * 2 + (labels != 0)  # key and label in one index
        cell_index = (np.arange(self.n_cells) * (2 * _KEYS))[None, :] + code
        bin_index = np.empty(0, np.int64)
        if train_fraction is not None:
            self.binned = True
            which = _fraction_bin(train_fraction, self.edges, labels.shape[0])
            inside = which >= 0
            kept = code[:, self.pooled_by_fraction]
            bin_index = (which[inside, None] * (2 * _KEYS) + kept[inside]).ravel()
            specific = kept[specific_rows(train_fraction, labels.shape[0])].ravel()
            self.specific += np.bincount(specific, minlength=self.specific.size).reshape(self.specific.shape)
        self._pending.append((cell_index.ravel(), bin_index))
        self._pending_pairs += code.size
        if self._pending_pairs >= _PENDING:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            cells, bins = (np.concatenate(parts) for parts in zip(*self._pending))
            self.cells += np.bincount(cells, minlength=self.cells.size).reshape(self.cells.shape)
            self.bins += np.bincount(bins, minlength=self.bins.size).reshape(self.bins.shape)
        self._pending, self._pending_pairs = [], 0

    def result(self) -> dict:
        self._flush()
        pooled = self.cells.sum(axis=0)
        per_auprc = [_counts_auprc(c[:, 1], c[:, 0]) for c in self.cells]
        per_auroc = [_counts_auroc(c[:, 1], c[:, 0]) for c in self.cells]
        result = {"auprc": _counts_auprc(pooled[:, 1], pooled[:, 0]), "auroc": _counts_auroc(pooled[:, 1], pooled[:, 0]),
                  **_per_cell(per_auprc, per_auroc)}
        if self.binned:
            result["auprc_specific"] = _counts_auprc(self.specific[:, 1], self.specific[:, 0])
            result["n_specific"] = int(self.specific.sum())
            result["binned"] = []
            for (lo, hi), counts in zip(zip(self.edges[:-1], self.edges[1:]), self.bins):
                pos, neg, minority = counts[:, 1], counts[:, 0], _minority(lo, hi)
                # the inaccessible minority: labels 1 - y and scores -s, i.e. the keys read upwards
                value = (_counts_auprc(neg[::-1], pos[::-1]) if minority == "inaccessible"
                         else _counts_auprc(pos, neg))
                result["binned"].append(_bin_entry(lo, hi, int(counts.sum()), int(pos.sum()), value, minority))
        return result

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (precision, recall), recall decreasing, ending at (1, 0); empty for one class."""
        self._flush()
        pooled = self.cells.sum(axis=0)
        if not pooled[:, 1].any() or not pooled[:, 0].any():
            return np.empty(0), np.empty(0)
        tp, fp = _descending(pooled[:, 1], pooled[:, 0])
        return np.r_[(tp / (tp + fp))[::-1], 1.0], np.r_[(tp / tp[-1])[::-1], 0.0]
