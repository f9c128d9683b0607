"""Bins x cell types 0/1 labels held as bits: one bit per (bin, cell type), dense only by the block.

Layout: ``packed`` is (n_bins, ceil(T / 8)) uint8, row i = ``np.packbits(dense[i])`` with numpy's
default big bit order, i.e. cell type j is bit ``7 - j % 8`` (mask ``0x80 >> (j % 8)``) of byte
``j // 8`` — the reference implementation's layout. Bits past T are 0.

:class:`PackedLabels` reads like the dense matrix for the blocks a caller asks for, never more:

    labels[rows]                 (len(rows), T) uint8
    labels[np.ix_(rows, cols)]   (len(rows), len(cols)) uint8
    labels[rows, cols]           elementwise for broadcastable index arrays
    labels.count(rows, cols)     (len(rows),) int32 positives per row among ``cols`` (popcount)
    labels.column_counts(blocks) (T,) int64 positives per cell type (of every row, or of the given blocks of rows)

``packed`` may be a read-only memory map of the data set file: every process that opens the file
then shares one copy in the page cache.
"""

from __future__ import annotations

import numpy as np

SPARSE_BYTES = 64  # a chunk with at most 1 in 64 bytes non-zero is counted from its non-zero bytes alone
CHUNK_ROWS = 1 << 18  # rows per chunk of whole-file passes (checks, column counts): 4 MB at 123 cell types
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.int64)  # byte value -> its 8 bits


def pack(dense: np.ndarray) -> np.ndarray:
    """(n, T) 0/1 -> (n, ceil(T / 8)) uint8 packed rows (module doc); values other than 0/1 raise."""
    dense = np.asarray(dense)
    if dense.size and (dense.min() < 0 or dense.max() > 1):
        raise ValueError("labels hold values other than 0 and 1")
    return np.packbits(dense.astype(bool, copy=False), axis=1)


class PackedLabels:
    """A (n_bins, n_cells) uint8 0/1 matrix stored as bit-packed rows (see the module doc)."""

    ndim = 2
    dtype = np.dtype(np.uint8)

    def __init__(self, packed: np.ndarray, n_cells: int):
        if packed.ndim != 2 or packed.shape[1] != -(-n_cells // 8):
            raise ValueError(f"packed labels of shape {packed.shape} do not hold {n_cells} cell types")
        self.packed = packed
        self.n_cells = int(n_cells)

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "PackedLabels":
        return cls(pack(dense), np.shape(dense)[1])

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.packed.shape[0]), self.n_cells)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)

    def __len__(self) -> int:
        return int(self.packed.shape[0])

    def _rows(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(len(self))[key]
        return np.asarray(key, dtype=np.int64)

    def _cols(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(self.n_cells)[key]
        cols = np.asarray(key, dtype=np.int64)
        if cols.size and (cols.min() < -self.n_cells or cols.max() >= self.n_cells):
            raise IndexError(f"cell-type index out of range 0..{self.n_cells - 1}")
        return np.where(cols < 0, cols + self.n_cells, cols)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            rows = self._rows(key)
            return np.unpackbits(self.packed[rows], axis=-1, count=self.n_cells)
        if len(key) != 2:
            raise IndexError("labels take at most two indices (rows, cell types)")
        if isinstance(key[0], slice) and not isinstance(key[1], slice) and np.ndim(key[1]) == 1:
            cols = self._cols(key[1])  # a run of rows: read it whole, then only the bytes of these columns
            byte = np.asarray(self.packed[key[0]])[:, cols >> 3]
            return (byte >> (7 - (cols & 7)).astype(np.uint8)) & np.uint8(1)
        rows, cols = self._rows(key[0]), self._cols(key[1])
        if isinstance(key[0], slice) and isinstance(key[1], slice):
            rows, cols = rows[:, None], cols[None, :]
        elif isinstance(key[0], slice):
            rows = rows.reshape(rows.shape + (1,) * cols.ndim)
        elif isinstance(key[1], slice):
            cols = cols.reshape((1,) * rows.ndim + cols.shape)
        byte = self.packed[rows, cols >> 3]
        return (byte >> (7 - (cols & 7)).astype(np.uint8)) & np.uint8(1)

    def count(self, rows, cols) -> np.ndarray:
        """(len(rows),) int32: positives of each row among the distinct cell types ``cols`` (a popcount)."""
        rows, cols = self._rows(rows), self._cols(cols)
        mask = np.zeros(self.packed.shape[1], dtype=np.uint8)
        np.bitwise_or.at(mask, cols >> 3, (0x80 >> (cols & 7)).astype(np.uint8))
        return _POPCOUNT[self.packed[rows] & mask].sum(axis=-1, dtype=np.int32)

    def column_counts(self, blocks=None) -> np.ndarray:
        """(n_cells,) int64 positives per cell type, counted from the packed bytes in chunks of rows:
        a histogram of each (byte column, value) pair, times each value's bits. With rare positives
        (nearly every byte zero) only the non-zero bytes are histogrammed; a chunk with many of them
        is histogrammed byte column by byte column, so the int64 positions of its non-zero bytes
        never outgrow the chunk. Memory follows a chunk of packed rows, never a dense block.
        ``blocks``: the rows to count, as an iterable of row-index arrays or slices (default: every
        row, CHUNK_ROWS at a time)."""
        width = self.packed.shape[1]
        histogram = np.zeros((width, 256), dtype=np.int64)
        if blocks is None:
            blocks = (slice(start, start + CHUNK_ROWS) for start in range(0, len(self), CHUNK_ROWS))
        for rows in blocks:
            block = np.ascontiguousarray(self.packed[rows])
            if np.count_nonzero(block) > block.size // SPARSE_BYTES:
                for byte in range(width):
                    histogram[byte] += np.bincount(block[:, byte], minlength=256)
                continue
            flat = block.reshape(-1)
            nonzero = np.flatnonzero(flat)
            histogram += np.bincount(nonzero % width * 256 + flat[nonzero], minlength=width * 256).reshape(width, 256)
        return (histogram @ _BITS).reshape(-1)[:self.n_cells]

    def rows_positive_anywhere(self) -> int:
        """How many rows are positive in at least one cell type."""
        return sum(int(self.packed[s:s + CHUNK_ROWS].any(axis=1).sum()) for s in range(0, len(self), CHUNK_ROWS))

    def padding_is_clear(self) -> bool:
        """Whether every bit past the last cell type is 0 (the 0/1 check of packed labels)."""
        spare = (-self.n_cells) % 8
        if spare == 0 or len(self) == 0:
            return True
        mask = np.uint8((1 << spare) - 1)
        return not any((self.packed[s:s + CHUNK_ROWS, -1] & mask).any() for s in range(0, len(self), CHUNK_ROWS))

    def __array__(self, dtype=None, copy=None):
        """The whole dense matrix: for small data sets and tests only (n_bins x T bytes)."""
        dense = self[:]
        return dense if dtype is None else dense.astype(dtype)
