"""Writers of per-bin predictions: the HDF5 file of ``chromtune predict``, one BED file and one bigWig
track per cell type, streamed block by block and each renamed into place only when complete; and the
header every chromtune HDF5 output carries (format, format version, chromtune version)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from chromtune import __version__
from chromtune.atomic import atomic_path
from chromtune.errors import UserError

FORMAT = "chromtune-predictions"
FORMAT_VERSION = 1
INSTALL_HINT = "pip install 'chromtune[interpret]'"


def write_header(f: h5py.File, attrs: dict, fmt: str, version: int) -> None:
    """`attrs`, the output's format name and version, and the chromtune version, as attributes of `f`."""
    for key, value in {**attrs, "format": fmt, "format_version": version, "chromtune_version": __version__}.items():
        f.attrs[key] = value


def file_stems(cells: list[str], flag: str) -> list[str]:
    """Safe, distinct file names for the cell types."""
    stems = [re.sub(r"[^A-Za-z0-9._+-]", "_", c).lstrip(".") or "_" for c in cells]
    seen: dict[str, str] = {}
    for cell, stem in zip(cells, stems):
        if stem in seen:
            raise UserError(f"{flag}: cell types {seen[stem]!r} and {cell!r} would share the file name {stem!r}")
        seen[stem] = cell
    return stems


def import_pybigwig():
    """The pyBigWig module, or a one-line UserError saying how to install it."""
    try:
        import pyBigWig
    except ImportError:
        raise UserError(f"--bigwig needs the optional package pyBigWig; install it with: {INSTALL_HINT}") from None
    return pyBigWig


@dataclass
class Bins:
    """The bins written, in output order: data set row, chromosome (index into `chromosomes`), 0-based start
    (-1 without coordinates); the chromosomes' lengths (None without a genome), bin size and stride."""

    index: np.ndarray
    chrom: np.ndarray
    start: np.ndarray
    chromosomes: list[str]
    lengths: list[int] | None
    bin_size: int
    stride: int


class TrackWriter:
    """Takes (bins, cell types) float16 probabilities block by block (:meth:`write`) into the HDF5 file
    and the optional BED and bigWig files; BED rows and bigWig values use the stored float16 values,
    so the three outputs agree. :attr:`passed` counts each cell type's bins at p >= the threshold
    (the rows of its BED file), :attr:`highest` its highest p."""

    def __init__(self, stack: contextlib.ExitStack, out: Path, bins: Bins, cells: list[str], attrs: dict,
                 bed_dir: Path | None, bigwig_dir: Path | None, threshold: float):
        self.bins, self.cells, self.threshold, self.bigwig_dir = bins, cells, threshold, bigwig_dir
        self.passed = np.zeros(len(cells), dtype=np.int64)
        self.highest = np.zeros(len(cells), dtype=np.float32)
        self.chrom_names = np.asarray(bins.chromosomes, dtype=str)
        f = stack.enter_context(h5py.File(stack.enter_context(atomic_path(out)), "w"))
        write_header(f, attrs, FORMAT, FORMAT_VERSION)
        text = h5py.string_dtype()
        f["cell_types"] = np.asarray(cells, dtype=text)
        f["chromosomes"] = np.asarray(bins.chromosomes, dtype=text)
        f["bins/index"] = bins.index
        f["bins/chrom"] = bins.chrom.astype(np.int32)
        f["bins/start"] = bins.start
        f["bins/end"] = np.where(bins.start >= 0, bins.start + bins.bin_size, -1)
        n = len(bins.index)
        rows = max(1, min(n, (1 << 19) // len(cells)))  # about 1 MiB of float16 per chunk
        self.probabilities = f.create_dataset("probabilities", shape=(n, len(cells)), dtype=np.float16,
                                              chunks=(rows, len(cells)), compression="gzip", compression_opts=1)
        self.names = f.create_dataset("bins/name", shape=(n,), dtype=text)
        self.beds = [stack.enter_context(open(stack.enter_context(atomic_path(bed_dir / f"{stem}.bed")), "w"))
                     for stem in (file_stems(cells, "--bed") if bed_dir is not None else [])]
        self.tracks = []
        if bigwig_dir is not None:
            pybigwig = import_pybigwig()
            for stem in file_stems(cells, "--bigwig"):
                track = pybigwig.open(str(stack.enter_context(atomic_path(bigwig_dir / f"{stem}.bw"))), "w")
                stack.callback(track.close)
                track.addHeader(list(zip(bins.chromosomes, bins.lengths)))
                self.tracks.append(track)

    def write(self, lo: int, p16: np.ndarray, names: np.ndarray) -> None:
        """Rows ``lo:lo + len(p16)`` of the output: their probabilities and bin names."""
        hi = lo + len(p16)
        self.probabilities[lo:hi] = p16
        self.names[lo:hi] = names.astype(object)
        p = p16.astype(np.float32)  # the stored values, compared as the BED rows are
        if len(p):
            self.passed += (p >= self.threshold).sum(axis=0)
            self.highest = np.maximum(self.highest, p.max(axis=0))
        if self.beds:
            self._bed_block(slice(lo, hi), p)
        if self.tracks:
            self._bigwig_block(slice(lo, hi), p)

    def _bed_block(self, rows_of: slice, p: np.ndarray) -> None:
        """Append the block's bins with p >= threshold to each cell type's BED file."""
        chrom, start = self.chrom_names[self.bins.chrom[rows_of]], self.bins.start[rows_of]
        prefix = np.char.add(np.char.add(np.char.add(chrom, "\t"), start.astype(str)),
                             np.char.add("\t", (start + self.bins.bin_size).astype(str)))
        for j, handle in enumerate(self.beds):
            rows = p[:, j] >= self.threshold
            if rows.any():
                score = np.rint(1000 * p[rows, j]).astype(np.int64).astype(str)
                handle.write("\n".join(np.char.add(np.char.add(prefix[rows], f"\t{self.cells[j]}\t"), score).tolist())
                             + "\n")

    def _bigwig_block(self, rows_of: slice, p: np.ndarray) -> None:
        """Add each bin's value over its central min(stride, bin_size) bases to each cell type's track."""
        span = min(self.bins.stride, self.bins.bin_size)
        left = self.bins.start[rows_of] + (self.bins.bin_size - span) // 2
        chrom = self.chrom_names[self.bins.chrom[rows_of]].tolist()
        for j, track in enumerate(self.tracks):
            try:
                track.addEntries(chrom, left.tolist(), ends=(left + span).tolist(), values=p[:, j].tolist())
            except RuntimeError:
                raise UserError(f"--bigwig {self.bigwig_dir}: the data set's bins are not evenly spaced, so their "
                                "values would overlap in a bigWig track") from None


@contextlib.contextmanager
def open_tracks(out: Path, bins: Bins, cells: list[str], attrs: dict, bed_dir: Path | None = None,
                bigwig_dir: Path | None = None, threshold: float = 0.5) -> Iterator[TrackWriter]:
    """A :class:`TrackWriter`; every file is renamed into place when the block exits without an error."""
    with contextlib.ExitStack() as stack:
        yield TrackWriter(stack, out, bins, cells, attrs, bed_dir, bigwig_dir, threshold)
