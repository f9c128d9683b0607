"""Reference and alternate windows around a base substitution, built from a data set's genome.

A data set bin's window is the ``context`` bp centred on the bin: on its chromosome it starts at
``bin_start + bin_size // 2 - context // 2`` (:func:`window_starts`), and positions past the
chromosome's ends read N, as :meth:`Dataset.window_codes` gives them. A substitution at 0-based
position p changes exactly the windows that hold p (:meth:`WindowIndex.bins_holding`); the window
*centred* on p starts at ``p - context // 2`` and holds p at offset ``context // 2``.

Shape contract (n windows, L = context)::

    window_starts(ds)                                 -> (n_bins,) int64 window start on its chromosome
    WindowIndex(ds).bins_holding(chrom, p)            -> (k,) int64 bins whose window holds p, by start
    WindowIndex(ds).nearest_bin(chrom, p)             -> the bin whose centre is nearest p, or -1
    genome_windows(ds, chrom, starts (n,))            -> (n, L) uint8 codes, N outside the chromosome
    substitute(codes (n, L), offsets (n,), bases (n,)) -> a copy with codes[i, offsets[i]] = bases[i]
"""

from __future__ import annotations

import numpy as np

from chromtune.data.dataset import Dataset

N_CODE = 4


def window_starts(ds: Dataset) -> np.ndarray:
    """(n_bins,) int64: where each bin's window starts on its chromosome (0-based; may be < 0)."""
    return ds.bin_start.astype(np.int64) + ds.bin_size // 2 - ds.context // 2


class WindowIndex:
    """The data set's bins sorted by chromosome and window start, to find the windows holding a position."""

    def __init__(self, ds: Dataset):
        self.context, self.bin_size = ds.context, ds.bin_size
        starts = window_starts(ds)
        self.order = np.lexsort((starts, ds.bin_chrom))
        self.starts = starts[self.order]
        self.bounds = np.searchsorted(ds.bin_chrom[self.order], np.arange(len(ds.chromosomes) + 1))

    def bins_in(self, chrom: int) -> int:
        """How many bins the chromosome (index into the data set's chromosomes) has."""
        return int(self.bounds[chrom + 1] - self.bounds[chrom])

    def bins_holding(self, chrom: int, position: int) -> np.ndarray:
        """The bins whose window holds the 0-based `position` of chromosome index `chrom`, by window start."""
        a, b = self.bounds[chrom], self.bounds[chrom + 1]
        lo = a + np.searchsorted(self.starts[a:b], position - self.context, side="right")
        hi = a + np.searchsorted(self.starts[a:b], position, side="right")
        return self.order[lo:hi]

    def nearest_bin(self, chrom: int, position: int) -> int:
        """The bin of chromosome index `chrom` whose centre is nearest `position` (the first on a tie); -1 if none."""
        a, b = self.bounds[chrom], self.bounds[chrom + 1]
        if a == b:
            return -1
        target = position - self.context // 2  # a window centred there; a window's centre is its bin's centre
        k = a + int(np.searchsorted(self.starts[a:b], target))
        candidates = [c for c in (k - 1, k) if a <= c < b]
        best = min(candidates, key=lambda c: (abs(int(self.starts[c]) - target), c))
        return int(self.order[best])


def genome_windows(ds: Dataset, chrom: int, starts: np.ndarray) -> np.ndarray:
    """(len(starts), context) uint8 codes of chromosome index `chrom` from each start; N outside it."""
    if ds.genome is None:
        raise ValueError("the data set stores windows, not a genome")
    sequence = ds.genome[ds.chromosomes[chrom]]
    index = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(ds.context, dtype=np.int64)
    inside = (index >= 0) & (index < len(sequence))
    return np.where(inside, sequence[np.clip(index, 0, max(0, len(sequence) - 1))], N_CODE).astype(np.uint8)


def substitute(codes: np.ndarray, offsets: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """A copy of the (n, L) `codes` with ``codes[i, offsets[i]] = bases[i]`` (offsets outside 0..L-1: unchanged)."""
    out = np.array(codes, dtype=np.uint8, copy=True)
    offsets, bases = np.asarray(offsets, dtype=np.int64), np.asarray(bases, dtype=np.uint8)
    rows = np.flatnonzero((offsets >= 0) & (offsets < out.shape[1]))
    out[rows, offsets[rows]] = bases[rows]
    return out
