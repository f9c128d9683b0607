"""The chromtune data set file (HDF5) and its in-memory form.

One self-contained, read-only file per data set (format_version 2)::

    attrs            format="chromtune-dataset", format_version, bin_size, stride, context,
                     assembly, expression_transform, chromtune_version, provenance (JSON)
    chromosomes      (C,)        str     chromosome names, in bin order of first appearance
    sequence         (P,)        uint8   codes A,C,G,T,N = 0..4 of every chromosome, in order,  } exactly
                                         each preceded and the last followed by ``context`` N   } one of
    sequence_starts  (C,)        int64   where each chromosome starts in ``sequence``           } the
    windows          (n, L)      uint8   stored windows, L = context                            } two
    bins/chrom       (n,)        int32   index into ``chromosomes``
    bins/start       (n,)        int64   bin start (0-based); -1 where unknown (stored windows)
    labels_packed    (n, ceil(T/8)) uint8  labels bit-packed along cell types (chromtune.data.labels)
    cell_types       (T,)        str
    expression       (T, G)      float32 transformed TF expression, cell types x genes
    genes            (G,)        str
    truth/...        optional    the planted truth of the demo data set

The large arrays (sequence, windows, bins, labels) are contiguous, uncompressed datasets:
:func:`open_dataset` maps them read-only from the file (``np.memmap`` at their file offset), so
every process on a machine that opens the file shares one copy in the page cache and its private
memory does not grow with the genome. Files of format_version 1 (gzip-compressed ``genome/<chrom>``
and dense ``labels`` (n, T)) are still read, into private memory.

Every dataset carries a ``digest`` attribute computed as it is written (:mod:`chromtune.data.checksums`);
opening never hashes, ``chromtune inspect`` verifies. Files from writers before digests have none.

:func:`open_dataset` checks every shape, name and value and raises :class:`DatasetError` with one
line naming the file and the problem. :meth:`Dataset.window_codes` gathers (n, L) uint8 windows
for any bin indices with vectorised indexing (no per-sample Python).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from chromtune import __version__
from chromtune.atomic import atomic_path
from chromtune.data.checksums import DigestedDataset, put, put_names
from chromtune.data.labels import CHUNK_ROWS, PackedLabels, pack
from chromtune.errors import UserError

FORMAT = "chromtune-dataset"
FORMAT_VERSION = 2
N_CODE = 4
_SEQUENCE_CHUNK = 1 << 26  # bases per pass of the code check


class DatasetError(UserError):
    """A data set file that is missing, unreadable or inconsistent."""


@dataclass
class Dataset:
    """A data set held in memory or mapped from its file.

    Exactly one of ``genome`` (chromosome -> uint8 codes) and ``windows`` ((n, context) uint8)
    is set. ``labels`` is (n_bins, n_cell_types) 0/1, a :class:`PackedLabels` or (built in memory)
    a dense uint8 array; read it by blocks (``labels[rows]``, ``labels[np.ix_(rows, cols)]``).
    ``expression`` is (n_cell_types, n_genes).
    """

    chromosomes: list[str]
    bin_chrom: np.ndarray
    bin_start: np.ndarray
    labels: PackedLabels | np.ndarray
    cell_types: list[str]
    expression: np.ndarray
    genes: list[str]
    bin_size: int
    stride: int
    context: int
    genome: dict[str, np.ndarray] | None = None
    windows: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    path: str | None = None
    sequence: np.ndarray | None = field(default=None, repr=False)
    sequence_starts: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_bins(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_cell_types(self) -> int:
        return int(self.labels.shape[1])

    @property
    def n_genes(self) -> int:
        return int(self.expression.shape[1])

    def _sequence(self) -> tuple[np.ndarray, np.ndarray]:
        """All chromosomes' codes in one N-padded array (the file's ``sequence``) and their starts."""
        if self.sequence is None:
            self.sequence, self.sequence_starts = join_sequence([self.genome[c] for c in self.chromosomes],
                                                                self.context)
        return self.sequence, self.sequence_starts

    def window_codes(self, bins: np.ndarray) -> np.ndarray:
        """(len(bins), context) uint8 codes of the windows centred on ``bins``; N past chromosome ends."""
        bins = np.asarray(bins, dtype=np.int64)
        if self.windows is not None:
            return np.asarray(self.windows[bins])
        sequence, starts = self._sequence()
        left = self.bin_size // 2 - self.context // 2
        offsets = starts[self.bin_chrom[bins]] + self.bin_start[bins] + left
        return np.lib.stride_tricks.sliding_window_view(sequence, self.context)[offsets]

    def chrom_of_bins(self) -> np.ndarray:
        """(n_bins,) array of chromosome names."""
        return np.asarray(self.chromosomes, dtype=object)[self.bin_chrom]


def join_sequence(parts: list[np.ndarray], context: int) -> tuple[np.ndarray, np.ndarray]:
    """Chromosomes' codes joined with ``context`` N before each and after the last, and their starts."""
    lengths = np.asarray([len(p) for p in parts], dtype=np.int64)
    starts = context * np.arange(1, len(parts) + 1, dtype=np.int64) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out = np.full(int(lengths.sum()) + context * (len(parts) + 1), N_CODE, dtype=np.uint8)
    for part, start in zip(parts, starts):
        out[start:start + len(part)] = part
    return out, starts


def _write_rows(f: h5py.File, name: str, source, n: int, width: int | None, dtype, convert=None) -> None:
    """A contiguous (mappable) dataset filled from ``source`` in chunks of rows, with its digest."""
    target = DigestedDataset(f, name, (n,) if width is None else (n, width), dtype)
    for start in range(0, n, CHUNK_ROWS):
        block = np.asarray(source[start:start + CHUNK_ROWS])
        target.write(convert(block) if convert else block)
    target.close()


def write_dataset(path: str | os.PathLike, dataset: Dataset, provenance: dict | None = None) -> None:
    """Write ``dataset`` to ``path`` atomically (temporary name, then rename), in format_version 2."""
    if (dataset.genome is None) == (dataset.windows is None):
        raise ValueError("a data set holds exactly one of a genome and stored windows")
    attrs = dict(dataset.attrs)
    attrs.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        bin_size=int(dataset.bin_size),
        stride=int(dataset.stride),
        context=int(dataset.context),
        chromtune_version=__version__,
        provenance=json.dumps(provenance or json.loads(attrs.get("provenance", "{}"))),
    )
    attrs.setdefault("assembly", "unknown")
    attrs.setdefault("expression_transform", "log1p")
    n, n_cells = dataset.n_bins, len(dataset.cell_types)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            put_names(f, "chromosomes", dataset.chromosomes)
            if dataset.genome is not None:
                parts = [dataset.genome[chrom] for chrom in dataset.chromosomes]
                write_sequence(f, parts, dataset.context)
            else:
                _write_rows(f, "windows", dataset.windows, n, np.shape(dataset.windows)[1], np.uint8)
            _write_rows(f, "bins/chrom", dataset.bin_chrom, n, None, np.int32)
            _write_rows(f, "bins/start", dataset.bin_start, n, None, np.int64)
            labels = dataset.labels
            if isinstance(labels, PackedLabels):
                _write_rows(f, "labels_packed", labels.packed, n, labels.packed.shape[1], np.uint8)
            else:
                _write_rows(f, "labels_packed", labels, n, -(-n_cells // 8), np.uint8, pack)
            put_names(f, "cell_types", dataset.cell_types)
            put(f, "expression", np.asarray(dataset.expression, dtype=np.float32))
            put_names(f, "genes", dataset.genes)
            for key, value in dataset.truth.items():
                put(f, f"truth/{key}", value)


def write_sequence(f: h5py.File, parts, context: int, lengths: list[int] | None = None) -> np.ndarray:
    """Write ``sequence`` and ``sequence_starts`` (module doc) from the chromosomes' codes, one at a time,
    with their digests.

    ``parts`` may be an iterator (streaming) when ``lengths`` gives the chromosomes' lengths.
    Returns the starts.
    """
    lengths = np.asarray(lengths if lengths is not None else [len(p) for p in parts], dtype=np.int64)
    starts = context * np.arange(1, len(lengths) + 1, dtype=np.int64) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    total = int(lengths.sum()) + context * (len(lengths) + 1)
    target = DigestedDataset(f, "sequence", (total,), np.uint8)
    pad = np.full(context, N_CODE, dtype=np.uint8)
    target.write(pad)
    for part, length in zip(parts, lengths):
        if len(part) != length:
            raise ValueError("a chromosome's codes do not have its stated length")
        target.write(part)
        target.write(pad)
    target.close()
    put(f, "sequence_starts", starts)
    return starts


def _decode(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _check_unique(name: str, values: list[str], where: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise DatasetError(f"{where}: {name} {value!r} appears twice")
        seen.add(value)


def mapped(path: str | os.PathLike, dataset: h5py.Dataset) -> np.ndarray:
    """A read-only view of a contiguous, uncompressed HDF5 dataset mapped from the file; a private
    copy for any other layout (chunked, compressed, empty)."""
    offset = dataset.id.get_offset() if dataset.chunks is None and dataset.compression is None else None
    if offset is None or dataset.size == 0:
        return dataset[()]
    return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)


def format_version(path: str | os.PathLike) -> int:
    """The file's format_version (the current one when the file cannot be read: open_dataset says why)."""
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs.get("format_version", 1))
    except (OSError, ValueError, TypeError):
        return FORMAT_VERSION


_REQUIRED = {1: ("chromosomes", "bins/chrom", "bins/start", "labels", "cell_types", "expression", "genes"),
             2: ("chromosomes", "bins/chrom", "bins/start", "labels_packed", "cell_types", "expression", "genes")}


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Read and validate a data set file, mapping its large arrays (module doc); any problem is a
    one-line :class:`DatasetError`."""
    where = str(path)
    if not Path(path).is_file():
        raise DatasetError(f"{where}: no such data set file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise DatasetError(f"{where}: not a chromtune data set (format attribute missing)")
            version = int(f.attrs.get("format_version", 1))
            if version not in _REQUIRED:
                raise DatasetError(f"{where}: format_version {version} is newer than this chromtune "
                                   f"({__version__}) reads; upgrade chromtune")
            for key in _REQUIRED[version]:
                if key not in f:
                    raise DatasetError(f"{where}: missing '{key}'")
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            chromosomes = _decode(f["chromosomes"][()])
            cell_types = _decode(f["cell_types"][()])
            sequence = starts = genome = None
            if version == 1:
                genome = {c: f[f"genome/{c}"][()] for c in chromosomes} if "genome" in f else None
                windows = f["windows"][()] if "windows" in f else None
                labels = _dense_labels(f["labels"], len(cell_types), where)
            else:
                if "sequence" in f:
                    sequence, starts = mapped(path, f["sequence"]), f["sequence_starts"][()].astype(np.int64)
                windows = mapped(path, f["windows"]) if "windows" in f else None
                packed = mapped(path, f["labels_packed"])
                if packed.ndim != 2 or packed.shape[1] != -(-len(cell_types) // 8):
                    raise DatasetError(f"{where}: labels_packed has shape {packed.shape}, expected "
                                       f"(bins, {-(-len(cell_types) // 8)}) for {len(cell_types)} cell types")
                labels = PackedLabels(packed, len(cell_types))
            dataset = Dataset(
                chromosomes=chromosomes,
                bin_chrom=mapped(path, f["bins/chrom"]),
                bin_start=mapped(path, f["bins/start"]),
                labels=labels,
                cell_types=cell_types,
                expression=f["expression"][()].astype(np.float32),
                genes=_decode(f["genes"][()]),
                bin_size=int(attrs["bin_size"]),
                stride=int(attrs["stride"]),
                context=int(attrs["context"]),
                genome=genome,
                windows=windows,
                attrs=attrs,
                truth={k: f[f"truth/{k}"][()] for k in f["truth"]} if "truth" in f else {},
                path=where,
                sequence=sequence,
                sequence_starts=starts,
            )
            if sequence is not None:
                dataset.genome = _chromosome_views(dataset, where)
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise DatasetError(f"{where}: unreadable or truncated data set file ({err.__class__.__name__}: {err})") from None
    validate(dataset, where)
    return dataset


def _dense_labels(source: h5py.Dataset, n_cells: int, where: str) -> PackedLabels:
    """A format_version 1 dense (n, T) label matrix, packed chunk by chunk (0/1 checked on the way)."""
    if source.ndim != 2 or source.shape[1] != n_cells:
        raise DatasetError(f"{where}: labels have shape {source.shape}, expected ({source.shape[0]}, {n_cells})")
    packed = np.empty((source.shape[0], -(-n_cells // 8)), dtype=np.uint8)
    for start in range(0, source.shape[0], CHUNK_ROWS):
        try:
            packed[start:start + CHUNK_ROWS] = pack(source[start:start + CHUNK_ROWS])
        except ValueError:
            raise DatasetError(f"{where}: labels hold values other than 0 and 1") from None
    return PackedLabels(packed, n_cells)


def _chromosome_views(ds: Dataset, where: str) -> dict[str, np.ndarray]:
    """Chromosome -> its codes, as views of the mapped ``sequence`` (lengths from the N padding)."""
    starts = ds.sequence_starts
    if starts.shape != (len(ds.chromosomes),) or (np.diff(starts) <= ds.context).any() or \
            (len(starts) and (starts[0] != ds.context or starts[-1] + ds.context > len(ds.sequence))):
        raise DatasetError(f"{where}: sequence_starts do not fit the sequence and its N padding")
    ends = np.concatenate([starts[1:], [len(ds.sequence)]]) - ds.context
    return {c: ds.sequence[s:e] for c, s, e in zip(ds.chromosomes, starts, ends)}


def _chunked(array: np.ndarray, chunk: int = CHUNK_ROWS):
    for start in range(0, len(array), chunk):
        yield np.asarray(array[start:start + chunk])


def validate(ds: Dataset, where: str = "data set") -> None:
    """Check that shapes agree, names are unique, values are finite and labels are 0/1.

    Whole-file passes run in chunks, so a mapped data set is never copied into private memory.
    """
    n = len(ds.bin_chrom)
    if ds.labels.ndim != 2 or ds.labels.shape != (n, len(ds.cell_types)):
        raise DatasetError(f"{where}: labels have shape {ds.labels.shape}, expected ({n}, {len(ds.cell_types)})")
    if len(ds.bin_start) != n:
        raise DatasetError(f"{where}: bins/start has {len(ds.bin_start)} rows, bins/chrom {n}")
    if ds.expression.shape != (len(ds.cell_types), len(ds.genes)):
        raise DatasetError(
            f"{where}: expression has shape {ds.expression.shape}, expected ({len(ds.cell_types)}, {len(ds.genes)})"
        )
    _check_unique("cell type", ds.cell_types, where)
    _check_unique("gene", ds.genes, where)
    _check_unique("chromosome", ds.chromosomes, where)
    if n == 0 or not ds.cell_types:
        raise DatasetError(f"{where}: no bins or no cell types")
    if isinstance(ds.labels, PackedLabels):
        if not ds.labels.padding_is_clear():
            raise DatasetError(f"{where}: labels hold values other than 0 and 1 (bits set past the last cell type)")
    elif any(block.max() > 1 for block in _chunked(ds.labels)):
        raise DatasetError(f"{where}: labels hold values other than 0 and 1")
    if not np.isfinite(ds.expression).all():
        raise DatasetError(f"{where}: expression holds NaN or infinite values")
    if any(block.min() < 0 or block.max() >= len(ds.chromosomes) for block in _chunked(ds.bin_chrom)):
        raise DatasetError(f"{where}: bins/chrom indexes past the chromosome list")
    if ds.bin_size <= 0 or ds.stride <= 0 or ds.context < ds.bin_size:
        raise DatasetError(f"{where}: bin_size, stride and context must be positive with context >= bin_size")
    if ds.windows is not None:
        if ds.windows.shape != (n, ds.context):
            raise DatasetError(f"{where}: windows have shape {ds.windows.shape}, expected ({n}, {ds.context})")
        sequences = [ds.windows.reshape(-1)]
    else:
        sequences = [ds.sequence] if ds.sequence is not None else list(ds.genome.values())
        lengths = np.asarray([len(ds.genome[c]) for c in ds.chromosomes])
        for chrom, start in zip(_chunked(ds.bin_chrom), _chunked(ds.bin_start)):
            if (start < 0).any() or (start + ds.bin_size > lengths[chrom]).any():
                raise DatasetError(f"{where}: a bin lies outside its chromosome")
    if any(len(block) and block.max() > N_CODE for s in sequences for block in _chunked(s, _SEQUENCE_CHUNK)):
        raise DatasetError(f"{where}: sequence codes outside 0..4")
