"""--pairs-per-bin: stage-2 training pairs grouped by bin so the trunk runs once per bin (issue 22 item 3).

The grouped sampler keeps what the independent one guarantees (exactly 1 positive : 3 negatives, true
labels, only training bins and cell types, every pair of a class equally likely, determinism, disjoint
worker shards); the model scores a grouped batch as it scores the same pairs one window each; the
setting reaches training, the sweep's key and label, and compare."""

import hashlib
import json

import numpy as np
import pytest
import torch

from chromtune.cli.train import main as train_main
from chromtune.data.dataset import write_dataset
from chromtune.data.folds import plan_folds
from chromtune.data.labels import PackedLabels
from chromtune.data.sampling import Stage2Sampler, check_pairs_per_bin
from chromtune.errors import UserError
from chromtune.models import build_model
from chromtune.sweep.plan import plan_sweep
from chromtune.sweep.settings import SweepSettings
from chromtune.train.config import TrainConfig
from chromtune.train.runner import run_training
from conftest import assert_one_line_error, random_dataset, run_command

FAST = dict(arch="basset", width=0.125, folds=3, epochs=2, samples_per_epoch=48, batch_size=16, eval_every=2)


@pytest.fixture(scope="module")
def ds():
    return random_dataset(n_cells=10, positive_rate=0.2)


@pytest.mark.parametrize("k", [2, 4])
def test_grouped_batches_keep_one_positive_to_three_negatives_of_training_pairs(ds, k):
    bins, train_cells = np.arange(0, ds.n_bins, 2), [0, 2, 3, 5, 7, 8]
    sampler = Stage2Sampler(ds.labels, bins, train_cells, 64, seed=0, pairs_per_bin=k)
    for step in range(5):
        got_bins, cells, y = sampler.batch(0, step)
        assert len(y) == 64 and y.sum() == 16 and (y[:16] == 1).all()
        np.testing.assert_array_equal(y, ds.labels[got_bins, cells])
        assert np.isin(got_bins, bins).all() and np.isin(cells, train_cells).all()
        assert len(np.unique(got_bins)) < 64 * 0.75  # what the trunk runs on


def test_a_group_is_one_bin_and_one_label_in_distinct_cell_types_at_most_k(ds):
    sampler = Stage2Sampler(ds.labels, np.arange(ds.n_bins), [0, 1, 2, 3, 4, 5, 6], 64, seed=3, pairs_per_bin=3)
    for value, n in ((1, 16), (0, 48)):
        bins, cells, group = sampler._groups(np.random.default_rng(value), value, n)
        assert len(bins) == n and (ds.labels[bins, cells] == value).all()
        for g in np.unique(group):
            members = group == g
            assert len(np.unique(bins[members])) == 1
            assert len(np.unique(cells[members])) == members.sum() <= 3
        # every group but the last, which is cut to fit, is as large as its bin allows
        for g in np.unique(group)[:-1]:
            b = bins[group == g][0]
            assert (group == g).sum() == min(3, int((ds.labels[b, :7] == value).sum()))


def test_every_pair_of_a_class_stays_equally_likely():
    """Anchors at bins with many pairs of their label are kept less often, so pairs at bins that share
    their label with few other cell types (cell-type-specific peaks) are not drawn less often."""
    dense = np.zeros((60, 6), dtype=np.uint8)
    dense[0:5, 0] = 1                 # positives alone at their bin
    dense[10:13, 0:3] = 1             # three at a bin
    dense[20:22, :5] = 1              # five at a bin (more than k)
    dense[30, 5] = 1                  # a held-out column: never drawn
    train = [0, 1, 2, 3, 4]
    sampler = Stage2Sampler(PackedLabels.from_dense(dense), np.arange(60), train, 128, seed=0, pairs_per_bin=3)
    counts = np.zeros((60, 6))
    for step in range(400):
        bins, cells, y = sampler.batch(0, step)
        assert (cells != 5).all()
        np.add.at(counts, (bins, cells), 1)
    for value in (1, 0):
        assert counts[:, train][dense[:, train] == value].min() > 0
        by_kind = [counts[rows][:, train][dense[rows][:, train] == value].mean()
                   for rows in (slice(0, 5), slice(10, 13), slice(20, 22), slice(40, 60))
                   if (dense[rows][:, train] == value).any()]
        assert max(by_kind) < 1.12 * min(by_kind), (value, by_kind)  # without the 1 / size rule: 3x


def test_grouped_sampling_never_reads_held_out_columns(ds):
    train_cells = [0, 1, 2, 3]
    poisoned = ds.labels.copy()
    poisoned[:, 4:] = 1 - poisoned[:, 4:]
    a = Stage2Sampler(ds.labels, np.arange(ds.n_bins), train_cells, 64, seed=0, pairs_per_bin=3).batch(0, 0)
    b = Stage2Sampler(poisoned, np.arange(ds.n_bins), train_cells, 64, seed=0, pairs_per_bin=3).batch(0, 0)
    assert len(a) == len(b) == 3 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_grouped_batches_are_deterministic_and_shards_take_whole_groups(ds):
    make = lambda rank=0, world=1: Stage2Sampler(ds.labels, np.arange(ds.n_bins), [0, 3, 6, 8], 48, seed=2,
                                                 rank=rank, world_size=world, pairs_per_bin=4)
    whole = make().batch(1, 2)
    again = make().batch(1, 2)
    assert len(whole) == len(again) == 3 and all(np.array_equal(x, y) for x, y in zip(whole, again))
    assert not np.array_equal(whole[0], make().batch(1, 3)[0])
    shards = [make(r, 3).batch(1, 2) for r in range(3)]
    pairs = lambda parts: sorted(zip(*(p.tolist() for p in parts)))
    assert pairs([np.concatenate([s[i] for s in shards]) for i in range(3)]) == pairs(whole)
    assert all(len(s[0]) > 0 for s in shards)
    assert sum(len(np.unique(shard[0])) for shard in shards) < 0.75 * len(whole[0])  # groups stay whole


def test_one_pair_per_bin_draws_what_independent_pairs_drew_before():
    """pairs_per_bin=1 is the sampler as it was: the same batches, bit for bit, as before the option."""
    ds = random_dataset(n_cells=10, positive_rate=0.05)
    digest = hashlib.sha256()
    for rank in (0, 1):
        sampler = Stage2Sampler(ds.labels, np.arange(0, ds.n_bins, 3), [0, 2, 3, 5, 7, 8], 64, seed=11, rank=rank,
                                world_size=2)
        for step in range(4):
            for part in sampler.batch(2, step):
                digest.update(np.ascontiguousarray(part).tobytes())
    assert digest.hexdigest() == "6844e817fdd8d3d637376f80386b79b436eed6e39a6659c35048f0d055c92b38"


@pytest.mark.parametrize("head", ["simple", "complex"])
def test_the_trunk_once_per_bin_scores_as_one_window_per_pair(head):
    torch.manual_seed(0)
    model = build_model("resnet", 2, n_genes=7, with_mean=True, head=head, n_tasks=5, seq_len=120, width=0.125).eval()
    windows = torch.nn.functional.one_hot(torch.randint(0, 4, (5, 120)), 4).float().transpose(1, 2)
    bin_index = torch.tensor([0, 0, 3, 1, 4, 4, 4, 2, 0])
    expr, mean = torch.randn(9, 7), torch.rand(9)
    grouped = model(windows, expr, mean, bin_index)
    each = model(windows[bin_index], expr, mean)
    torch.testing.assert_close(grouped, each, rtol=1e-5, atol=1e-5)
    grouped.sum().backward()
    grad = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    each = model(windows[bin_index], expr, mean)
    each.sum().backward()
    for a, p in zip(grad, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rand.h5"
    write_dataset(path, random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.1))
    return str(path)


def test_stage2_trains_on_grouped_pairs_with_the_trunk_once_per_bin(data_file, tmp_path, monkeypatch):
    from chromtune.train import loop

    windows, pairs, build = [], [], loop.build_for

    def build_and_watch(cfg, task):
        model = build(cfg, task)
        if cfg.stage == 2:
            model.trunk.register_forward_hook(lambda m, inputs, out: windows.append(len(out)) if m.training else None)
            model.head.register_forward_hook(lambda m, inputs, out: pairs.append(len(out)) if m.training else None)
        return model

    monkeypatch.setattr(loop, "build_for", build_and_watch)
    run_training(TrainConfig(data=data_file, stage=1, **FAST), tmp_path / "s1", workers=0)
    metrics = run_training(TrainConfig(data=data_file, stage=2, init=str(tmp_path / "s1"), pairs_per_bin=4, **FAST),
                           tmp_path / "s2", workers=0)
    assert metrics["config"]["pairs_per_bin"] == 4
    assert json.loads((tmp_path / "s2" / "metrics.json").read_text())["config"]["pairs_per_bin"] == 4
    assert pairs == [16] * 6 and sum(windows) < 0.6 * sum(pairs)
    assert all(np.isfinite(h["train_loss"]) for h in metrics["history"])


def test_more_pairs_per_bin_than_training_cell_types_is_one_line(data_file, tmp_path, capsys):
    folds = plan_folds(12, 3, 0, "kfold")
    check_pairs_per_bin(6, folds)
    with pytest.raises(UserError, match=r"--pairs-per-bin 9: fold \d has 6 training cell types"):
        check_pairs_per_bin(9, folds)
    with pytest.raises(UserError, match="--pairs-per-bin 0: must be at least 1"):
        TrainConfig(data=data_file, pairs_per_bin=0)
    run_training(TrainConfig(data=data_file, stage=1, **FAST), tmp_path / "s1", workers=0)
    out = tmp_path / "s2"
    code, _, err = run_command(train_main, ["--data", data_file, "--stage", "2", "--init", str(tmp_path / "s1"),
                                            "--folds", "3", "--workers", "0", "--pairs-per-bin", "9", "--out", str(out)],
                               capsys)
    assert_one_line_error(code, err, "--pairs-per-bin 9", "training cell types")
    assert not out.exists()


def test_a_grouped_sweep_has_its_own_key_label_and_recorded_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = plan_sweep(SweepSettings(arch="basset", folds=2, smoke_test=True, pairs_per_bin=4))
    assert plan.key.endswith("-s0-ppb4-smoke") and plan.label == "basset tune+mean 4/bin"
    assert plan.base["pairs_per_bin"] == 4  # every trial's config and the sweep run's MLflow params
    independent = plan_sweep(SweepSettings(arch="basset", folds=2, smoke_test=True))
    assert independent.key.endswith("-s0-smoke") and independent.base["pairs_per_bin"] == 1
    with pytest.raises(UserError, match="--pairs-per-bin 8: fold . has 7 training cell types"):
        plan_sweep(SweepSettings(arch="basset", folds=2, smoke_test=True, pairs_per_bin=8))
