"""Batch sampling for both stages and for evaluation; all index arithmetic is vectorised numpy.

Batches carry indices and labels only; windows are gathered by ``Dataset.window_codes`` and
one-hot encoded on the device by the training loop.

    labels               (n_bins, T) 0/1 read by blocks: chromtune.data.labels.PackedLabels or dense uint8
    bins                 the training bins: an index array, or BinRanges (kept as runs, never listed)
    Stage1Sampler.batch  -> bins (B,) int64, targets (B, T_train) float32
    Stage2Sampler.batch  -> bins (B,) int64, cells (B,) int64 (global cell-type index), targets (B,) float32;
                            with ``pairs_per_bin`` k > 1 the B pairs come in groups of up to k per bin
    eval_chunks          -> consecutive (<= B,) slices of an index array

Every global batch is drawn from a generator seeded by (seed, epoch, step), identically on every
worker, and worker ``rank`` of ``world_size`` keeps rows ``rank::world_size``: shards are disjoint,
and a run resumed at an epoch draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from chromtune.data.folds import BinRanges
from chromtune.errors import UserError


def _generator(seed: int, epoch: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, step])


class Stage1Sampler:
    """Training bins x the labels of the training cell types (multi-task); targets are gathered per batch."""

    def __init__(self, labels, bins: np.ndarray, train_cells, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.labels, self.cells = labels, np.asarray(list(train_cells), dtype=np.int64)
        self.bins = bins if isinstance(bins, BinRanges) else np.asarray(bins, dtype=np.int64)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        rng = _generator(self.seed, epoch, step)
        bins = self.bins[rng.integers(0, len(self.bins), self.batch_size)][self.rank::self.world_size]
        return bins, self.labels[np.ix_(bins, self.cells)].astype(np.float32)

    def epoch(self, epoch: int, n_batches: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for step in range(n_batches):
            yield self.batch(epoch, step)


def check_pairs_per_bin(pairs_per_bin: int, folds) -> None:
    """One line (UserError) when a fold has fewer training cell types than ``--pairs-per-bin``."""
    fewest = min(folds, key=lambda fold: len(fold.train))
    if pairs_per_bin > len(fewest.train):
        raise UserError(f"--pairs-per-bin {pairs_per_bin}: fold {fewest.index} has {len(fewest.train)} training "
                        f"cell types; a bin's group holds at most that many pairs")


class Stage2Sampler:
    """(bin, training cell type) pairs, one positive to three negatives in every batch.

    Pairs are drawn uniformly from training bins x training cell types and kept by their label until
    the batch has its positives and its negatives (rejection sampling): positives are then uniform
    over all positive training pairs (so they are up-sampled), negatives over the rest. Only the
    drawn pairs' labels are read, from the packed bits, so nothing of size bins x cells is built;
    only label columns of ``train_cells`` are ever read.

    ``pairs_per_bin`` k > 1 groups the pairs by bin, so that training runs the trunk once per bin
    for up to k pairs: a drawn pair (b, j) of label v is an anchor; its group is the anchor plus
    up to k - 1 other training cell types of label v at bin b, uniform without replacement. The
    group's size is s = min(k, n, what the batch still needs) for a bin with n pairs of label v,
    and the anchor is kept with probability 1 / s, so every pair of a class stays equally likely
    to be in a batch, as with independent pairs: only which pairs share a batch changes, and the
    batch holds exactly B // 4 positives. Workers take whole groups (``rank::world_size`` of them
    in a random order), so their shards hold about, not exactly, one positive to three negatives.
    """

    _DRAWS = 1 << 14  # pairs drawn per round
    _MAX_ROUNDS = 1 << 8  # a batch that finds no positive (or no negative) in this many rounds fails
    _CHECK_PAIRS = 1 << 24  # up to this many training pairs, construction checks both classes exactly

    def __init__(self, labels, bins: np.ndarray, train_cells, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, pairs_per_bin: int = 1):
        self.labels, self.cells = labels, np.asarray(list(train_cells), dtype=np.int64)
        self.bins = bins if isinstance(bins, BinRanges) else np.asarray(bins, dtype=np.int64)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        if not 1 <= pairs_per_bin <= len(self.cells):
            raise ValueError(f"pairs per bin must lie in 1..{len(self.cells)} (the training cell types), "
                             f"not {pairs_per_bin}")
        self.pairs_per_bin = pairs_per_bin
        self.n_pos = max(1, batch_size // 4)
        if len(self.bins) * len(self.cells) <= self._CHECK_PAIRS:
            positives = sum(int(np.count_nonzero(labels[np.ix_(self.bins[s:s + 4096], self.cells)]))
                            for s in range(0, len(self.bins), 4096))
            if positives in (0, len(self.bins) * len(self.cells)):
                raise ValueError("stage 2 needs both positive and negative training pairs")

    def _pairs(self, rng: np.random.Generator, n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bins, cells, labels) of ``n_pos`` positive then ``n_neg`` negative pairs, by rejection."""
        got = {1: [], 0: []}
        need = {1: n_pos, 0: n_neg}
        for _ in range(self._MAX_ROUNDS):
            rows = self.bins[rng.integers(0, len(self.bins), self._DRAWS)]
            cols = self.cells[rng.integers(0, len(self.cells), self._DRAWS)]
            y = np.asarray(self.labels[rows, cols])
            for value in (1, 0):
                keep = np.flatnonzero(y == value)[:need[value]]
                got[value].append((rows[keep], cols[keep]))
                need[value] -= len(keep)
            if need[1] == need[0] == 0:
                rows = np.concatenate([r for r, _ in got[1] + got[0]])
                cols = np.concatenate([c for _, c in got[1] + got[0]])
                return rows, cols, np.repeat(np.array([1, 0], np.float32), [n_pos, n_neg])
        kind = "positive" if need[1] else "negative"
        raise ValueError(f"stage 2 needs both positive and negative training pairs; no {kind} pair found in "
                         f"{self._MAX_ROUNDS * self._DRAWS:,} draws")

    def _groups(self, rng: np.random.Generator, value: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bins, cells, group) of ``n`` pairs of label ``value`` in groups of up to k per bin (see the class)."""
        bins, cells, groups, need = [], [], [], n
        for _ in range(self._MAX_ROUNDS):
            rows = self.bins[rng.integers(0, len(self.bins), self._DRAWS)]
            cols = rng.integers(0, len(self.cells), self._DRAWS)  # positions in self.cells
            hits = np.flatnonzero(np.asarray(self.labels[rows, self.cells[cols]]) == value)[:need]
            same = np.asarray(self.labels[np.ix_(rows[hits], self.cells)]) == value  # (anchors, T)
            n_same, accept = same.sum(1), rng.random(len(hits))
            keys = rng.random(same.shape)
            keys[~same] = np.inf
            keys[np.arange(len(hits)), cols[hits]] = -1.0  # the anchor first, then its partners at random
            members = np.argsort(keys, axis=1)[:, :self.pairs_per_bin]
            for anchor in range(len(hits)):  # at most ``need`` anchors: a short loop
                size = min(self.pairs_per_bin, int(n_same[anchor]), need)  # never more than the batch still needs
                if accept[anchor] * size >= 1:  # kept with probability 1 / size: every pair equally likely
                    continue
                bins.append(np.full(size, rows[hits[anchor]]))
                cells.append(self.cells[members[anchor, :size]])
                groups.append(np.full(size, len(groups)))
                need -= size
                if need == 0:
                    return np.concatenate(bins), np.concatenate(cells), np.concatenate(groups)
        kind = "positive" if value else "negative"
        raise ValueError(f"stage 2 needs both positive and negative training pairs; no {kind} pair found in "
                         f"{self._MAX_ROUNDS * self._DRAWS:,} draws")

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = _generator(self.seed, epoch, step)
        if self.pairs_per_bin == 1:
            bins, cells, y = self._pairs(rng, self.n_pos, self.batch_size - self.n_pos)
            order = rng.permutation(len(y))[self.rank::self.world_size]
            return bins[order], cells[order], y[order]
        pos_bins, pos_cells, pos_group = self._groups(rng, 1, self.n_pos)
        neg_bins, neg_cells, neg_group = self._groups(rng, 0, self.batch_size - self.n_pos)
        group = np.concatenate([pos_group, neg_group + pos_group.max() + 1])
        mine = np.isin(group, rng.permutation(group.max() + 1)[self.rank::self.world_size])
        y = np.repeat(np.array([1, 0], np.float32), [self.n_pos, self.batch_size - self.n_pos])
        return np.concatenate([pos_bins, neg_bins])[mine], np.concatenate([pos_cells, neg_cells])[mine], y[mine]

    def epoch(self, epoch: int, n_batches: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for step in range(n_batches):
            yield self.batch(epoch, step)


def eval_chunks(indices: np.ndarray, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[np.ndarray]:
    """Consecutive chunks of ``indices`` (this worker's contiguous share when sharded)."""
    share = np.array_split(np.asarray(indices, dtype=np.int64), world_size)[rank]
    for start in range(0, len(share), batch_size):
        yield share[start:start + batch_size]
