"""Build a data set from a FASTA, one peak file per cell type and an expression table.

Shapes (per chromosome of length ``L``, ``T`` cell types, ``G`` genes):

- bins: starts ``0, stride, 2*stride, ...`` with ``start + bin_size <= L``; ``n = (L - bin_size) //
  stride + 1`` bins (none when ``L < bin_size``)
- labels: ``(n_bins, T)`` uint8; 1 where more than half of the bin lies in the cell type's peaks
  (overlapping peaks merged first); computed by interval arithmetic on the merged peaks, touching
  only the bins that overlap a peak
- expression: ``(T, G)`` float32, transformed TPM, cell types in sample-sheet order

Peaks are narrowPeak or BED3+ (only the first three columns are read), plain or gzipped.
Chromosomes are stored under the FASTA's names; peak and ``--chroms`` names may use the other
naming style (``chr1`` / ``1``). The user's files are only read.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from chromtune import __version__
from chromtune.data.dataset import Dataset
from chromtune.data.genome import Genome, is_gzip
from chromtune.errors import UserError

TRANSFORMS = {"log1p": np.log1p, "arcsinh": np.arcsinh, "none": lambda x: x}


@dataclass
class PrepareOptions:
    """How bins are laid, labelled and kept."""

    bin_size: int = 200
    stride: int = 50
    context: int = 1000
    chroms: list[str] | None = None
    positives_only: bool = False
    negatives_ratio: float = 1.0
    seed: int = 0
    transform: str = "log1p"
    assembly: str = "unknown"

    def check(self) -> None:
        if self.bin_size <= 0:
            raise UserError(f"--bin-size {self.bin_size}: must be positive")
        if self.stride <= 0:
            raise UserError(f"--stride {self.stride}: must be positive")
        if self.context < self.bin_size:
            raise UserError(f"--context {self.context}: must be at least --bin-size ({self.bin_size})")
        if not self.negatives_ratio >= 0 or not np.isfinite(self.negatives_ratio):
            raise UserError(f"--negatives-ratio {self.negatives_ratio}: must be a finite number >= 0")
        if self.transform not in TRANSFORMS:
            raise UserError(f"--transform {self.transform}: choose from {', '.join(TRANSFORMS)}")


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


# -- files -----------------------------------------------------------------------------------
def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is a readable regular file, else a :class:`UserError` naming ``what``."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path}: no such file")
    if not path.is_file():
        raise UserError(f"{what} {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what} {path}: file is not readable")
    return path


def read_text(path: Path, what: str) -> str:
    """The whole text of a plain or gzipped file; unreadable or binary content is a UserError."""
    try:
        raw = gzip.decompress(path.read_bytes()) if is_gzip(path) else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"{what} {path}: cannot read ({err})") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path}: not a text file") from None


# -- sample sheet and peaks ------------------------------------------------------------------
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


# -- interval arithmetic ---------------------------------------------------------------------
def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint (starts, ends) covering the same bases as the half-open input intervals."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts, dtype=np.int64)[order], np.asarray(ends, dtype=np.int64)[order]
    reach = np.maximum.accumulate(e)
    new = np.concatenate([[True], s[1:] > reach[:-1]])
    first = np.flatnonzero(new)
    return s[first], np.maximum.reduceat(e, first)


def covered_before(x: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Bases of the merged intervals lying in ``[0, x)``, for each position in ``x``."""
    if len(starts) == 0:
        return np.zeros(np.shape(x), dtype=np.int64)
    cumulative = np.concatenate([[0], np.cumsum(ends - starts)])
    k = np.searchsorted(starts, x, side="left")
    overhang = np.where(k > 0, np.maximum(ends[np.maximum(k - 1, 0)] - x, 0), 0)
    return cumulative[k] - overhang


def bin_count(length: int, bin_size: int, stride: int) -> int:
    """Bins of a chromosome: starts 0, stride, ... while the bin ends at or before ``length``."""
    return max(0, (length - bin_size) // stride + 1)


def positive_bins(starts: np.ndarray, ends: np.ndarray, n_bins: int, bin_size: int, stride: int) -> np.ndarray:
    """Sorted indices of the bins more than half covered by the merged intervals (starts, ends).

    Only bins overlapping an interval are examined, so the cost follows the peaks, not the genome.
    The intervals are sorted and disjoint, so both ends of their bin ranges are non-decreasing.
    """
    if len(starts) == 0 or n_bins == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.maximum(0, -(-(starts - bin_size + 1) // stride))
    last = np.minimum(n_bins - 1, (ends - 1) // stride)
    first[1:] = np.maximum(first[1:], last[:-1] + 1)  # ranges of neighbouring intervals made disjoint
    counts = np.maximum(last - first + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    candidates = np.repeat(first - offsets, counts) + np.arange(total)
    left = candidates * stride
    coverage = covered_before(left + bin_size, starts, ends) - covered_before(left, starts, ends)
    return candidates[2 * coverage > bin_size]


# -- expression ------------------------------------------------------------------------------
def read_gene_list(path: str | os.PathLike) -> list[str]:
    """Genes of a one-per-line file (blank lines and ``#`` comments skipped), first occurrence kept."""
    path = require_file(path, "--tfs")
    genes = [line.split()[0] for line in read_text(path, "--tfs").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not genes:
        raise UserError(f"--tfs {path}: the gene list is empty")
    return list(dict.fromkeys(genes))


def read_expression(path: str | os.PathLike, cell_types: list[str],
                    genes: list[str] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(T, G) float64 TPM for ``cell_types`` (in that order), the gene names, and listed genes absent.

    The table is tab- or comma-separated with row names in its first column; genes x cell types
    or cell types x genes, recognised by where the cell types' names appear.
    """
    path = require_file(path, "--expression")
    text = read_text(path, "--expression")
    first = text.split("\n", 1)[0]
    sep = "\t" if "\t" in first else ","
    header = [h.strip() for h in next(csv.reader([first], delimiter=sep), [])][1:]
    _no_duplicates(header, path, "column")
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, index_col=0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise UserError(f"--expression {path}: cannot parse the table ({str(err).strip()})") from None
    table.index = [str(i).strip() for i in table.index]
    table.columns = header if len(header) == table.shape[1] else [str(c).strip() for c in table.columns]
    _no_duplicates(list(table.index), path, "row")
    in_columns = [c for c in cell_types if c in set(table.columns)]
    in_rows = [c for c in cell_types if c in set(table.index)]
    if len(in_columns) == len(cell_types):
        table = table.T
    elif len(in_rows) != len(cell_types):
        axis, found = ("columns", in_columns) if len(in_columns) >= len(in_rows) else ("rows", in_rows)
        if not found:
            raise UserError(f"--expression {path}: none of the sample sheet's cell types "
                            f"({', '.join(cell_types[:3])}{', ...' if len(cell_types) > 3 else ''}) "
                            "is a row or column name of the table")
        absent = [c for c in cell_types if c not in found]
        raise UserError(f"--expression {path}: no expression for cell type(s) {', '.join(map(repr, absent))} "
                        f"of the sample sheet (cell types are the table's {axis})")
    absent_genes: list[str] = []
    if genes is not None:
        present = set(table.columns)
        absent_genes = [g for g in genes if g not in present]
        keep = [g for g in genes if g in present]
        if not keep:
            raise UserError(f"--tfs: none of its {len(genes)} genes is in the expression table {path}")
        table = table[keep]
    table = table.loc[cell_types]
    flat = pd.to_numeric(pd.Series(table.to_numpy().ravel()), errors="coerce")
    values = flat.to_numpy(dtype=np.float64).reshape(table.shape)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        raw = table.iat[i, j]
        problem = "is negative" if np.isfinite(values[i, j]) else "is not a finite number"
        raise UserError(f"--expression {path}: gene {table.columns[j]!r}, cell type {table.index[i]!r}: "
                        f"value {raw!r} {problem}; expected TPM >= 0")
    if values.shape[1] == 0:
        raise UserError(f"--expression {path}: the table holds no genes")
    return values, list(table.columns), absent_genes


def _no_duplicates(names: list[str], path: Path, kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"--expression {path}: {kind} name {name!r} appears twice")
        seen.add(name)


# -- the whole build -------------------------------------------------------------------------
def prepare_dataset(genome_path: str | os.PathLike, samples_path: str | os.PathLike,
                    expression_path: str | os.PathLike, tfs_path: str | os.PathLike | None = None,
                    options: PrepareOptions | None = None) -> tuple[Dataset, dict]:
    """The data set and its provenance; every input problem is a one-line :class:`UserError`."""
    options = options or PrepareOptions()
    options.check()
    samples = read_sample_sheet(samples_path)
    cell_types = [s.cell_type for s in samples]
    genes_wanted = read_gene_list(tfs_path) if tfs_path is not None else None
    tpm, genes, absent_genes = read_expression(expression_path, cell_types, genes_wanted)
    if absent_genes:
        shown = ", ".join(absent_genes[:5]) + (", ..." if len(absent_genes) > 5 else "")
        print(f"chromtune: warning: {len(absent_genes)} of the {len(genes_wanted)} genes in --tfs {tfs_path} "
              f"are not in the expression table and are left out ({shown})", file=sys.stderr)
    expression = TRANSFORMS[options.transform](tpm).astype(np.float32)
    peaks = [read_peaks(s.peaks) for s in tqdm(samples, desc="reading peaks", unit="file", disable=None, leave=False)]

    with Genome(genome_path) as genome:
        lengths = genome.lengths
        chosen = _choose_chromosomes(genome, samples, peaks, options.chroms)
        per_chrom, clipped = _peaks_by_chromosome(genome, samples, peaks, chosen, lengths)
        rows, labels = _label_chromosomes(chosen, lengths, per_chrom, len(samples), options)
        if options.positives_only:
            rows, labels, n_negatives = _add_negatives(rows, labels, chosen, lengths, options)
        used = [c for c in chosen if len(rows[c])]
        if not used and options.positives_only:
            raise UserError("--positives-only: no bin is positive in any cell type, so no bin would be kept")
        if not used:
            raise UserError(f"--bin-size {options.bin_size}: longer than every chosen chromosome "
                            f"({', '.join(chosen)}), so there are no bins")
        sequence = dict(tqdm(genome.iter_codes(used), total=len(used), desc="reading genome", unit="chrom",
                             disable=None, leave=False))

    dataset = Dataset(
        chromosomes=used,
        bin_chrom=np.concatenate([np.full(len(rows[c]), k, dtype=np.int32) for k, c in enumerate(used)]),
        bin_start=np.concatenate([rows[c] * options.stride for c in used]).astype(np.int64),
        labels=np.concatenate([labels[c] for c in used]),
        cell_types=cell_types,
        expression=expression,
        genes=genes,
        bin_size=options.bin_size,
        stride=options.stride,
        context=options.context,
        genome=sequence,
        attrs={"assembly": options.assembly, "expression_transform": options.transform},
    )
    provenance = {
        "command": "prepare",
        "chromtune_version": __version__,
        "genome": str(Path(genome_path).resolve()),
        "samples": str(Path(samples_path).resolve()),
        "peaks": {s.cell_type: str(s.peaks.resolve()) for s in samples},
        "expression": str(Path(expression_path).resolve()),
        "tfs": str(Path(tfs_path).resolve()) if tfs_path is not None else None,
        "tfs_absent_from_expression": absent_genes,
        "assembly": options.assembly,
        "transform": options.transform,
        "options": asdict(options),
        "peaks_clipped_at_chromosome_end": clipped,
        "n_bins": dataset.n_bins,
    }
    if options.positives_only:
        provenance["sampled_negatives"] = n_negatives
    return dataset, provenance


def _choose_chromosomes(genome: Genome, samples: list[Sample], peaks: list[dict[str, Peaks]],
                        chroms: list[str] | None) -> list[str]:
    """FASTA names of the chromosomes to bin, in FASTA order."""
    if chroms:
        wanted = {genome.resolve(c, "--chroms") for c in chroms}
    else:
        wanted = set()
        for sample, table in zip(samples, peaks):
            wanted |= {genome.resolve(c, f"peaks file {sample.peaks}") for c in table}
        if not wanted:
            raise UserError("--samples: the peak files hold no peaks; give --chroms to bin chromosomes anyway")
    return [c for c in genome.names if c in wanted]


def _peaks_by_chromosome(genome: Genome, samples: list[Sample], peaks: list[dict[str, Peaks]],
                         chosen: list[str], lengths: dict[str, int]) -> tuple[dict, int]:
    """FASTA chromosome -> per cell type merged (starts, ends); and how many peak ends were clipped."""
    chosen_set = set(chosen)
    out = {c: [[] for _ in samples] for c in chosen}
    clipped = 0
    for j, (sample, table) in enumerate(zip(samples, peaks)):
        for name, p in table.items():
            fasta_name = genome.find(name)
            if fasta_name not in chosen_set:
                continue
            length = lengths[fasta_name]
            past = np.flatnonzero(p.starts >= length)
            if len(past):
                i = past[0]
                raise UserError(f"peaks file {sample.peaks}: line {p.lines[i]}: peak {name}:{p.starts[i]}-{p.ends[i]} "
                                f"starts past the end of {fasta_name} (length {length} in --genome {genome.path}); "
                                "do the peaks and the FASTA use the same assembly?")
            clipped += int((p.ends > length).sum())
            out[fasta_name][j].append((p.starts, np.minimum(p.ends, length)))
    merged = {
        c: [merge_intervals(np.concatenate([s for s, _ in parts] or [np.zeros(0, np.int64)]),
                            np.concatenate([e for _, e in parts] or [np.zeros(0, np.int64)]))
            for parts in out[c]]
        for c in chosen
    }
    return merged, clipped


def _label_chromosomes(chosen: list[str], lengths: dict[str, int], per_chrom: dict, n_cells: int,
                       options: PrepareOptions) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per chromosome: kept bin indices (n_c,) and their labels (n_c, T).

    All bins, or with ``positives_only`` the bins positive in at least one cell type.
    """
    rows, labels = {}, {}
    for chrom in tqdm(chosen, desc="labelling bins", unit="chrom", disable=None, leave=False):
        n_bins = bin_count(lengths[chrom], options.bin_size, options.stride)
        positives = [positive_bins(s, e, n_bins, options.bin_size, options.stride) for s, e in per_chrom[chrom]]
        if options.positives_only:
            anywhere = np.zeros(n_bins, dtype=bool)
            for bins in positives:
                anywhere[bins] = True
            kept = np.flatnonzero(anywhere)
        else:
            kept = np.arange(n_bins, dtype=np.int64)
        matrix = np.zeros((len(kept), n_cells), dtype=np.uint8)
        for j, bins in enumerate(positives):
            matrix[np.searchsorted(kept, bins), j] = 1
        rows[chrom], labels[chrom] = kept, matrix
    return rows, labels


def _add_negatives(rows: dict, labels: dict, chosen: list[str], lengths: dict[str, int],
                   options: PrepareOptions) -> tuple[dict, dict, int]:
    """Add round(ratio x positives) bins negative in every cell type, drawn uniformly by ``seed``.

    The k-th negative bin of a chromosome is found from the sorted positives without listing the
    negatives: before positive number i lie ``positives[i] - i`` negatives.
    """
    n_bins = np.asarray([bin_count(lengths[c], options.bin_size, options.stride) for c in chosen], dtype=np.int64)
    n_pos = np.asarray([len(rows[c]) for c in chosen], dtype=np.int64)
    n_neg = n_bins - n_pos
    wanted = int(round(options.negatives_ratio * int(n_pos.sum())))
    available = int(n_neg.sum())
    if wanted > available:
        print(f"chromtune: warning: --negatives-ratio {options.negatives_ratio} asks for {wanted} negative bins, "
              f"only {available} exist; keeping all of them", file=sys.stderr)
        wanted = available
    rng = np.random.default_rng(options.seed)
    draws = np.sort(rng.choice(available, size=wanted, replace=False)) if wanted else np.zeros(0, np.int64)
    bounds = np.concatenate([[0], np.cumsum(n_neg)])
    out_rows, out_labels = {}, {}
    for k, chrom in enumerate(chosen):
        ordinal = draws[np.searchsorted(draws, bounds[k]):np.searchsorted(draws, bounds[k + 1])] - bounds[k]
        positives = rows[chrom]
        negatives = ordinal + np.searchsorted(positives - np.arange(len(positives)), ordinal, side="right")
        kept = np.concatenate([positives, negatives])
        order = np.argsort(kept, kind="stable")
        matrix = np.zeros((len(kept), labels[chrom].shape[1]), dtype=np.uint8)
        matrix[: len(positives)] = labels[chrom]
        out_rows[chrom], out_labels[chrom] = kept[order], matrix[order]
    return out_rows, out_labels, wanted
