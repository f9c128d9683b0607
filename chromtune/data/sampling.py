"""Batch sampling for both stages and for evaluation; all index arithmetic is vectorised numpy.

Batches carry indices and labels only; windows are gathered by ``Dataset.window_codes`` and
one-hot encoded on the device by the training loop.

    Stage1Sampler.batch  -> bins (B,) int64, targets (B, T_train) float32
    Stage2Sampler.batch  -> bins (B,) int64, cells (B,) int64 (global cell-type index), targets (B,) float32
    eval_chunks          -> consecutive (<= B,) slices of an index array

Every global batch is drawn from a generator seeded by (seed, epoch, step), identically on every
worker, and worker ``rank`` of ``world_size`` keeps rows ``rank::world_size``: shards are disjoint,
and a run resumed at an epoch draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def _generator(seed: int, epoch: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, step])


class Stage1Sampler:
    """Training bins x the labels of the training cell types (multi-task)."""

    def __init__(self, labels: np.ndarray, bins: np.ndarray, train_cells, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.targets = np.ascontiguousarray(labels[:, list(train_cells)], dtype=np.float32)
        self.bins = np.asarray(bins, dtype=np.int64)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        rng = _generator(self.seed, epoch, step)
        bins = self.bins[rng.integers(0, len(self.bins), self.batch_size)][self.rank::self.world_size]
        return bins, self.targets[bins]

    def epoch(self, epoch: int, n_batches: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for step in range(n_batches):
            yield self.batch(epoch, step)


class Stage2Sampler:
    """(bin, training cell type) pairs, one positive to three negatives in every batch.

    Positives are drawn uniformly from all positive training pairs (so they are up-sampled);
    negatives uniformly from the rest by rejection, which costs little because positives are rare.
    Only label columns of ``train_cells`` are ever read.
    """

    def __init__(self, labels: np.ndarray, bins: np.ndarray, train_cells, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.cells = np.asarray(list(train_cells), dtype=np.int64)
        self.bins = np.asarray(bins, dtype=np.int64)
        self.block = np.ascontiguousarray(labels[np.ix_(self.bins, self.cells)])
        self.positives = np.flatnonzero(self.block.ravel())
        if len(self.positives) == 0 or len(self.positives) == self.block.size:
            raise ValueError("stage 2 needs both positive and negative training pairs")
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.n_pos = max(1, batch_size // 4)

    def _negatives(self, rng: np.random.Generator, count: int) -> np.ndarray:
        flat = self.block.ravel()
        chosen = np.empty(0, dtype=np.int64)
        while len(chosen) < count:
            draw = rng.integers(0, flat.size, 2 * count)
            chosen = np.concatenate([chosen, draw[flat[draw] == 0]])
        return chosen[:count]

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = _generator(self.seed, epoch, step)
        pos = self.positives[rng.integers(0, len(self.positives), self.n_pos)]
        pairs = np.concatenate([pos, self._negatives(rng, self.batch_size - self.n_pos)])
        pairs = pairs[rng.permutation(len(pairs))][self.rank::self.world_size]
        row, col = np.divmod(pairs, len(self.cells))
        return self.bins[row], self.cells[col], self.block.ravel()[pairs].astype(np.float32)

    def epoch(self, epoch: int, n_batches: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for step in range(n_batches):
            yield self.batch(epoch, step)


def eval_chunks(indices: np.ndarray, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[np.ndarray]:
    """Consecutive chunks of ``indices`` (this worker's contiguous share when sharded)."""
    share = np.array_split(np.asarray(indices, dtype=np.int64), world_size)[rank]
    for start in range(0, len(share), batch_size):
        yield share[start:start + batch_size]
