"""Build a data set from a FASTA, one peak file per cell type and an expression table.

Shapes (per chromosome of length ``L``, ``T`` cell types, ``G`` genes):

- bins: starts ``0, stride, 2*stride, ...`` with ``start + bin_size <= L``; ``n = (L - bin_size) //
  stride + 1`` bins (none when ``L < bin_size``)
- the N rule: a bin is kept only when at most ``max_n_fraction`` (default 0.5) of its core (the
  ``bin_size`` bp of the bin itself; the flanks of its context window do not count) is N; dropped
  bins are never kept, neither as positives nor as sampled negatives, and their number per
  chromosome is in the provenance (``bins_dropped_for_n``)
- labels: ``(n_bins, T)`` uint8; 1 where more than half of the bin lies in the cell type's peaks
  (overlapping peaks merged first); computed by interval arithmetic on the merged peaks, touching
  only the bins that overlap a peak
- expression: ``(T, G)`` float32, transformed TPM, cell types in sample-sheet order

Peaks are narrowPeak or BED3+ (only the first three columns are read), plain or gzipped.
Chromosomes are stored under the FASTA's names; peak and ``--chroms`` names may use the other
naming style (``chr1`` / ``1``). The user's files are only read.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from chromtune import __version__
from chromtune.data.dataset import Dataset
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


# -- expression ------------------------------------------------------------------------------
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
        sequence, eligible = {}, {}
        for chrom, codes in tqdm(genome.iter_codes(chosen), total=len(chosen), desc="reading genome",
                                 unit="chrom", disable=None, leave=False):
            n_bins = bin_count(len(codes), options.bin_size, options.stride)
            counts = n_per_bin(codes, n_bins, options.bin_size, options.stride)
            sequence[chrom] = codes
            eligible[chrom] = kept_by_n_rule(counts, options.bin_size, options.max_n_fraction)
        rows, labels = _label_chromosomes(chosen, eligible, per_chrom, len(samples), options)
        if options.positives_only:
            rows, labels, n_negatives = _add_negatives(rows, labels, chosen, eligible, options)
        used = [c for c in chosen if len(rows[c])]
        if not used and options.positives_only:
            raise UserError("--positives-only: no bin is positive in any cell type, so no bin would be kept")
        if not used and any(len(e) for e in eligible.values()):
            raise UserError(f"--max-n-fraction {options.max_n_fraction}: every bin of the chosen chromosomes "
                            f"({', '.join(chosen)}) is more N than that, so there are no bins")
        if not used:
            raise UserError(f"--bin-size {options.bin_size}: longer than every chosen chromosome "
                            f"({', '.join(chosen)}), so there are no bins")
        sequence = {c: sequence[c] for c in used}

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
        "bins_dropped_for_n": {c: int((~eligible[c]).sum()) for c in chosen},
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


def _label_chromosomes(chosen: list[str], eligible: dict[str, np.ndarray], per_chrom: dict, n_cells: int,
                       options: PrepareOptions) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per chromosome: kept bin indices (n_c,) and their labels (n_c, T).

    The bins that pass the N rule (``eligible``), or with ``positives_only`` those of them positive
    in at least one cell type.
    """
    rows, labels = {}, {}
    for chrom in tqdm(chosen, desc="labelling bins", unit="chrom", disable=None, leave=False):
        n_bins = len(eligible[chrom])
        positives = [positive_bins(s, e, n_bins, options.bin_size, options.stride) for s, e in per_chrom[chrom]]
        positives = [bins[eligible[chrom][bins]] for bins in positives]
        if options.positives_only:
            anywhere = np.zeros(n_bins, dtype=bool)
            for bins in positives:
                anywhere[bins] = True
            kept = np.flatnonzero(anywhere)
        else:
            kept = np.flatnonzero(eligible[chrom])
        matrix = np.zeros((len(kept), n_cells), dtype=np.uint8)
        for j, bins in enumerate(positives):
            matrix[np.searchsorted(kept, bins), j] = 1
        rows[chrom], labels[chrom] = kept, matrix
    return rows, labels


def _add_negatives(rows: dict, labels: dict, chosen: list[str], eligible: dict[str, np.ndarray],
                   options: PrepareOptions) -> tuple[dict, dict, int]:
    """Add round(ratio x positives) bins negative in every cell type, drawn uniformly by ``seed``
    from the bins that pass the N rule.

    The k-th negative of a chromosome is the k-th eligible bin that is not positive; before
    positive number i (in eligible order) lie ``rank(positives[i]) - i`` negatives.
    """
    n_bins = np.asarray([int(eligible[c].sum()) for c in chosen], dtype=np.int64)
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
        index = np.flatnonzero(eligible[chrom])  # eligible bin number -> bin
        ranks = np.searchsorted(index, positives)
        negatives = index[ordinal + np.searchsorted(ranks - np.arange(len(positives)), ordinal, side="right")]
        kept = np.concatenate([positives, negatives])
        order = np.argsort(kept, kind="stable")
        matrix = np.zeros((len(kept), labels[chrom].shape[1]), dtype=np.uint8)
        matrix[: len(positives)] = labels[chrom]
        out_rows[chrom], out_labels[chrom] = kept[order], matrix[order]
    return out_rows, out_labels, wanted
