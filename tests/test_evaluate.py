"""Bounded validation and the streamed test evaluation (chromtune.train.evaluate / metrics)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_curve

from chromtune.data.dataset import write_dataset
from chromtune.models import build_model
from chromtune.models.checkpoint import save_model
from chromtune.train import evaluate, loop, metrics
from chromtune.train.baselines import mean_baseline, weighted_mean_baseline
from chromtune.train.config import DEMO_VALID_PAIRS, DEMO_WIDTH, TrainConfig
from chromtune.train.metrics import StreamingMetrics, evaluate_scores, mean_task_auprc
from chromtune.train.runner import run_training
from chromtune.train.task import FoldTask
from conftest import random_dataset

FAST = dict(arch="basset", width=0.125, folds=3, epochs=2, samples_per_epoch=32, batch_size=16)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rand.h5"
    write_dataset(path, random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15))
    return str(path)


def stage2_model(task: FoldTask, with_mean: bool = True, head: str = "simple"):
    """A small stage-2 model with random eval-mode BatchNorm, so scores vary by pair."""
    torch.manual_seed(0)
    model = build_model("basset", 2, n_genes=task.dataset.n_genes, with_mean=with_mean, head=head,
                        n_tasks=len(task.fold.train), seq_len=task.dataset.context, width=0.1, hidden=16)
    gen = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    return model.eval()


def assert_same_metrics(got: dict, want: dict):
    for key in ("auprc", "auroc", "auprc_mean_per_cell", "auroc_mean_per_cell"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, err_msg=key)
    for key in ("auprc", "auroc"):
        np.testing.assert_allclose(got["per_cell"][key], want["per_cell"][key], rtol=1e-9, err_msg=key)
    assert len(got["binned"]) == len(want["binned"])
    for g, w in zip(got["binned"], want["binned"]):
        assert {k: g[k] for k in ("lo", "hi", "n_pairs", "minority")} == {k: w[k] for k in ("lo", "hi", "n_pairs",
                                                                                              "minority")}
        np.testing.assert_allclose([g["auprc"], g["positive_rate"]], [w["auprc"], w["positive_rate"]], rtol=1e-9)


# -- streamed metrics ------------------------------------------------------------------------------
def test_streamed_metrics_equal_sklearn_on_the_dense_float16_scores(monkeypatch):
    monkeypatch.setattr(metrics, "_PENDING", 50)  # several flushes
    rng = np.random.default_rng(0)
    n, c = 400, 4
    labels = (rng.random((n, c)) < 0.2).astype(np.uint8)
    scores = (rng.normal(size=(n, c)) + 1.5 * labels).astype(np.float32)
    scores[:40] = np.round(scores[:40])  # ties
    scores[40:50] = -0.0
    scores[50:60] = 0.0
    labels[:, 3] = 0  # a single-class cell type: nan, skipped by the means and the per-fraction tables
    fraction = rng.integers(0, 11, n) / 10  # every bin of the fraction histogram, both minorities
    stream = StreamingMetrics(c, skip=[3])
    for lo, hi in ((0, 1), (1, 77), (77, 300), (300, 400)):
        stream.add(labels[lo:hi], scores[lo:hi], fraction[lo:hi])
    dense = scores.astype(np.float16).astype(np.float64)
    got, want = stream.result(), evaluate_scores(labels, dense, fraction)
    assert np.isnan(got["per_cell"]["auprc"][3])
    assert_same_metrics(got, want)
    precision, recall = stream.curve()
    sk_precision, sk_recall, _ = precision_recall_curve(labels.ravel(), dense.ravel())
    np.testing.assert_allclose(precision, sk_precision, rtol=1e-12)
    np.testing.assert_allclose(recall, sk_recall, rtol=1e-12)


def test_score_keys_order_like_float16_values():
    values = np.array([-np.inf, -70000.0, -3.5, -1e-7, -0.0, 0.0, 6e-8, 1e-3, 2.0, 65504.0, np.inf], np.float32)
    keys = metrics.score_keys(values)
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    order = np.argsort(half, kind="stable")
    assert np.all(np.diff(keys[order]) >= 0)
    assert keys[4] == keys[5]  # -0 and +0 tie
    assert len(np.unique(keys)) == len(np.unique(half))
    with pytest.raises(ValueError, match="NaN"):
        metrics.score_keys(np.array([np.nan]))


# -- bounded validation ----------------------------------------------------------------------------
def test_validation_sample_is_fixed_seeded_by_fold_and_disjoint(data_file):
    one = TrainConfig(data=data_file, stage=1, valid_bins=25, **FAST)
    task = FoldTask.from_config(one)
    bins, cells, added = evaluate.validation_sample(task, one)
    assert len(bins) == 25 and added == {} and np.all(np.diff(bins) > 0)
    assert np.isin(bins, task.bins.valid).all() and not np.isin(bins, task.bins.train).any()
    assert cells.tolist() == list(task.fold.train)
    trial = replace(one, lr=0.1, batch_size=32)  # another trial of the same stage
    assert np.array_equal(evaluate.validation_sample(task, trial)[0], bins)
    assert not np.array_equal(evaluate.validation_sample(task, replace(one, seed=5))[0], bins)

    two = TrainConfig(data=data_file, stage=2, init="x", valid_pairs=50, **FAST)
    task2 = FoldTask.from_config(two)
    bins2, cells2, _ = evaluate.validation_sample(task2, two)
    n_valid = len(task2.fold.valid)
    assert cells2.tolist() == list(task2.fold.valid) and not set(cells2) & set(task2.fold.train)
    assert len(bins2) == -(-50 // n_valid) and np.isin(bins2, task2.bins.fit).all()
    assert np.array_equal(evaluate.validation_sample(task2, replace(two, lr=0.5))[0], bins2)
    all_bins = evaluate.validation_sample(task2, replace(two, valid_pairs=0))[0]
    assert np.array_equal(all_bins, task2.bins.fit)


def test_every_epoch_and_trial_validates_on_the_same_sample(data_file, tmp_path, monkeypatch):
    seen = []
    original = evaluate.validation_sample

    def record(task, cfg):
        out = original(task, cfg)
        seen.append(out)
        return out
    monkeypatch.setattr(loop, "validation_sample", record)
    cfg = TrainConfig(data=data_file, stage=1, valid_bins=20, **FAST)
    run_training(cfg, tmp_path / "a", workers=0)
    run_training(replace(cfg, lr=2e-2, batch_size=8), tmp_path / "b", workers=0)
    assert len(seen) == 2  # drawn once per trial, for all its epochs
    for bins, cells, _ in seen[1:]:
        assert np.array_equal(bins, seen[0][0]) and np.array_equal(cells, seen[0][1])


@pytest.mark.parametrize("head", ["simple", "complex"])
def test_all_pairs_reproduces_the_plain_forward_pass(data_file, head):
    """valid_pairs=0 / valid_bins=0: every held-out pair, as before the sample, through the split head."""
    cfg = TrainConfig(data=data_file, stage=2, init="x", valid_pairs=0, **FAST)
    task = FoldTask.from_config(cfg)
    model = stage2_model(task, head=head)
    ds, bins, cells = task.dataset, task.bins.fit, np.asarray(task.fold.valid)
    with torch.inference_mode():
        x = torch.nn.functional.one_hot(torch.as_tensor(ds.window_codes(bins)).long(), 5)[..., :4]
        x = x.permute(0, 2, 1).float().repeat_interleave(len(cells), 0)
        expr = torch.as_tensor(ds.expression[cells]).repeat(len(bins), 1)
        mean = torch.as_tensor(task.mean_access[bins]).repeat_interleave(len(cells))
        plain = model(x, expr, mean).view(len(bins), len(cells)).numpy()
    want = evaluate_scores(ds.labels[np.ix_(bins, cells)], plain)
    got = evaluate.validation_metrics(model, task, cfg, CPU)
    np.testing.assert_allclose([got["valid_auprc"], got["valid_auroc"], got["valid_auprc_mean_per_cell"]],
                               [want["auprc"], want["auroc"], want["auprc_mean_per_cell"]], rtol=1e-6)

    one = TrainConfig(data=data_file, stage=1, valid_bins=0, **FAST)
    torch.manual_seed(0)
    stage1 = build_model("basset", 1, n_tasks=len(task.fold.train), seq_len=ds.context, width=0.1, hidden=16).eval()
    valid = task.bins.valid
    with torch.inference_mode():
        x = torch.nn.functional.one_hot(torch.as_tensor(ds.window_codes(valid)).long(), 5)[..., :4]
        scores = stage1(x.permute(0, 2, 1).float()).numpy()
    want1 = mean_task_auprc(ds.labels[np.ix_(valid, task.fold.train)], scores)
    assert evaluate.validation_metrics(stage1, task, one, CPU)["valid_auprc"] == pytest.approx(want1, rel=1e-6)


# -- the test evaluation ---------------------------------------------------------------------------
def test_test_evaluation_streams_what_dense_scores_give(data_file, tmp_path):
    cfg = TrainConfig(data=data_file, stage=2, init="x", test_every=3, eval_batch_size=50, **FAST)
    task = FoldTask.from_config(cfg)
    model = stage2_model(task)
    report = evaluate.test_evaluation(model, task, cfg, CPU)
    ds, train, test = task.dataset, task.fold.train, task.fold.test
    bins = task.bins.test[::3]
    assert report["pairs"] == {"bins": len(bins), "cells": len(test), "pairs": len(bins) * len(test), "every": 3,
                               "max_pairs": cfg.test_max_pairs, "score_dtype": "float16"}
    truth, fraction = ds.labels[np.ix_(bins, test)], task.mean_access[bins]
    dense = {"model": evaluate.pair_logits(model, task, bins, test, CPU),
             "mean_baseline": mean_baseline(ds.labels, train, test)[bins],
             "weighted_mean_baseline": weighted_mean_baseline(ds.labels, ds.expression, train, test)[bins]}
    for name, scores in dense.items():
        half = scores.astype(np.float16).astype(np.float64)
        assert_same_metrics(report["metrics"][name], evaluate_scores(truth, half, fraction))
        sk_precision, sk_recall, _ = precision_recall_curve(truth.ravel(), half.ravel())
        np.testing.assert_allclose(report["curves"][name][0], sk_precision, rtol=1e-12)
        np.testing.assert_allclose(report["curves"][name][1], sk_recall, rtol=1e-12)

    # the same through a checkpoint, as the sweep's Ray task runs it
    path = tmp_path / "best.pt"
    save_model(path, model)
    again = evaluate.evaluate_checkpoint(cfg.to_dict(), str(path))
    assert again["metrics"]["model"]["auprc"] == report["metrics"]["model"]["auprc"]


def test_test_bins_stay_within_the_pair_budget(data_file):
    cfg = TrainConfig(data=data_file, stage=2, init="x", test_max_pairs=100, **FAST)
    task = FoldTask.from_config(cfg)
    bins, every = evaluate.test_bins(task, cfg)
    assert len(bins) * len(task.fold.test) <= 100 < len(task.bins.test[::every - 1]) * len(task.fold.test)
    assert np.array_equal(bins, task.bins.test[::every])
    assert evaluate.test_bins(task, replace(cfg, test_every=1))[1] == 1


# -- the settings on the command line ----------------------------------------------------------------
def test_sweep_flags_set_the_bounded_evaluation(tmp_path, monkeypatch):
    from chromtune.cli.sweep import build_parser, settings_from_args
    from chromtune.errors import UserError
    from chromtune.sweep.plan import plan_sweep

    monkeypatch.chdir(tmp_path)

    def plan(*flags):
        return plan_sweep(settings_from_args(build_parser().parse_args(["--arch", "basset", *flags]))[0])

    base = plan("--valid-bins", "all", "--valid-pairs", "1000", "--test-every", "5").base
    assert (base["valid_bins"], base["valid_pairs"], base["test_every"]) == (0, 1000, 5)
    assert plan().base["test_max_pairs"] == 1_000_000
    demo = plan().base  # the embedded demo's sizes unless the flags say otherwise
    assert (demo["width"], demo["valid_pairs"]) == (DEMO_WIDTH, DEMO_VALID_PAIRS)
    assert plan("--width", "0.5").base["width"] == 0.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--valid-pairs", "0"])
    with pytest.raises(UserError, match="--test-every -1"):
        plan("--test-every", "-1")
