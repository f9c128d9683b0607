"""Peak files (narrowPeak or BED3+, plain or gzipped; only the first three columns are read) and the
sample sheet that names one peak file per cell type."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chromtune.errors import UserError
from chromtune.io.files import read_text, require_file


@dataclass
class Sample:
    cell_type: str
    peaks: Path


@dataclass
class Peaks:
    """One cell type's peaks on one chromosome: (k,) int64 starts and ends, (k,) file line numbers."""

    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray


def read_sample_sheet(path: str | os.PathLike) -> list[Sample]:
    """Rows of a tab-separated sheet with columns ``cell_type`` and ``peaks`` (relative to the sheet)."""
    path = require_file(path, "--samples")
    rows = list(csv.reader(io.StringIO(read_text(path, "--samples")), delimiter="\t"))
    rows = [(number, [f.strip() for f in row]) for number, row in enumerate(rows, 1) if any(f.strip() for f in row)]
    if not rows:
        raise UserError(f"--samples {path}: the sample sheet is empty")
    header = rows[0][1]
    missing = [c for c in ("cell_type", "peaks") if c not in header]
    if missing:
        raise UserError(f"--samples {path}: missing column(s) {', '.join(missing)} "
                        f"(the header is: {' | '.join(header)}); expected tab-separated columns cell_type and peaks")
    col_cell, col_peaks = header.index("cell_type"), header.index("peaks")
    samples, seen = [], {}
    for number, row in rows[1:]:
        if len(row) <= max(col_cell, col_peaks) or not row[col_cell] or not row[col_peaks]:
            raise UserError(f"--samples {path}: line {number}: needs a cell_type and a peaks entry")
        cell = row[col_cell]
        if cell in seen:
            raise UserError(f"--samples {path}: cell type {cell!r} appears twice (lines {seen[cell]} and {number})")
        seen[cell] = number
        peaks = Path(row[col_peaks])
        peaks = peaks if peaks.is_absolute() else path.parent / peaks
        require_file(peaks, f"--samples {path}: line {number}: peaks file")
        samples.append(Sample(cell, peaks))
    if not samples:
        raise UserError(f"--samples {path}: the sample sheet names no cell types")
    return samples


def read_peaks(path: str | os.PathLike) -> dict[str, Peaks]:
    """Chromosome name (as in the file) -> :class:`Peaks` of a narrowPeak / BED3+ file."""
    path = Path(path)
    text = read_text(path, "peaks file")
    parsed = _parse_peaks_fast(text)
    chroms, start, end, numbers = parsed if parsed is not None else _parse_peaks_by_line(text, path)
    bad = np.flatnonzero((start < 0) | (end <= start))
    if len(bad):
        i = bad[0]
        problem = "a negative start" if start[i] < 0 else "end <= start"
        raise UserError(f"peaks file {path}: line {numbers[i]}: {problem} ({chroms[i]}:{start[i]}-{end[i]})")
    names, inverse = np.unique(chroms, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    return {
        str(name): Peaks(start[rows], end[rows], numbers[rows])
        for name, rows in ((name, order[bounds[k]:bounds[k + 1]]) for k, name in enumerate(names))
    }


def _is_header(line: str) -> bool:
    return not line.strip() or line.startswith(("#", "track", "browser"))


def _parse_peaks_fast(text: str):
    """(chroms, starts, ends, line numbers) by pandas' C parser for a regular tab-separated file, else None."""
    lines = text.split("\n", 64)
    skip = next((k for k, line in enumerate(lines) if not _is_header(line)), len(lines))
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", header=None, usecols=[0, 1, 2], skiprows=skip,
                            dtype=str, skip_blank_lines=False, na_filter=False, engine="c")
        starts = table[1].to_numpy(dtype=str).astype(np.int64)
        ends = table[2].to_numpy(dtype=str).astype(np.int64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OverflowError):
        return None
    numbers = np.arange(skip + 1, skip + 1 + len(table), dtype=np.int64)
    return table[0].to_numpy(dtype=object), starts, ends, numbers


def _parse_peaks_by_line(text: str, path: Path):
    """The line-by-line parser: any whitespace, comments anywhere, and a precise message for bad lines."""
    chroms, starts, ends, numbers = [], [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        if _is_header(line):
            continue
        fields = line.split(None, 3)
        if len(fields) < 3:
            raise UserError(f"peaks file {path}: line {number}: expected at least 3 columns (chrom, start, end)")
        chroms.append(fields[0])
        starts.append(fields[1])
        ends.append(fields[2])
        numbers.append(number)
    numbers = np.asarray(numbers, dtype=np.int64)
    return (np.asarray(chroms, dtype=object), _integers(starts, numbers, path, "start"),
            _integers(ends, numbers, path, "end"), numbers)


def _integers(values: list[str], numbers: np.ndarray, path: Path, column: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.int64) if values else np.zeros(0, dtype=np.int64)
    except (ValueError, OverflowError):
        for value, number in zip(values, numbers):
            try:
                int(value)
            except ValueError:
                raise UserError(f"peaks file {path}: line {number}: {column} {value!r} is not an integer") from None
        raise UserError(f"peaks file {path}: a {column} coordinate is out of range") from None
