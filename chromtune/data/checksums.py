"""Digests of a data set file's datasets, written as they stream out and checked by ``inspect``.

The large arrays are contiguous and uncompressed (they are memory-mapped on open), so HDF5's
Fletcher-32 filter, which needs chunked storage, cannot guard them. Instead each dataset carries
the attribute ``digest = "sha256:<hex>"``: the SHA-256 digest of its bytes as stored, in C order;
a dataset of variable-length strings (names) hashes each string's UTF-8 bytes followed by a NUL.
The file's attributes (bin size, stride, context, provenance) are not covered. SHA-256 rather
than BLAKE2b: with the SHA instructions of current x86 and ARM CPUs it hashes about twice as fast
(benchmarks/bench_checksums.py).

Writers compute the digest from the blocks they write (:class:`DigestedDataset`), so writing
costs no second pass over the file. Opening a data set never hashes it (a genome is gigabytes);
:func:`verify_digests` reads every digested dataset in bounded blocks, and ``chromtune inspect``
runs it. Files from older writers have no digests: they are reported as unchecked, not as damaged.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

import h5py
import numpy as np

from chromtune.errors import UserError

DIGEST_ATTR = "digest"
ALGORITHM = "sha256"
BLOCK_BYTES = 1 << 23  # bytes read per step of a verification: 8 MiB


class DigestMismatch(UserError):
    """A dataset whose bytes no longer match the digest written with it (one line naming file and dataset)."""


def _hasher():
    return hashlib.sha256()


def _label(hasher) -> str:
    return f"{ALGORITHM}:{hasher.hexdigest()}"


class DigestedDataset:
    """A dataset written front to back along its first axis, its digest computed from the blocks.

    ``write`` appends rows; ``close`` checks that every row was written and stores the digest.
    """

    def __init__(self, f: h5py.File | h5py.Group, name: str, shape: tuple[int, ...], dtype):
        self.target = f.create_dataset(name, shape=shape, dtype=dtype)
        self._hasher = _hasher()
        self._filled = 0

    def write(self, block) -> None:
        block = np.ascontiguousarray(block, dtype=self.target.dtype)
        if block.shape[1:] != self.target.shape[1:] or self._filled + len(block) > len(self.target):
            raise ValueError(f"{self.target.name}: block of shape {block.shape} does not fit "
                             f"at row {self._filled} of {self.target.shape}")
        self.target[self._filled:self._filled + len(block)] = block
        self._hasher.update(block)
        self._filled += len(block)

    def close(self) -> None:
        if self._filled != len(self.target):
            raise ValueError(f"{self.target.name}: {self._filled} of {len(self.target)} rows written")
        self.target.attrs[DIGEST_ATTR] = _label(self._hasher)


def _hash_strings(hasher, values) -> None:
    for value in values:
        hasher.update((value.decode() if isinstance(value, bytes) else str(value)).encode() + b"\0")


def put(f: h5py.File | h5py.Group, name: str, values) -> None:
    """Write a small array in one piece, with its digest; an object array is written as
    variable-length strings."""
    values = np.ascontiguousarray(values)
    hasher = _hasher()
    if values.dtype.kind == "O":
        values = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()],
                            dtype=h5py.string_dtype())
        _hash_strings(hasher, values.tolist())
    else:
        hasher.update(values)
    f[name] = values
    f[name].attrs[DIGEST_ATTR] = _label(hasher)


def put_names(f: h5py.File | h5py.Group, name: str, names) -> None:
    """Write a list of names as variable-length strings, with their digest."""
    put(f, name, np.asarray([str(n) for n in names], dtype=object))


def _stored_bytes(dataset: h5py.Dataset) -> int:
    return dataset.id.get_storage_size() if dataset.dtype.kind == "O" else int(dataset.nbytes)


def _file_digest(dataset: h5py.Dataset, read: Callable[[int], None]) -> str:
    """The digest of ``dataset``'s bytes, read in blocks of about BLOCK_BYTES; ``read`` hears how many
    bytes each block held."""
    hasher = _hasher()
    if dataset.dtype.kind == "O":  # variable-length strings
        _hash_strings(hasher, dataset[()].tolist())
        read(_stored_bytes(dataset))
        return _label(hasher)
    if dataset.shape == () or dataset.size == 0:
        hasher.update(np.ascontiguousarray(dataset[()]))
        read(_stored_bytes(dataset))
        return _label(hasher)
    row_bytes = max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64)))
    step = max(1, BLOCK_BYTES // row_bytes)
    buffer = np.empty((min(step, len(dataset)),) + dataset.shape[1:], dtype=dataset.dtype)
    for start in range(0, len(dataset), step):
        stop = min(start + step, len(dataset))
        block = buffer[:stop - start]
        dataset.read_direct(block, np.s_[start:stop])
        hasher.update(block)
        read(block.nbytes)
    return _label(hasher)


def verify_digests(path: str | os.PathLike, progress=None) -> list[str]:
    """Check every dataset of ``path`` that carries a digest; return their names (empty: the file
    has no digests). A mismatch raises :class:`DigestMismatch` naming the file and the dataset;
    an unreadable file raises h5py's OSError. ``progress`` (a :class:`chromtune.progress.Progress`)
    counts the megabytes read (kilobytes in a file under 10 MB).

    Memory stays bounded (one 8 MiB buffer per dataset) however large the file.
    """
    checked: list[str] = []
    done, unit = [0], 1_000_000

    def read(nbytes: int) -> None:
        done[0] += nbytes
        if progress is not None:
            progress.update(done=done[0] // unit)

    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visititems(lambda name, node: names.append(name)
                     if isinstance(node, h5py.Dataset) and DIGEST_ATTR in node.attrs else None)
        if progress is not None:
            total = sum(_stored_bytes(f[name]) for name in names)
            unit = 1_000_000 if total >= 10_000_000 else 1_000
            progress.begin(total // unit, "MB" if unit == 1_000_000 else "kB", phase="verifying checksums")
        for name in names:
            stored = f[name].attrs[DIGEST_ATTR]
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
            if not stored.startswith(f"{ALGORITHM}:"):
                raise DigestMismatch(f"{path}: dataset '{name}' has a digest of unknown kind "
                                     f"({stored.split(':')[0]}); this chromtune checks {ALGORITHM}")
            if _file_digest(f[name], read) != stored:
                raise DigestMismatch(f"{path}: dataset '{name}' does not match the digest written with it "
                                     "(the file changed or was damaged after it was written)")
            checked.append(name)
    return checked
