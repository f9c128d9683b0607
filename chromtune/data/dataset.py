"""The chromtune data set file (HDF5) and its in-memory form.

One self-contained, read-only file per data set::

    attrs            format="chromtune-dataset", format_version, bin_size, stride, context,
                     assembly, expression_transform, chromtune_version, provenance (JSON)
    chromosomes      (C,)        str     chromosome names, in bin order of first appearance
    genome/<chrom>   (len,)      uint8   sequence codes A,C,G,T,N = 0..4   } exactly one of
    windows          (n, L)      uint8   stored windows, L = context       } the two
    bins/chrom       (n,)        int32   index into ``chromosomes``
    bins/start       (n,)        int64   bin start (0-based); -1 where unknown (stored windows)
    labels           (n, T)      uint8   0/1 accessibility, bins x cell types (chunked, gzip)
    cell_types       (T,)        str
    expression       (T, G)      float32 transformed TF expression, cell types x genes
    genes            (G,)        str
    truth/...        optional    the planted truth of the demo data set

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
from chromtune.errors import UserError

FORMAT = "chromtune-dataset"
FORMAT_VERSION = 1
N_CODE = 4


class DatasetError(UserError):
    """A data set file that is missing, unreadable or inconsistent."""


@dataclass
class Dataset:
    """A data set held in memory.

    Exactly one of ``genome`` (chromosome -> uint8 codes) and ``windows`` ((n, context) uint8)
    is set. ``labels`` is (n_bins, n_cell_types) uint8 0/1; ``expression`` (n_cell_types, n_genes).
    """

    chromosomes: list[str]
    bin_chrom: np.ndarray
    bin_start: np.ndarray
    labels: np.ndarray
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
    _flat: np.ndarray | None = field(default=None, repr=False)
    _offsets: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_bins(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_cell_types(self) -> int:
        return int(self.labels.shape[1])

    @property
    def n_genes(self) -> int:
        return int(self.expression.shape[1])

    def _window_view(self) -> tuple[np.ndarray, np.ndarray]:
        """A strided (positions, context) view of all chromosomes padded with N, and each bin's row."""
        if self._flat is None:
            pad = np.full(self.context, N_CODE, dtype=np.uint8)
            parts, starts, offset = [pad], [], self.context
            for chrom in self.chromosomes:
                codes = self.genome[chrom]
                starts.append(offset)
                parts += [codes, pad]
                offset += len(codes) + self.context
            self._flat = np.concatenate(parts)
            left = self.bin_size // 2 - self.context // 2
            self._offsets = np.asarray(starts, dtype=np.int64)[self.bin_chrom] + self.bin_start + left
        view = np.lib.stride_tricks.sliding_window_view(self._flat, self.context)
        return view, self._offsets

    def window_codes(self, bins: np.ndarray) -> np.ndarray:
        """(len(bins), context) uint8 codes of the windows centred on ``bins``; N past chromosome ends."""
        bins = np.asarray(bins, dtype=np.int64)
        if self.windows is not None:
            return self.windows[bins]
        view, offsets = self._window_view()
        return view[offsets[bins]]

    def chrom_of_bins(self) -> np.ndarray:
        """(n_bins,) array of chromosome names."""
        return np.asarray(self.chromosomes, dtype=object)[self.bin_chrom]


def _strings(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=h5py.string_dtype())


def write_dataset(path: str | os.PathLike, dataset: Dataset, provenance: dict | None = None) -> None:
    """Write ``dataset`` to ``path`` atomically (temporary name, then rename)."""
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
    n_cells = len(dataset.cell_types)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            f["chromosomes"] = _strings(dataset.chromosomes)
            if dataset.genome is not None:
                group = f.create_group("genome")
                for chrom in dataset.chromosomes:
                    group.create_dataset(chrom, data=dataset.genome[chrom], compression="gzip", compression_opts=1)
            else:
                f.create_dataset("windows", data=dataset.windows, chunks=True, compression="gzip", compression_opts=1)
            f["bins/chrom"] = np.asarray(dataset.bin_chrom, dtype=np.int32)
            f["bins/start"] = np.asarray(dataset.bin_start, dtype=np.int64)
            chunk_rows = max(1, min(len(dataset.labels), 1 << 16))
            f.create_dataset(
                "labels",
                data=np.asarray(dataset.labels, dtype=np.uint8),
                chunks=(chunk_rows, max(1, n_cells)),
                compression="gzip",
                compression_opts=4,
            )
            f["cell_types"] = _strings(dataset.cell_types)
            f["expression"] = np.asarray(dataset.expression, dtype=np.float32)
            f["genes"] = _strings(dataset.genes)
            for key, value in dataset.truth.items():
                f[f"truth/{key}"] = value


def _decode(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _check_unique(name: str, values: list[str], where: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise DatasetError(f"{where}: {name} {value!r} appears twice")
        seen.add(value)


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Read and validate a data set file; any problem is a one-line :class:`DatasetError`."""
    where = str(path)
    if not Path(path).is_file():
        raise DatasetError(f"{where}: no such data set file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise DatasetError(f"{where}: not a chromtune data set (format attribute missing)")
            for key in ("chromosomes", "bins/chrom", "bins/start", "labels", "cell_types", "expression", "genes"):
                if key not in f:
                    raise DatasetError(f"{where}: missing '{key}'")
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            chromosomes = _decode(f["chromosomes"][()])
            genome = {c: f[f"genome/{c}"][()] for c in chromosomes} if "genome" in f else None
            windows = f["windows"][()] if "windows" in f else None
            dataset = Dataset(
                chromosomes=chromosomes,
                bin_chrom=f["bins/chrom"][()].astype(np.int64),
                bin_start=f["bins/start"][()].astype(np.int64),
                labels=f["labels"][()],
                cell_types=_decode(f["cell_types"][()]),
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
            )
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise DatasetError(f"{where}: unreadable or truncated data set file ({err.__class__.__name__}: {err})") from None
    validate(dataset, where)
    return dataset


def validate(ds: Dataset, where: str = "data set") -> None:
    """Check that shapes agree, names are unique, values are finite and labels are 0/1."""
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
    if ds.labels.max() > 1:
        raise DatasetError(f"{where}: labels hold values other than 0 and 1")
    if not np.isfinite(ds.expression).all():
        raise DatasetError(f"{where}: expression holds NaN or infinite values")
    if ds.bin_chrom.min() < 0 or ds.bin_chrom.max() >= len(ds.chromosomes):
        raise DatasetError(f"{where}: bins/chrom indexes past the chromosome list")
    if ds.bin_size <= 0 or ds.stride <= 0 or ds.context < ds.bin_size:
        raise DatasetError(f"{where}: bin_size, stride and context must be positive with context >= bin_size")
    if ds.windows is not None:
        if ds.windows.shape != (n, ds.context):
            raise DatasetError(f"{where}: windows have shape {ds.windows.shape}, expected ({n}, {ds.context})")
        sequences = [ds.windows]
    else:
        sequences = list(ds.genome.values())
        lengths = np.asarray([len(ds.genome[c]) for c in ds.chromosomes])
        if (ds.bin_start < 0).any() or (ds.bin_start + ds.bin_size > lengths[ds.bin_chrom]).any():
            raise DatasetError(f"{where}: a bin lies outside its chromosome")
    if any(len(s) and s.max() > N_CODE for s in sequences):
        raise DatasetError(f"{where}: sequence codes outside 0..4")
