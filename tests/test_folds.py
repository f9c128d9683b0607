import numpy as np
import pytest

from chromtune.data.folds import (REFERENCE_TEST, REFERENCE_VALID, make_folds, reference_split, select_fold,
                                  split_bins, split_table)
from chromtune.errors import UserError
from conftest import random_dataset


@pytest.mark.parametrize("n_cells,n_folds", [(25, 5), (123, 5), (10, 3), (200, 4)])
def test_folds_are_disjoint_and_cover(n_cells, n_folds):
    folds = make_folds(n_cells, n_folds, seed=3)
    tests = [set(f.test) for f in folds]
    for f in folds:
        train, valid, test = set(f.train), set(f.valid), set(f.test)
        assert not (train & valid) and not (train & test) and not (valid & test)
        assert train | valid | test == set(range(n_cells))
        assert len(train) >= 2
    for i in range(n_folds):
        for j in range(i + 1, n_folds):
            assert not (tests[i] & tests[j])
    assert all(max(f.train) < n_cells for f in folds)  # no int8-style overflow past 127


def test_folds_are_deterministic_by_seed():
    assert make_folds(30, 5, seed=1) == make_folds(30, 5, seed=1)
    assert make_folds(30, 5, seed=1) != make_folds(30, 5, seed=2)


def test_group_sizes_by_flag():
    folds = make_folds(40, 4, seed=0, n_valid=2, n_test=5)
    assert all(len(f.test) == 5 and len(f.valid) == 2 and len(f.train) == 33 for f in folds)


@pytest.mark.parametrize("kwargs", [dict(n_cell_types=4, n_folds=5), dict(n_cell_types=20, n_folds=5, n_test=5),
                                    dict(n_cell_types=20, n_folds=1)])
def test_too_many_folds_is_one_line_error(kwargs):
    with pytest.raises(UserError) as err:
        make_folds(**kwargs)
    assert "--folds" in str(err.value) and "\n" not in str(err.value)


def test_reference_split():
    fold = reference_split(123)
    assert fold.valid == REFERENCE_VALID == (1, 11, 21, 31, 41, 51, 61, 71, 81, 91)
    assert fold.test == REFERENCE_TEST and fold.test[0] == 15 and fold.test[-1] == 105
    assert len(fold.train) == 103
    with pytest.raises(UserError):
        reference_split(50)


def test_select_fold_range():
    assert select_fold(25, 4, 5).index == 4
    with pytest.raises(UserError, match="--fold 5"):
        select_fold(25, 5, 5)


def test_split_table_lists_every_cell_once():
    fold = make_folds(12, 3)[0]
    names = [f"c{i}" for i in range(12)]
    rows = split_table(fold, names).strip().split("\n")[1:]
    assert sorted(r.split("\t")[0] for r in rows) == sorted(names)


def _runs(indices):
    return np.split(indices, np.flatnonzero(np.diff(indices) != 1) + 1)


def test_validation_bins_are_contiguous_blocks_with_guard():
    ds = random_dataset(n_chroms=4, chrom_len=40_000)
    split = split_bins(ds, seed=0, valid_fraction=0.1)
    assert len(split.valid) > 0 and len(split.train) > 0
    assert not np.intersect1d(split.train, split.valid).size
    # Blocks are long runs, not scattered bins.
    assert min(len(r) for r in _runs(split.valid)) >= 4 * (ds.context // ds.stride)
    # No training window overlaps a validation window: same chromosome and starts closer than context.
    for v in _runs(split.valid):
        chrom = ds.bin_chrom[v[0]]
        lo, hi = ds.bin_start[v[0]], ds.bin_start[v[-1]]
        same = ds.bin_chrom[split.train] == chrom
        starts = ds.bin_start[split.train][same]
        assert not ((starts > lo - ds.context) & (starts < hi + ds.context)).any()


def test_test_chroms_are_held_out_of_training():
    ds = random_dataset(n_chroms=4)
    split = split_bins(ds, seed=0, test_chroms=["chr2"])
    test_chrom = ds.chromosomes.index("chr2")
    assert (ds.bin_chrom[split.test] == test_chrom).all()
    assert not (ds.bin_chrom[split.train] == test_chrom).any()
    assert not (ds.bin_chrom[split.valid] == test_chrom).any()
    assert not (ds.bin_chrom[split.fit] == test_chrom).any()
    with pytest.raises(UserError, match="chrZ"):
        split_bins(ds, test_chroms=["chrZ"])


def test_eval_every_kth_bin():
    ds = random_dataset()
    assert np.array_equal(split_bins(ds, eval_every=5).test, np.arange(ds.n_bins)[::5])
