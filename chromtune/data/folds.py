"""Cross-validation folds over cell types, and leak-free splits of bins.

Cell types: :func:`make_folds` deals a seeded permutation of the T cell types into K disjoint test
groups whose sizes differ by at most one, so every cell type is tested exactly once over the K
folds; each fold's validation group is taken from the next fold's test group, so validation
groups are disjoint from the fold's test group and from each other, and every other cell type
trains. :func:`reference_split` is the reference implementation's fixed split (validation 1, 11,
..., 91; test 15, 25, ..., 105). :func:`roles_table` lists every cell type's role in every fold.

Bins: neighbouring bins share ``context - stride`` bases of sequence, so held-out bins are
contiguous blocks, and training bins whose windows overlap a held-out block are dropped (a guard
band). :func:`split_bins` returns sorted bin indices as :class:`BinRanges` (disjoint runs of bins,
so a process holds a few numbers per held-out block, not 8 bytes per bin of the genome):

    train   bins that either stage trains on
    valid   stage-1 held-out blocks (its selection metric), never trained on
    fit     bins off the test chromosomes (stage-2 validation cell types are scored on these)
    test    bins the test cell types are scored on (all bins, or the ``test_chroms`` only)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from chromtune.data.dataset import Dataset
from chromtune.errors import UserError

REFERENCE_VALID = tuple(range(1, 92, 10))
REFERENCE_TEST = tuple(range(15, 106, 10))


class BinRanges:
    """Sorted bin indices held as disjoint half-open runs ``[starts[k], stops[k])``, thinned to every
    ``every``-th index: memory follows the number of runs, not of bins.

    Reads like the index array it stands for: ``len``, ``ranges[i]``, ``ranges[int array]``
    (vectorised), ``ranges[::k]`` (still runs), and ``np.asarray(ranges)`` (materialises the whole
    array: small data sets and tests); any other index materialises first.
    """

    ndim = 1
    dtype = np.dtype(np.int64)

    def __init__(self, starts: np.ndarray, stops: np.ndarray, every: int = 1):
        self.starts = np.asarray(starts, dtype=np.int64)
        self.stops = np.asarray(stops, dtype=np.int64)
        self.every = int(every)
        self._before = np.concatenate([[0], np.cumsum(self.stops - self.starts)])  # indices before each run

    @classmethod
    def from_mask(cls, mask: np.ndarray, every: int = 1) -> "BinRanges":
        edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
        return cls(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), every)

    def __len__(self) -> int:
        return -(-int(self._before[-1]) // self.every)

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    @property
    def size(self) -> int:
        return len(self)

    def _select(self, index: np.ndarray) -> np.ndarray:
        position = np.asarray(index, dtype=np.int64) * self.every
        run = np.searchsorted(self._before, position, side="right") - 1
        return self.starts[run] + position - self._before[run]

    def __getitem__(self, key):
        if isinstance(key, slice) and key.start in (None, 0) and key.stop is None and (key.step or 1) > 0:
            return BinRanges(self.starts, self.stops, self.every * (key.step or 1))
        if isinstance(key, slice):
            return self._select(np.arange(len(self))[key])
        if isinstance(key, (int, np.integer)):
            if not -len(self) <= key < len(self):
                raise IndexError(f"bin index {key} out of range for {len(self)} bins")
            return int(self._select(key % len(self)))
        index = np.asarray(key)
        if index.dtype.kind in "iu":
            if index.size and (index.min() < -len(self) or index.max() >= len(self)):
                raise IndexError(f"bin index out of range for {len(self)} bins")
            return self._select(np.where(index < 0, index + len(self), index))
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        out = self._select(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)

    def __iter__(self):
        return iter(np.asarray(self).tolist())


@dataclass(frozen=True)
class Fold:
    """Disjoint groups of cell-type indices for one fold."""

    index: int
    train: tuple[int, ...]
    valid: tuple[int, ...]
    test: tuple[int, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def default_n_valid(n_cell_types: int, n_folds: int) -> int:
    """Validation cell types per fold by default: half the smallest test group, at least one."""
    return max(1, math.ceil(n_cell_types // n_folds / 2))


def folds_fit(n_cell_types: int, n_folds: int, n_valid: int | None = None) -> bool:
    """Whether K folds fit: every test group non-empty, validation no larger than the smallest test
    group (it is taken from one), and at least two training cell types in every fold."""
    if n_folds < 2 or n_folds > n_cell_types:
        return False
    n_valid = default_n_valid(n_cell_types, n_folds) if n_valid is None else n_valid
    largest = math.ceil(n_cell_types / n_folds)
    return 1 <= n_valid <= n_cell_types // n_folds and n_cell_types - largest - n_valid >= 2


def make_folds(n_cell_types: int, n_folds: int = 5, seed: int = 0, n_valid: int | None = None) -> list[Fold]:
    """K folds dealing every cell type into exactly one test group (sizes differ by at most one).

    Fold k validates on the first ``n_valid`` cell types of fold k+1's test group (default: half of
    the smallest test group), so validation never overlaps the fold's own test group, and trains on
    the rest. A K that cannot work is refused, naming the largest K that can.
    """
    if n_folds < 2:
        raise UserError(f"--folds {n_folds}: at least 2 folds are needed")
    if not folds_fit(n_cell_types, n_folds, n_valid):
        work = [k for k in range(2, n_cell_types + 1) if folds_fit(n_cell_types, k, n_valid)]
        what = f"--folds {n_folds}" + (f" with {n_valid} validation cell types per fold" if n_valid else "")
        fix = ("no number of folds works" if not work else f"the largest that works is --folds {work[-1]}"
               if n_folds > work[-1] else f"--folds {work[0]} to {work[-1]} work")
        raise UserError(f"{what}: {n_cell_types} cell types do not fit (each fold needs >= 1 test, >= 1 validation "
                        f"(at most the smallest test group) and >= 2 training cell types); {fix}")
    order = np.random.default_rng(seed).permutation(n_cell_types)
    groups = np.array_split(order, n_folds)
    n_valid = default_n_valid(n_cell_types, n_folds) if n_valid is None else n_valid
    folds = []
    for k in range(n_folds):
        test = sorted(int(c) for c in groups[k])
        valid = sorted(int(c) for c in groups[(k + 1) % n_folds][:n_valid])
        train = sorted(set(range(n_cell_types)) - set(test) - set(valid))
        folds.append(Fold(k, tuple(train), tuple(valid), tuple(test)))
    return folds


def reference_split(n_cell_types: int) -> Fold:
    """The reference implementation's fixed split (123 cell types: 103 / 10 / 10)."""
    if n_cell_types <= max(REFERENCE_TEST):
        raise UserError(
            f"--split reference needs at least {max(REFERENCE_TEST) + 1} cell types; the data set has {n_cell_types}"
        )
    held = set(REFERENCE_VALID) | set(REFERENCE_TEST)
    train = tuple(c for c in range(n_cell_types) if c not in held)
    return Fold(0, train, REFERENCE_VALID, REFERENCE_TEST)


def plan_folds(n_cell_types: int, n_folds: int, seed: int = 0, split: str = "kfold",
               n_valid: int | None = None) -> list[Fold]:
    """Every fold the flags ask for: K seeded folds, or the reference split's one fold."""
    if split == "reference":
        return [reference_split(n_cell_types)]
    if split != "kfold":
        raise UserError(f"--split {split!r}: choose 'kfold' or 'reference'")
    return make_folds(n_cell_types, n_folds, seed, n_valid)


def select_fold(n_cell_types: int, fold: int, n_folds: int, seed: int = 0, split: str = "kfold",
                n_valid: int | None = None) -> Fold:
    """The fold the flags ask for, with one-line errors for out-of-range values."""
    if split == "reference" and fold != 0:
        raise UserError(f"--fold {fold}: the reference split has only fold 0")
    if split == "kfold" and not 0 <= fold < n_folds:
        raise UserError(f"--fold {fold}: out of range for --folds {n_folds} (0..{n_folds - 1})")
    return plan_folds(n_cell_types, n_folds, seed, split, n_valid)[fold]


@dataclass(frozen=True)
class BinSplit:
    """Bin indices for one fold (see the module docstring)."""

    train: BinRanges
    valid: BinRanges
    fit: BinRanges
    test: BinRanges


def _guard(dataset: Dataset) -> int:
    """How many bins either side of a held-out bin still share sequence with it."""
    return math.ceil(dataset.context / dataset.stride)


def _expand(mask: np.ndarray, chrom: np.ndarray, width: int) -> np.ndarray:
    """Grow ``mask`` by ``width`` rows each way, never across a chromosome boundary."""
    grown = mask.copy()
    for shift in range(1, width + 1):
        same_next = chrom[shift:] == chrom[:-shift]
        grown[shift:] |= mask[:-shift] & same_next
        grown[:-shift] |= mask[shift:] & same_next
    return grown


def split_bins(dataset: Dataset, seed: int = 0, valid_fraction: float = 0.1, block_bins: int | None = None,
               test_chroms: list[str] | None = None, eval_every: int = 1) -> BinSplit:
    """Split bins into contiguous stage-1 validation blocks, guarded training bins and evaluation bins.

    Bins are assumed in genome order within each chromosome (prepare and import write them so).
    Blocks are ``block_bins`` consecutive bins (default: 1/20 of the fit bins, at least 4 guard widths).
    """
    chrom = dataset.bin_chrom
    n = dataset.n_bins
    on_test_chrom = np.zeros(n, dtype=bool)
    if test_chroms:
        unknown = sorted(set(test_chroms) - set(dataset.chromosomes))
        if unknown:
            raise UserError(f"--test-chroms: {', '.join(unknown)} not in the data set (it has {', '.join(dataset.chromosomes)})")
        on_test_chrom = np.isin(chrom, [dataset.chromosomes.index(c) for c in test_chroms])
        if on_test_chrom.all():
            raise UserError("--test-chroms: holding out every chromosome leaves nothing to train on")
    fit = np.flatnonzero(~on_test_chrom)
    guard = _guard(dataset)
    block = block_bins or max(4 * guard, len(fit) // 20)
    # Blocks never straddle chromosomes: number them within each chromosome's run of fit bins.
    fit_chrom = chrom[fit]
    starts = np.r_[0, np.flatnonzero(np.diff(fit_chrom)) + 1]
    position = np.arange(len(fit)) - np.repeat(starts, np.diff(np.r_[starts, len(fit)]))
    block_id = np.cumsum(np.r_[True, (np.diff(fit_chrom) != 0) | (np.diff(position // block) != 0)]) - 1
    n_blocks = int(block_id[-1]) + 1
    n_valid_blocks = min(n_blocks - 1, max(1, round(valid_fraction * n_blocks)))
    chosen = np.random.default_rng(seed).choice(n_blocks, size=n_valid_blocks, replace=False)
    valid_mask = np.zeros(n, dtype=bool)
    valid_mask[fit[np.isin(block_id, chosen)]] = True
    excluded = _expand(valid_mask | on_test_chrom, chrom, guard)
    train = BinRanges.from_mask(~excluded)
    if len(train) == 0:
        raise UserError("the bin split leaves no training bins; lower the validation fraction or hold out fewer chromosomes")
    test = on_test_chrom if test_chroms else np.ones(n, dtype=bool)
    return BinSplit(train=train, valid=BinRanges.from_mask(valid_mask),
                    fit=BinRanges.from_mask(~on_test_chrom, eval_every), test=BinRanges.from_mask(test, eval_every))


def split_table(fold: Fold, cell_types: list[str]) -> str:
    """The fold's cell-type split as TSV text (cell_type, index, group)."""
    rows = ["cell_type\tindex\tgroup"]
    for group in ("train", "valid", "test"):
        rows += [f"{cell_types[c]}\t{c}\t{group}" for c in getattr(fold, group)]
    return "\n".join(rows) + "\n"


def fold_roles(folds: list[Fold], cell_types: list[str]) -> dict[str, list[str]]:
    """Cell type -> its role (train / valid / test) in each fold, in fold order."""
    role = {}
    for fold in folds:
        for group in ("train", "valid", "test"):
            for c in getattr(fold, group):
                role[(fold.index, c)] = group
    return {name: [role[(f.index, c)] for f in folds] for c, name in enumerate(cell_types)}


def roles_table(folds: list[Fold], cell_types: list[str]) -> str:
    """Every cell type's role in every fold as TSV text (cell_type, index, fold 0, ..., fold K-1)."""
    rows = ["cell_type\tindex\t" + "\t".join(f"fold {f.index}" for f in folds)]
    rows += [f"{name}\t{c}\t" + "\t".join(roles) for c, (name, roles) in enumerate(fold_roles(folds, cell_types).items())]
    return "\n".join(rows) + "\n"
