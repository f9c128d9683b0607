"""Label-only baselines: mean accessibility and the RNA-weighted mean (ChromDragoNN paper, Table 1).

Shape contracts (cell-type indices address the columns of ``labels`` and the rows of
``expression``, the data set's common cell-type axis):
    labels          (n_bins, n_cells)   0/1 accessibility, read by blocks (PackedLabels or dense)
    expression      (n_cells, n_genes)  TF expression
    train_cells     (n_train,)          int indices of the fold's TRAINING cell types
    target_cells    (n_target,)         int indices of the cell types to score (validation / test)
    bins            (n,)                the bins asked for (default: all, read in chunks)
    returns         mean_accessibility (n,) float32; expression_similarity
                    (n_target, n_train) float64; the baselines (n, n_target) float32

Nothing of size bins x cell types is built: labels are read in chunks of ``_CHUNK_ROWS`` bins, and
only for the bins asked for. :class:`MeanAccessibility` is the training path's form of the mean
feature: computed per batch from the packed bits (a popcount), never stored for the genome.

Only the label columns in ``train_cells`` are ever read, never those of validation or test cell
types, so neither the baselines nor the mean-accessibility feature can leak held-out labels.
Training and target cell types must be disjoint.
"""

from __future__ import annotations

import numpy as np

from chromtune.data.labels import PackedLabels

_CHUNK_ROWS = 1 << 16  # bins per matrix product, bounds the float32 copy of the label block


def _indices(cells, n: int, what: str) -> np.ndarray:
    cells = np.asarray(cells, dtype=np.int64).ravel()
    if cells.size == 0:
        raise ValueError(f"{what} is empty")
    if cells.min() < 0 or cells.max() >= n:
        raise ValueError(f"{what} has indices outside 0..{n - 1}")
    if np.unique(cells).size != cells.size:
        raise ValueError(f"{what} has repeated indices")
    return cells


def _fold_indices(train_cells, target_cells, n: int) -> tuple[np.ndarray, np.ndarray]:
    train = _indices(train_cells, n, "train_cells")
    target = _indices(target_cells, n, "target_cells")
    if np.intersect1d(train, target).size:
        raise ValueError("train_cells and target_cells overlap: a target's own labels would leak")
    return train, target


def _bins(labels, bins) -> np.ndarray:
    return np.arange(labels.shape[0]) if bins is None else np.asarray(bins, dtype=np.int64)


def positive_counts(labels, bins, cells) -> np.ndarray:
    """(len(bins),) int32: per bin, in how many of ``cells`` it is accessible (chunks of bins)."""
    bins, cells = _bins(labels, bins), np.asarray(cells, dtype=np.int64)
    out = np.empty(len(bins), dtype=np.int32)
    for start in range(0, len(bins), _CHUNK_ROWS):
        chunk = bins[start:start + _CHUNK_ROWS]
        out[start:start + len(chunk)] = (labels.count(chunk, cells) if isinstance(labels, PackedLabels)
                                         else np.count_nonzero(labels[np.ix_(chunk, cells)], axis=1))
    return out


def mean_accessibility(labels, train_cells, bins=None) -> np.ndarray:
    """(len(bins),) float32: per bin, the fraction of the training cell types in which it is accessible.

    Reads only the ``train_cells`` columns; never pass validation or test cell types here.
    """
    train = _indices(train_cells, labels.shape[1], "train_cells")
    return (positive_counts(labels, bins, train) / train.size).astype(np.float32)


class MeanAccessibility:
    """The mean-accessibility feature of one fold, computed for the bins a batch asks for.

    ``feature[bins]`` -> (len(bins),) float32 fraction of the training cell types accessible;
    ``counts(bins)`` -> (len(bins),) int32 how many (e.g. for a leave-one-out mean of a training
    pair: ``(counts - own label) / (n_train - 1)``). Only ``train_cells`` columns are read.
    """

    def __init__(self, labels, train_cells):
        self.labels = labels
        self.train = _indices(train_cells, labels.shape[1], "train_cells")

    @property
    def n_train(self) -> int:
        return int(self.train.size)

    def counts(self, bins) -> np.ndarray:
        return positive_counts(self.labels, np.atleast_1d(np.asarray(bins, dtype=np.int64)), self.train)

    def __getitem__(self, bins) -> np.ndarray:
        return (self.counts(bins) / self.train.size).astype(np.float32)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __array__(self, dtype=None, copy=None):
        """The feature of every bin (read in chunks): for small data sets and tests."""
        values = mean_accessibility(self.labels, self.train)
        return values if dtype is None else values.astype(dtype)


def expression_similarity(expression: np.ndarray, train_cells, target_cells) -> np.ndarray:
    """(n_target, n_train) weights: Pearson correlation of expression profiles, clipped at 0, rows sum to 1.

    Pearson correlation of the whole TF-expression vectors (as DESIGN §1 asks) makes the
    weights independent of each cell type's overall expression level and scale. Negative
    correlations carry no evidence of similar accessibility, so they get weight 0. A profile
    with zero variance correlates with nothing (0). A target with no positively correlated
    training cell type falls back to uniform weights, i.e. the mean baseline.
    """
    expression = np.asarray(expression, dtype=np.float64)
    train, target = _fold_indices(train_cells, target_cells, expression.shape[0])
    centred = expression - expression.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    weights = np.clip(unit[target] @ unit[train].T, 0.0, None)
    totals = weights.sum(axis=1, keepdims=True)
    uniform = np.full_like(weights, 1.0 / train.size)
    return np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), uniform)


def mean_baseline(labels, train_cells, target_cells, bins=None) -> np.ndarray:
    """(len(bins), n_target) float32: score(i, j) = mean accessibility of bin i, for every target j."""
    _, target = _fold_indices(train_cells, target_cells, labels.shape[1])
    mean = mean_accessibility(labels, train_cells, bins)
    return np.repeat(mean[:, None], target.size, axis=1)


def weighted_mean_baseline(labels, expression: np.ndarray, train_cells, target_cells, bins=None) -> np.ndarray:
    """(len(bins), n_target) float32: training labels averaged with :func:`expression_similarity` weights."""
    if labels.shape[1] != np.shape(expression)[0]:
        raise ValueError(f"labels has {labels.shape[1]} cell types but expression has {np.shape(expression)[0]}")
    train, _ = _fold_indices(train_cells, target_cells, labels.shape[1])
    weights_t = expression_similarity(expression, train_cells, target_cells).T.astype(np.float32)
    bins = _bins(labels, bins)
    out = np.empty((len(bins), weights_t.shape[1]), dtype=np.float32)
    for start in range(0, len(bins), _CHUNK_ROWS):
        chunk = bins[start:start + _CHUNK_ROWS]
        out[start:start + len(chunk)] = labels[np.ix_(chunk, train)].astype(np.float32) @ weights_t
    return out
