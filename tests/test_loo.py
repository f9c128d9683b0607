"""The stage-2 training pairs' mean-accessibility input leaves the pair's own label out (poisoned-label
tests), and equals (sum - y) / (T - 1); --mean-feature reference keeps the reference's mean."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from chromtune.data import sampling
from chromtune.data.dataset import write_dataset
from chromtune.errors import UserError
from chromtune.train import loop
from chromtune.train.config import TrainConfig
from chromtune.train.runner import run_training
from chromtune.train.task import FoldTask
from conftest import random_dataset

FAST = dict(arch="basset", width=0.125, folds=3, epochs=1, samples_per_epoch=48, batch_size=16, eval_every=2)


def _feature(counts: np.ndarray, y: np.ndarray, n_train: int, loo: bool) -> np.ndarray:
    mean = torch.as_tensor((counts / n_train).astype(np.float32))
    return loop.training_mean_feature(mean, torch.as_tensor(y, dtype=torch.float32), n_train, loo).numpy()


def test_leave_one_out_is_sum_minus_own_label_over_t_minus_one():
    rng = np.random.default_rng(0)
    for n_train in (2, 7, 21, 103, 250):
        counts = rng.integers(0, n_train + 1, 500)
        y = (rng.random(500) < counts / n_train).astype(np.float32)  # a 1 only where the count allows it
        got = _feature(counts, y, n_train, True)
        np.testing.assert_array_equal(got, ((counts - y) / (n_train - 1)).astype(np.float32))
        np.testing.assert_array_equal(_feature(counts, y, n_train, False), (counts / n_train).astype(np.float32))


def test_poisoned_own_label_never_reaches_the_feature():
    """Flip the pair's own label (and with it the bin's count): the leave-one-out input is unchanged
    bit for bit; the reference input moves by 1/T."""
    rng = np.random.default_rng(1)
    n_train = 21
    y = rng.integers(0, 2, 1000).astype(np.float32)
    counts = y + rng.integers(0, n_train, 1000)  # the other 20 cell types: 0..20 positives
    poisoned_y, poisoned_counts = 1 - y, counts + (1 - 2 * y)
    np.testing.assert_array_equal(_feature(counts, y, n_train, True), _feature(poisoned_counts, poisoned_y, n_train, True))
    moved = _feature(poisoned_counts, poisoned_y, n_train, False) - _feature(counts, y, n_train, False)
    np.testing.assert_allclose(np.abs(moved), 1 / n_train, rtol=1e-5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loo")
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.1)
    path = root / "rand.h5"
    write_dataset(path, ds)
    stage1 = TrainConfig(data=str(path), stage=1, **FAST)
    run_training(stage1, root / "s1", workers=0)
    return ds, path, replace(stage1, stage=2, init=str(root / "s1"))


def _train_recording(cfg, out, monkeypatch) -> list[tuple]:
    """Stage-2 training in this process; every batch's bins, cells, labels and the mean input the model got."""
    batches, calls = [], []
    original_batch, original_feature = sampling.Stage2Sampler.batch, loop.training_mean_feature

    def batch(self, epoch, step):
        out = original_batch(self, epoch, step)
        batches.append(out)
        return out

    def feature(mean, y, n_train, leave_one_out):
        out = original_feature(mean, y, n_train, leave_one_out)
        calls.append((leave_one_out, n_train, out.cpu().numpy()))
        return out

    monkeypatch.setattr(sampling.Stage2Sampler, "batch", batch)
    monkeypatch.setattr(loop, "training_mean_feature", feature)
    run_training(cfg, out, workers=0)
    assert len(batches) == len(calls) == FAST["epochs"] * FAST["samples_per_epoch"] // FAST["batch_size"]
    return [(*b, *c) for b, c in zip(batches, calls)]


@pytest.mark.parametrize("mean_feature", ["loo", "reference"])
def test_training_feeds_the_chosen_mean_to_the_model(data, tmp_path, monkeypatch, mean_feature):
    ds, _, stage2 = data
    task = FoldTask.from_config(stage2)
    train = list(task.fold.train)
    counts = ds.labels[:, train].sum(1)
    records = _train_recording(replace(stage2, mean_feature=mean_feature), tmp_path, monkeypatch)
    assert records  # the model was fed
    for bins, cells, y, leave_one_out, n_train, fed in records:
        assert leave_one_out == (mean_feature == "loo") and n_train == len(train)
        np.testing.assert_array_equal(y, ds.labels[bins, cells])
        want = (counts[bins] - y) / (n_train - 1) if leave_one_out else counts[bins] / n_train
        np.testing.assert_allclose(fed.ravel(), want, atol=1e-6)
        if leave_one_out:  # the feature cannot tell the pair's label apart: same count, other label
            assert not np.allclose(fed.ravel(), counts[bins] / n_train)


def test_poisoned_training_label_leaves_the_training_inputs_unchanged(data, tmp_path, monkeypatch):
    """Flip the label of every training pair of one bin in the file: for each of those pairs the
    leave-one-out mean is the same as before (its own label is not in it)."""
    ds, path, stage2 = data
    task = FoldTask.from_config(stage2)
    train = np.asarray(task.fold.train)
    bin_ = int(task.bins.train[np.argmax(ds.labels[task.bins.train][:, train].sum(1))])  # a bin with positives
    poisoned = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.1)
    assert len(train) > 0
    for j in train:  # one pair at a time: flip (bin_, j) alone and compare that pair's feature
        clean_y = float(ds.labels[bin_, j])
        poisoned.labels[:] = ds.labels
        poisoned.labels[bin_, j] = 1 - poisoned.labels[bin_, j]
        write_dataset(tmp_path / f"p{j}.h5", poisoned)
        poisoned_task = FoldTask.from_config(replace(stage2, data=str(tmp_path / f"p{j}.h5")))
        for loo, same in ((True, True), (False, False)):
            a = loop.training_mean_feature(torch.as_tensor(task.mean_access[[bin_]]), torch.tensor([clean_y]),
                                           len(train), loo)
            b = loop.training_mean_feature(torch.as_tensor(poisoned_task.mean_access[[bin_]]),
                                           torch.tensor([1 - clean_y]), len(train), loo)
            assert torch.equal(a, b) == same


def test_unknown_mean_feature_is_one_line():
    with pytest.raises(UserError, match="--mean-feature 'own': choose loo or reference"):
        TrainConfig(data="x.h5", mean_feature="own")
