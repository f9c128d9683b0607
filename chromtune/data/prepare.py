"""Build a data set from a FASTA, one peak file per cell type and an expression table.

Shapes (per chromosome of length ``L``, ``T`` cell types, ``G`` genes):

- bins: starts ``0, stride, 2*stride, ...`` with ``start + bin_size <= L``; ``n = (L - bin_size) //
  stride + 1`` bins (none when ``L < bin_size``)
- the N rule: a bin is kept only when at most ``max_n_fraction`` (default 0.5) of its core (the
  ``bin_size`` bp of the bin itself; the flanks of its context window do not count) is N; dropped
  bins are never kept, neither as positives nor as sampled negatives, and their number per
  chromosome is in the provenance (``bins_dropped_for_n``)
- labels: ``(n_bins, T)`` 0/1, stored bit-packed; 1 where more than half of the bin lies in the
  cell type's peaks (overlapping peaks merged first); computed by interval arithmetic on the merged
  peaks, touching only the bins that overlap a peak
- expression: ``(T, G)`` float32, transformed TPM, cell types in sample-sheet order

Peaks are narrowPeak or BED3+ (only the first three columns are read), plain or gzipped.
Chromosomes are stored under the FASTA's names; peak and ``--chroms`` names may use the other
naming style (``chr1`` / ``1``). Every chosen chromosome's sequence is stored, even one left
without bins. The build streams the genome one chromosome at a time (:func:`prepare_file`), with a
progress bar per chromosome. The user's files are only read.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from chromtune import __version__
from chromtune.atomic import atomic_path
from chromtune.data.checksums import DigestedDataset, put, put_names
from chromtune.data.dataset import FORMAT, FORMAT_VERSION, write_sequence
from chromtune.io.expression import read_expression, read_gene_list
from chromtune.io.fasta import Genome
from chromtune.io.peaks import Peaks, Sample, read_peaks, read_sample_sheet
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
    max_n_fraction: float = 0.5

    def check(self) -> None:
        if self.bin_size <= 0:
            raise UserError(f"--bin-size {self.bin_size}: must be positive")
        if self.stride <= 0:
            raise UserError(f"--stride {self.stride}: must be positive")
        if self.context < self.bin_size:
            raise UserError(f"--context {self.context}: must be at least --bin-size ({self.bin_size})")
        if not self.negatives_ratio >= 0 or not np.isfinite(self.negatives_ratio):
            raise UserError(f"--negatives-ratio {self.negatives_ratio}: must be a finite number >= 0")
        if not 0 <= self.max_n_fraction <= 1:
            raise UserError(f"--max-n-fraction {self.max_n_fraction}: must be between 0 and 1")
        if self.transform not in TRANSFORMS:
            raise UserError(f"--transform {self.transform}: choose from {', '.join(TRANSFORMS)}")


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


def n_per_bin(codes: np.ndarray, n_bins: int, bin_size: int, stride: int) -> np.ndarray:
    """(n_bins,) count of N (code >= 4) in each bin ``[k * stride, k * stride + bin_size)``.

    Sums the N flags between consecutive bin boundaries, so memory is one byte per base plus a few
    integers per bin, never a cumulative sum over the whole chromosome.
    """
    if n_bins == 0:
        return np.zeros(0, dtype=np.int64)
    is_n = (codes >= 4).view(np.uint8)
    starts = np.arange(n_bins, dtype=np.int64) * stride
    cuts = np.unique(np.concatenate([[0], starts, starts + bin_size]))
    cuts = cuts[cuts < len(codes)]
    before = np.concatenate([[0], np.cumsum(np.add.reduceat(is_n, cuts, dtype=np.int64))])
    return before[np.searchsorted(cuts, starts + bin_size)] - before[np.searchsorted(cuts, starts)]


def kept_by_n_rule(n_count: np.ndarray, bin_size: int, max_n_fraction: float) -> np.ndarray:
    """Bins whose core is at most ``max_n_fraction`` N (the core is the bin itself, ``bin_size`` bp)."""
    return n_count <= max_n_fraction * bin_size


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


# -- the whole build -------------------------------------------------------------------------
LOG_SCALED_MAX = 20.0  # TPM tables reach thousands; log1p/log2/arcsinh of TPM stay below this


def input_warnings(tpm: np.ndarray, cell_types: list[str], samples, peaks: list[dict], transform: str,
                   expression_path) -> list[str]:
    """Inputs that build a data set but probably not the one meant: an expression table that is
    already log-scaled (and would be logged twice), a cell type with all-zero expression, a peak
    file without peaks (a cell type with no positive bin)."""
    found = []
    top = float(np.nanmax(tpm)) if tpm.size else 0.0
    if transform != "none" and 0 < top <= LOG_SCALED_MAX:
        found.append(f"--expression {expression_path}: its largest value is {top:.3g}, so it looks log-scaled "
                     f"already and --transform {transform} logs it again; pass --transform none if it is")
    zero = [cell for cell, row in zip(cell_types, tpm) if not np.any(row)]
    if zero:
        found.append(f"--expression {expression_path}: all-zero expression for {len(zero)} cell type(s): "
                     f"{', '.join(zero[:5])}{', ...' if len(zero) > 5 else ''}")
    empty = [not any(len(p.starts) for p in by_chrom.values()) for by_chrom in peaks]
    for sample, none in zip(samples, empty):
        if none and not all(empty):  # no peaks anywhere is an error of its own
            found.append(f"peaks file {sample.peaks} (cell type {sample.cell_type}): holds no peaks, so the cell "
                         "type has no positive bin")
    return found


def prepare_file(out: str | os.PathLike, genome_path: str | os.PathLike, samples_path: str | os.PathLike,
                 expression_path: str | os.PathLike, tfs_path: str | os.PathLike | None = None,
                 options: PrepareOptions | None = None) -> dict:
    """Build the data set file ``out``, streaming the genome chromosome by chromosome; returns the
    provenance written into it.

    Pass 1 reads one chromosome at a time, writes its codes into the file and keeps its N-rule
    mask (one byte per bin); pass 2 labels one chromosome at a time from the merged peaks and
    writes its bins and bit-packed labels. Memory holds one chromosome, the peaks and the masks,
    never the genome or the bins x cell types matrix. Every input problem is a one-line
    :class:`UserError`; ``out`` appears (renamed from a temporary name) only when complete.
    """
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
    for message in input_warnings(tpm, cell_types, samples, peaks, options.transform, expression_path):
        print(f"chromtune: warning: {message}", file=sys.stderr)

    with Genome(genome_path) as genome, atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        lengths = genome.lengths
        chosen = _choose_chromosomes(genome, samples, peaks, options.chroms)
        per_chrom, clipped = _peaks_by_chromosome(genome, samples, peaks, chosen, lengths)
        eligible: dict[str, np.ndarray] = {}
        write_sequence(f, _stream_sequence(genome, chosen, eligible, options), options.context,
                       [lengths[c] for c in chosen])
        negatives, n_negatives = {}, 0
        if options.positives_only:
            anywhere = {c: _positive_anywhere(per_chrom[c], eligible[c], options) for c in chosen}
            negatives, n_negatives = _draw_negatives(anywhere, chosen, eligible, options)
            kept = {c: np.sort(np.concatenate([anywhere[c], negatives[c]])) for c in chosen}
            rows, counts = kept.__getitem__, [len(kept[c]) for c in chosen]
        else:  # listed one chromosome at a time, in pass 2
            rows, counts = (lambda c: np.flatnonzero(eligible[c])), [int(eligible[c].sum()) for c in chosen]
        n_total = sum(counts)
        if not n_total and options.positives_only:
            raise UserError("--positives-only: no bin is positive in any cell type, so no bin would be kept")
        if not n_total and any(len(e) for e in eligible.values()):
            raise UserError(f"--max-n-fraction {options.max_n_fraction}: every bin of the chosen chromosomes "
                            f"({', '.join(chosen)}) is more N than that, so there are no bins")
        if not n_total:
            raise UserError(f"--bin-size {options.bin_size}: longer than every chosen chromosome "
                            f"({', '.join(chosen)}), so there are no bins")
        positives = _write_bins_and_labels(f, chosen, rows, n_total, eligible, per_chrom, len(samples), options)
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
            "n_bins": n_total,
            "n_genes": len(genes),
            "positive_pairs": positives,
            "bins_dropped_for_n": {c: int((~eligible[c]).sum()) for c in chosen},
        }
        if options.positives_only:
            provenance["sampled_negatives"] = n_negatives
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, bin_size=options.bin_size,
                       stride=options.stride, context=options.context, chromtune_version=__version__,
                       provenance=json.dumps(provenance), assembly=options.assembly,
                       expression_transform=options.transform)
        put_names(f, "chromosomes", chosen)
        put_names(f, "cell_types", cell_types)
        put(f, "expression", expression)
        put_names(f, "genes", genes)
    return provenance


def _stream_sequence(genome: Genome, chosen: list[str], eligible: dict, options: PrepareOptions):
    """Yield each chosen chromosome's codes in turn, recording its N-rule mask in ``eligible``."""
    for chrom, codes in genome.iter_codes(chosen):
        with tqdm(total=len(codes), desc=f"sequence {chrom}", unit="bp", unit_scale=True, disable=None,
                  leave=False) as bar:
            n_bins = bin_count(len(codes), options.bin_size, options.stride)
            eligible[chrom] = kept_by_n_rule(n_per_bin(codes, n_bins, options.bin_size, options.stride),
                                             options.bin_size, options.max_n_fraction)
            bar.update(len(codes))
        yield codes


def _positives(peaks: tuple[np.ndarray, np.ndarray], eligible: np.ndarray, options: PrepareOptions) -> np.ndarray:
    """Sorted bins positive for one cell type's merged peaks among those that pass the N rule."""
    bins = positive_bins(*peaks, len(eligible), options.bin_size, options.stride)
    return bins[eligible[bins]]


def _positive_anywhere(per_cell: list, eligible: np.ndarray, options: PrepareOptions) -> np.ndarray:
    anywhere = np.zeros(len(eligible), dtype=bool)
    for peaks in per_cell:
        anywhere[_positives(peaks, eligible, options)] = True
    return np.flatnonzero(anywhere)


def _write_bins_and_labels(f: h5py.File, chosen: list[str], rows, n_total: int, eligible: dict, per_chrom: dict,
                           n_cells: int, options: PrepareOptions) -> int:
    """Pass 2: per chromosome, its kept bins (``rows(chrom)``) and their bit-packed labels; returns
    the positive pairs."""
    width = -(-n_cells // 8)
    chrom_out = DigestedDataset(f, "bins/chrom", (n_total,), np.int32)
    start_out = DigestedDataset(f, "bins/start", (n_total,), np.int64)
    labels_out = DigestedDataset(f, "labels_packed", (n_total, width), np.uint8)
    positives = 0
    for k, chrom in enumerate(chosen):
        kept = rows(chrom)
        packed = np.zeros((len(kept), width), dtype=np.uint8)
        for j, peaks in enumerate(tqdm(per_chrom[chrom], desc=f"labels {chrom}", unit="cell type", disable=None,
                                       leave=False)):
            bins = _positives(peaks, eligible[chrom], options)
            packed[np.searchsorted(kept, bins), j >> 3] |= np.uint8(0x80 >> (j & 7))
            positives += len(bins)
        chrom_out.write(np.full(len(kept), k, dtype=np.int32))
        start_out.write(kept * options.stride)
        labels_out.write(packed)
    for out in (chrom_out, start_out, labels_out):
        out.close()
    return positives


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


def _draw_negatives(anywhere: dict, chosen: list[str], eligible: dict[str, np.ndarray],
                    options: PrepareOptions) -> tuple[dict[str, np.ndarray], int]:
    """round(ratio x positive bins) bins negative in every cell type, drawn uniformly by ``seed`` from
    the bins that pass the N rule; per chromosome, sorted.

    The k-th negative of a chromosome is the k-th eligible bin that is not positive; before
    positive number i (in eligible order) lie ``rank(positives[i]) - i`` negatives.
    """
    n_bins = np.asarray([int(eligible[c].sum()) for c in chosen], dtype=np.int64)
    n_pos = np.asarray([len(anywhere[c]) for c in chosen], dtype=np.int64)
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
    out = {}
    for k, chrom in enumerate(chosen):
        ordinal = draws[np.searchsorted(draws, bounds[k]):np.searchsorted(draws, bounds[k + 1])] - bounds[k]
        positives = anywhere[chrom]
        index = np.flatnonzero(eligible[chrom])  # eligible bin number -> bin
        ranks = np.searchsorted(index, positives)
        out[chrom] = index[ordinal + np.searchsorted(ranks - np.arange(len(positives)), ordinal, side="right")]
    return out, wanted
