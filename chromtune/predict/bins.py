"""Which of a data set's bins to predict (all, or those overlapping regions), in output order, and their names."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from chromtune.data.dataset import Dataset
from chromtune.data.prepare import covered_before, merge_intervals
from chromtune.errors import UserError, listing
from chromtune.io.fasta import canonical_name
from chromtune.io.files import require_file
from chromtune.io.peaks import read_peaks


def has_coordinates(ds: Dataset) -> bool:
    """Whether the bins have genome coordinates (imported reference data sets have start -1)."""
    return ds.genome is not None and bool((ds.bin_start >= 0).all())


def bins_in_regions(ds: Dataset, regions) -> np.ndarray:
    """Sorted indices of the bins that overlap a region by at least 1 bp; `regions` is a BED file or
    a pandas DataFrame with columns chrom, start, end (0-based, half-open, as BED).

    Chromosome names match in either style (``chr1`` / ``1``); regions on chromosomes the data set
    lacks are skipped with a warning.
    """
    if isinstance(regions, pd.DataFrame):
        path, by_chrom = "(DataFrame)", _frame_regions(regions)
    else:
        path = require_file(regions, "--regions")
    if not has_coordinates(ds):
        raise UserError(f"--regions {path}: the data set {ds.path} has no genome coordinates (an imported "
                        "reference data set?), so bins cannot be matched to regions")
    if not isinstance(regions, pd.DataFrame):
        by_chrom = {name: (r.starts, r.ends) for name, r in read_peaks(path).items()}
    chrom_of = {canonical_name(c): k for k, c in enumerate(ds.chromosomes)}
    order = np.argsort(ds.bin_chrom, kind="stable")
    bounds = np.searchsorted(ds.bin_chrom[order], np.arange(len(ds.chromosomes) + 1))
    hits, unknown = [np.zeros(0, dtype=np.int64)], []
    for name, (region_starts, region_ends) in by_chrom.items():
        k = chrom_of.get(canonical_name(name))
        if k is None:
            unknown.append(name)
            continue
        starts, ends = merge_intervals(region_starts, region_ends)
        rows = order[bounds[k]:bounds[k + 1]]
        left = ds.bin_start[rows]
        overlap = covered_before(left + ds.bin_size, starts, ends) - covered_before(left, starts, ends)
        hits.append(rows[overlap > 0])
    if unknown:
        print(f"chromtune: warning: --regions {path}: regions on {len(unknown)} chromosome(s) the data set lacks "
              f"are skipped ({listing(sorted(unknown))})", file=sys.stderr)
    selected = np.unique(np.concatenate(hits))
    if not len(selected):
        raise UserError(f"--regions {path}: no bin of the data set {ds.path} overlaps its regions")
    return selected


def sort_bins(ds: Dataset, bins: np.ndarray) -> np.ndarray:
    """`bins` ordered by chromosome (the data set's order), then start."""
    bins = np.asarray(bins, dtype=np.int64)
    return bins[np.lexsort((ds.bin_start[bins], ds.bin_chrom[bins]))]


def bin_names(ds: Dataset, bins: np.ndarray) -> np.ndarray:
    """(len(bins),) str: ``chrom:start-end``, or ``chrom:bin<index>`` where coordinates are unknown."""
    chrom = np.asarray(ds.chromosomes, dtype=str)[ds.bin_chrom[bins]]
    start = ds.bin_start[bins]
    located = np.char.add(np.char.add(np.char.add(chrom, ":"), start.astype(str)),
                          np.char.add("-", (start + ds.bin_size).astype(str)))
    unlocated = np.char.add(np.char.add(chrom, ":bin"), np.asarray(bins).astype(str))
    return np.where(start >= 0, located, unlocated)




def _frame_regions(frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{chromosome: (starts, ends)} of a regions DataFrame (columns chrom, start, end)."""
    missing = [c for c in ("chrom", "start", "end") if c not in frame.columns]
    if missing:
        raise UserError(f"--regions (DataFrame): lacks the column(s) {', '.join(missing)}; expected chrom, start, end")
    start, end = frame["start"].to_numpy(np.int64), frame["end"].to_numpy(np.int64)
    if (start < 0).any() or (end <= start).any():
        raise UserError("--regions (DataFrame): needs 0 <= start < end in every row")
    return {name: (start[rows], end[rows]) for name, rows in frame.groupby(frame["chrom"].astype(str)).indices.items()}
