import numpy as np
import pytest

from chromtune.data.folds import (REFERENCE_TEST, REFERENCE_VALID, fold_roles, folds_fit, make_folds, plan_folds,
                                  reference_split, roles_table, select_fold, split_bins, split_table)
from chromtune.errors import UserError
from conftest import random_dataset


GRID = [(t, k) for t in (6, 7, 8, 10, 11, 13, 23, 30, 31, 123, 200) for k in range(2, 8)
        if folds_fit(t, k)]


@pytest.mark.parametrize("n_cells,n_folds", GRID)
def test_every_cell_type_is_tested_exactly_once(n_cells, n_folds):
    folds = make_folds(n_cells, n_folds, seed=3)
    assert len(folds) == n_folds
    tested = sorted(c for f in folds for c in f.test)
    assert tested == list(range(n_cells))  # each exactly once
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    valids = [set(f.valid) for f in folds]
    for f in folds:
        train, valid, test = set(f.train), set(f.valid), set(f.test)
        assert not (train & valid) and not (train & test) and not (valid & test)
        assert train | valid | test == set(range(n_cells))
        assert len(train) >= 2 and len(valid) >= 1
    for i in range(n_folds):
        for j in range(i + 1, n_folds):
            assert not (valids[i] & valids[j])
    assert all(max(f.train) < n_cells for f in folds)  # no int8-style overflow past 127


def test_grid_has_non_divisible_cases():
    assert sum(t % k != 0 for t, k in GRID) >= 20
    assert (7, 5) in GRID and (123, 5) in GRID


def test_paper_count_tests_all_123():
    sizes = sorted(len(f.test) for f in make_folds(123, 5))
    assert sizes == [24, 24, 25, 25, 25]


def test_divisible_counts_keep_the_earlier_folds():
    """30 cell types in 5 folds (the demo): 6 test and 3 validation per fold, as before."""
    folds = make_folds(30, 5, seed=0)
    order = np.random.default_rng(0).permutation(30)
    assert len(folds) == 5
    for k, f in enumerate(folds):
        assert f.test == tuple(sorted(order[6 * k:6 * k + 6]))
        assert f.valid == tuple(sorted(order[6 * ((k + 1) % 5):6 * ((k + 1) % 5) + 3]))


def test_folds_are_deterministic_by_seed():
    assert make_folds(30, 5, seed=1) == make_folds(30, 5, seed=1)
    assert make_folds(30, 5, seed=1) != make_folds(30, 5, seed=2)


def test_validation_size_by_flag():
    folds = make_folds(40, 4, seed=0, n_valid=2)
    assert len(folds) == 4
    assert all(len(f.test) == 10 and len(f.valid) == 2 and len(f.train) == 28 for f in folds)


@pytest.mark.parametrize("kwargs, largest", [
    (dict(n_cell_types=4, n_folds=5), 4),
    (dict(n_cell_types=7, n_folds=8), 7),
    (dict(n_cell_types=20, n_folds=5, n_valid=5), 4),
    (dict(n_cell_types=30, n_folds=31), 30),
])
def test_too_many_folds_name_the_largest_that_works(kwargs, largest):
    with pytest.raises(UserError) as err:
        make_folds(**kwargs)
    message = str(err.value)
    assert message.startswith(f"--folds {kwargs['n_folds']}") and "\n" not in message
    assert message.endswith(f"the largest that works is --folds {largest}")
    assert len(make_folds(**{**kwargs, "n_folds": largest})) == largest
    assert not folds_fit(**{**kwargs, "n_folds": largest + 1})


@pytest.mark.parametrize("kwargs, end", [
    (dict(n_cell_types=3, n_folds=2), "no number of folds works"),
    (dict(n_cell_types=5, n_folds=2), "--folds 3 to 5 work"),
    (dict(n_cell_types=20, n_folds=1), "at least 2 folds are needed"),
])
def test_other_impossible_folds_are_one_line(kwargs, end):
    with pytest.raises(UserError) as err:
        make_folds(**kwargs)
    assert str(err.value).endswith(end) and "\n" not in str(err.value)


def test_issue_example_seven_cell_types_five_folds():
    folds = make_folds(7, 5)
    assert sorted(len(f.test) for f in folds) == [1, 1, 1, 2, 2]
    assert sorted(c for f in folds for c in f.test) == list(range(7))


def test_plan_folds_offers_the_reference_split():
    assert plan_folds(123, 5, split="reference") == [reference_split(123)]
    assert len(plan_folds(123, 5)) == 5
    with pytest.raises(UserError, match="--split 'x'"):
        plan_folds(123, 5, split="x")


def test_roles_table_lists_each_cell_types_role_per_fold():
    folds = make_folds(11, 3, seed=2)
    names = [f"c{i}" for i in range(11)]
    roles = fold_roles(folds, names)
    assert list(roles) == names
    assert all(r.count("test") == 1 for r in roles.values())
    lines = roles_table(folds, names).strip().split("\n")
    assert lines[0] == "cell_type\tindex\tfold 0\tfold 1\tfold 2"
    for line in lines[1:]:
        name, index, *cells = line.split("\t")
        assert names[int(index)] == name and cells == roles[name]
        for f, role in zip(folds, cells):
            assert int(index) in getattr(f, role)


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
