"""Validation that can decide: every cell type a validation sample scores has a positive in it.

A selection metric is an AUPRC per task (stage 1: mean over the training cell types, on bins of the
held-out blocks) or pooled (stage 2: the validation cell types, on bins off the test chromosomes).
A cell type without a positive among the scored bins has no AUPRC. On real data positives can be
as rare as 0.01 % of pairs, so a sample of a few thousand bins can miss a cell type entirely.

    positives(labels, bins, cells)       -> (len(cells),) int64 positives of each cell type among ``bins``
    positive_bins(labels, bins, cells)   -> per cell type, the sorted bins of ``bins`` positive in it
    grow_sample(labels, sample, population, cells, rng)
                                         -> (sample, added): the sample, plus up to GROW_POSITIVES
                                            positives of each cell type that has none in it
    check_held_out(dataset, folds, split, stages)
                                         -> warning lines; UserError naming what cannot be validated

Growth is the exception, not the rule: a sample that holds a positive of every cell type is
returned as it is (the same bins, bit for bit). Otherwise each cell type with no positive in it
gets up to GROW_POSITIVES of its positive bins from the population (chosen by ``rng``), so the
bound is GROW_POSITIVES x (cell types lacking) added bins, each scored for every cell type of the
sample. Added positives raise those cell types' positive rate in the sample, so their AUPRC reads
higher than on the population; every trial of a stage is compared on the same sample, so the
selection stays fair.

Everything here reads the labels a chunk of CHUNK_ROWS bins at a time, column-wise from the packed
bits (a histogram of byte values for counts): nothing of size bins x cell types is ever held.
"""

from __future__ import annotations

import numpy as np

from chromtune.data.folds import BinRanges
from chromtune.data.labels import CHUNK_ROWS, PackedLabels
from chromtune.errors import UserError

GROW_POSITIVES = 10  # positives added for each cell type that has none in a validation sample


def _blocks(bins):
    """``bins`` (an index array or BinRanges) as consecutive blocks of at most CHUNK_ROWS bins: slices
    for the runs of a BinRanges that is not thinned (read whole), else index arrays."""
    if isinstance(bins, BinRanges) and bins.every == 1:
        for start, stop in zip(bins.starts.tolist(), bins.stops.tolist()):
            for first in range(start, stop, CHUNK_ROWS):
                yield slice(first, min(first + CHUNK_ROWS, stop))
        return
    for start in range(0, len(bins), CHUNK_ROWS):
        yield np.asarray(bins[np.arange(start, min(start + CHUNK_ROWS, len(bins)))], dtype=np.int64)


def _columns(labels, rows, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, (n, len(cells)) 0/1 labels) of one block from :func:`_blocks`."""
    if isinstance(rows, slice):
        return np.arange(rows.start, rows.stop), np.asarray(labels[rows, cells])
    return rows, np.asarray(labels[rows[:, None], cells[None, :]])


def positives(labels, bins, cells) -> np.ndarray:
    """(len(cells),) int64: how many of ``bins`` are positive in each of ``cells``."""
    cells = np.asarray(cells, dtype=np.int64)
    if isinstance(labels, PackedLabels):
        return labels.column_counts(_blocks(bins))[cells]
    counts = np.zeros(len(cells), dtype=np.int64)
    for rows in _blocks(bins):
        counts += _columns(labels, rows, cells)[1].sum(axis=0, dtype=np.int64)
    return counts


def positive_bins(labels, bins, cells) -> list[np.ndarray]:
    """For each of ``cells``, the sorted bins of ``bins`` positive in it (read one block at a time,
    only those cell types' bits)."""
    cells = np.asarray(cells, dtype=np.int64)
    found = [[] for _ in cells]
    for block in _blocks(bins):
        rows, y = _columns(labels, block, cells)
        for k in range(len(cells)):
            found[k].append(rows[y[:, k] != 0])
    return [np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64) for parts in found]


def grow_sample(labels, sample: np.ndarray, population, cells, rng: np.random.Generator,
                limit: int = GROW_POSITIVES) -> tuple[np.ndarray, dict[int, int]]:
    """(bins, added): ``sample`` (sorted bins) unchanged when it holds a positive of every one of
    ``cells``; else with up to ``limit`` positive bins of each cell type lacking one, drawn by ``rng``
    from ``population``, merged in (sorted, unique). ``added`` maps each such cell type to the
    positives it got (0 when the population has none either)."""
    sample = np.asarray(sample, dtype=np.int64)
    cells = np.asarray(cells, dtype=np.int64)
    lacking = cells[positives(labels, sample, cells) == 0]
    if len(lacking) == 0:
        return sample, {}
    added, extra = {}, [sample]
    for cell, found in zip(lacking.tolist(), positive_bins(labels, population, lacking)):
        take = found[np.sort(rng.choice(len(found), min(limit, len(found)), replace=False))]
        added[cell] = int(len(take))
        extra.append(take)
    return np.unique(np.concatenate(extra)), added


def _names(dataset, cells, shown: int = 8) -> str:
    names = [dataset.cell_types[c] for c in cells]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def check_held_out(dataset, folds, split, stages=(1, 2)) -> list[str]:
    """Whether each fold's selection metric can be computed, before any training.

    Stage 1: a training cell type with no positive (or no negative) in the held-out blocks
    (``split.valid``) gives its task no AUPRC; the task still trains, and the selection metric is
    the mean over the other tasks: a warning line. No such task left is an error. Stage 2: a
    validation cell type with no positive (or no negative) in the bins it is scored on
    (``split.fit``) would be scored on one class only: an error. Returns the warning lines; raises
    UserError with one line naming every fold, stage, cell type and cause that cannot validate.
    Reads the labels once per bin group (counts of all cell types), whatever the number of folds.
    """
    all_cells = np.arange(dataset.n_cell_types)
    groups = {1: ("valid", "held-out blocks", "training"), 2: ("fit", "bins off the test chromosomes", "validation")}
    warnings, errors = [], []
    for stage in stages:
        group, where, role = groups[stage]
        bins = getattr(split, group)
        counts = positives(dataset.labels, bins, all_cells)
        for fold in folds:
            cells = fold.train if stage == 1 else fold.valid
            lacking = [c for c in cells if counts[c] == 0 or counts[c] == len(bins)]
            if not lacking:
                continue
            causes = sorted({"no positive" if counts[c] == 0 else "no negative" for c in lacking})
            what = (f"fold {fold.index} stage {stage}: {role} cell type(s) {_names(dataset, lacking)} have "
                    f"{' or '.join(causes)} in the {len(bins):,} {where}")
            if stage == 1 and len(lacking) < len(cells):
                warnings.append(f"{what}; their tasks train but are left out of the selection metric "
                                f"(the mean AUPRC of the other {len(cells) - len(lacking)} tasks)")
            else:
                errors.append(what)
    if errors:
        raise UserError("; ".join(errors) + ": the selection metric (AUPRC) is undefined for them; check those "
                        "cell types' peaks, or deal the folds with another --seed")
    return warnings
