import numpy as np
import pytest

from chromtune.data.sampling import Stage1Sampler, Stage2Sampler, eval_chunks
from conftest import random_dataset


@pytest.fixture
def ds():
    return random_dataset(n_cells=10, positive_rate=0.05)


def test_stage1_targets_are_training_columns(ds):
    bins = np.arange(0, ds.n_bins, 2)
    train_cells = [0, 2, 3, 7]
    sampler = Stage1Sampler(ds.labels, bins, train_cells, batch_size=32, seed=1)
    got_bins, targets = sampler.batch(epoch=0, step=0)
    assert targets.shape == (32, 4)
    assert np.isin(got_bins, bins).all()
    assert np.array_equal(targets, ds.labels[np.ix_(got_bins, train_cells)])


def test_stage2_batches_are_one_positive_to_three_negatives(ds):
    bins = np.arange(ds.n_bins)
    train_cells = [1, 4, 5, 8]
    sampler = Stage2Sampler(ds.labels, bins, train_cells, batch_size=64, seed=0)
    for step in range(5):
        got_bins, cells, y = sampler.batch(0, step)
        assert len(y) == 64 and y.sum() == 16
        assert np.isin(cells, train_cells).all()
        assert np.array_equal(y, ds.labels[got_bins, cells])


def test_samplers_are_deterministic_and_resumable(ds):
    make = lambda: Stage2Sampler(ds.labels, np.arange(ds.n_bins), [0, 1, 2], 32, seed=5)
    a = [b[0] for b in make().epoch(3, 4)]
    b = [b[0] for b in make().epoch(3, 4)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(make().batch(3, 0)[0], make().batch(4, 0)[0])


@pytest.mark.parametrize("cls", [Stage1Sampler, Stage2Sampler])
def test_worker_shards_are_disjoint_and_complete(ds, cls):
    whole = cls(ds.labels, np.arange(ds.n_bins), [0, 3, 6], 48, seed=2).batch(1, 2)[0]
    shards = [cls(ds.labels, np.arange(ds.n_bins), [0, 3, 6], 48, seed=2, rank=r, world_size=3).batch(1, 2)[0]
              for r in range(3)]
    assert sorted(np.concatenate(shards)) == sorted(whole)
    assert all(len(s) == 16 for s in shards)


def test_stage2_never_reads_held_out_columns(ds):
    train_cells = [0, 1, 2, 3]
    poisoned = ds.labels.copy()
    poisoned[:, 4:] = 1 - poisoned[:, 4:]
    a = Stage2Sampler(ds.labels, np.arange(ds.n_bins), train_cells, 64, seed=0).batch(0, 0)
    b = Stage2Sampler(poisoned, np.arange(ds.n_bins), train_cells, 64, seed=0).batch(0, 0)
    assert len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_eval_chunks_cover_in_order():
    idx = np.arange(103) * 3
    assert np.array_equal(np.concatenate(list(eval_chunks(idx, 10))), idx)
    shards = [np.concatenate(list(eval_chunks(idx, 10, r, 2))) for r in range(2)]
    assert np.array_equal(np.concatenate(shards), idx)
