"""Training: resume, leakage, bad input (fast, in-process); end to end through TorchTrainer (slow)."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from chromtune.data.dataset import write_dataset
from chromtune import progress as progress_module
from chromtune.data import sampling
from chromtune.errors import run_cli
from chromtune.cli.train import main as train_main
from chromtune.train.config import TrainConfig
from chromtune.train.runner import run_training
from chromtune.train.task import FoldTask
from conftest import random_dataset

FAST = dict(arch="basset", width=0.125, folds=3, epochs=2, samples_per_epoch=48, batch_size=16, eval_every=2)
TIMING = ("train_time_s", "valid_time_s", "samples_per_s", "overhead_fraction", "step_time_s")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rand.h5"
    write_dataset(path, random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.1))
    return str(path)


@pytest.fixture(scope="module")
def stage1_run(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1")
    run_training(TrainConfig(data=data_file, stage=1, **FAST), out, workers=0)
    return out


def _history(metrics):
    return [{k: v for k, v in epoch.items() if k not in TIMING} for epoch in metrics["history"]]


def test_stage1_writes_run_folder(stage1_run):
    metrics = json.loads((stage1_run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert 0 < metrics["best_valid_auprc"] <= 1
    assert (stage1_run / "best.pt").is_file() and (stage1_run / "split.tsv").is_file()
    assert set(metrics["split"]) == {"train", "valid", "test"}


@pytest.mark.parametrize("paradigm", ["tune", "freeze"])
def test_stage2_reports_model_and_both_baselines(data_file, stage1_run, tmp_path, paradigm):
    cfg = TrainConfig(data=data_file, stage=2, init=str(stage1_run), paradigm=paradigm, evaluate_test=True, **FAST)
    metrics = run_training(cfg, tmp_path, workers=0)
    for name in ("model", "mean_baseline", "weighted_mean_baseline"):
        assert 0 < metrics["test"][name]["auprc"] <= 1
        assert 0 < metrics["test"][name]["auroc"] <= 1
    assert (tmp_path / "pr_curves.png").stat().st_size > 1000


def test_an_epoch_checkpoint_loads_like_the_finished_run(data_file, stage1_run, tmp_path):
    """A stopped run leaves only OUT/ray/train/epoch_N/: its best.pt holds what predict and interpret need (genes,
    expression transform, cell types, data, fold), the same as the run's best.pt."""
    import torch

    from chromtune.predict.loading import load_one

    run_training(TrainConfig(data=data_file, stage=2, init=str(stage1_run), **FAST), tmp_path, workers=0)
    epochs = sorted((tmp_path / "ray" / "train").glob("epoch_*/best.pt"))
    assert [p.parent.name for p in epochs] == ["epoch_0002"]
    model, meta = load_one(str(epochs[0]))
    final_model, final = load_one(str(tmp_path))
    for key in ("genes", "expression_transform", "cell_types", "train_cells", "data", "fold", "test_chroms", "epoch"):
        assert meta[key] == final[key], key
    assert len(meta["genes"]) == model.config["n_genes"] and meta["data"] == data_file
    for name, tensor in final_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_resume_continues_to_the_same_result(data_file, tmp_path):
    cfg = TrainConfig(data=data_file, stage=1, **{**FAST, "epochs": 3})
    whole = run_training(cfg, tmp_path / "whole", workers=0)
    run_training(replace(cfg, epochs=1), tmp_path / "cut", workers=0)
    resumed = run_training(cfg, tmp_path / "cut", workers=0, resume=True)
    assert _history(resumed) == _history(whole)
    assert resumed["best_valid_auprc"] == whole["best_valid_auprc"]


def test_same_seed_same_numbers(data_file, tmp_path):
    cfg = TrainConfig(data=data_file, stage=1, **FAST)
    a = run_training(cfg, tmp_path / "a", workers=0)
    b = run_training(cfg, tmp_path / "b", workers=0)
    c = run_training(replace(cfg, seed=1), tmp_path / "c", workers=0)
    assert _history(a) == _history(b)
    assert _history(a) != _history(c)


@pytest.mark.parametrize("pairs_per_bin", [1, 3])
def test_no_leakage_into_training(data_file, stage1_run, tmp_path, monkeypatch, pairs_per_bin):
    """Training batches hold only training cell types and bins outside the guarded validation
    blocks; flipping every held-out label changes nothing that training sees (independent pairs, and
    pairs grouped by bin)."""
    seen = []
    for cls in (sampling.Stage1Sampler, sampling.Stage2Sampler):
        original = cls.batch

        def record(self, epoch, step, _original=original):
            out = _original(self, epoch, step)
            seen.append((out[0], out[1] if len(out) == 3 else None, self.cells if hasattr(self, "cells") else None))
            return out
        monkeypatch.setattr(cls, "batch", record)

    stage1 = TrainConfig(data=data_file, stage=1, **FAST)
    task = FoldTask.from_config(stage1)
    run_training(stage1, tmp_path / "s1", workers=0)
    stage2 = TrainConfig(data=data_file, stage=2, init=str(stage1_run), pairs_per_bin=pairs_per_bin, **FAST)
    clean = run_training(stage2, tmp_path / "s2", workers=0)

    held_out = set(task.fold.valid) | set(task.fold.test)
    guard = task.dataset.context // task.dataset.stride
    valid = task.bins.valid
    for bins, cells, _ in seen:
        assert not np.isin(bins, valid).any()
        distance = np.abs(bins[:, None] - valid[None, :]).min(1)
        same_chrom = task.dataset.bin_chrom[bins] == task.dataset.bin_chrom[valid[np.abs(bins[:, None] - valid[None, :]).argmin(1)]]
        assert not ((distance <= guard) & same_chrom).any()
        if cells is not None:
            assert not held_out & set(cells.tolist())

    # Poison every held-out label column: stage-2 training (batches, mean feature, loss) is unchanged.
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.1)
    cols = sorted(held_out)
    ds.labels[:, cols] = 1 - ds.labels[:, cols]
    poisoned_file = tmp_path / "poisoned.h5"
    write_dataset(poisoned_file, ds)
    poisoned_task = FoldTask.from_config(replace(stage2, data=str(poisoned_file)))
    assert np.array_equal(poisoned_task.mean_access, task.mean_access)
    poisoned = run_training(replace(stage2, data=str(poisoned_file)), tmp_path / "s2p", workers=0)
    assert [h["train_loss"] for h in poisoned["history"]] == [h["train_loss"] for h in clean["history"]]


def test_stage2_scores_the_test_cell_types_only_when_asked(data_file, stage1_run, tmp_path, capsys):
    """Without --evaluate-test a stage-2 run says the test was not scored; with it, it scores it."""
    common = ["--data", data_file, "--folds", "3", "--arch", "basset", "--width", "0.125", "--epochs", "1",
              "--samples-per-epoch", "32", "--batch-size", "16", "--eval-every", "2", "--workers", "0",
              "--stage", "2", "--init", str(stage1_run)]
    code, _ = _cli(capsys, *common, "--out", str(tmp_path / "plain"))
    metrics = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert code == 0 and "test" not in metrics and metrics["test_evaluated"] is False
    assert "--evaluate-test" in metrics["test_note"]
    assert not (tmp_path / "plain" / "pr_curves.png").exists()
    code, _ = _cli(capsys, *common, "--evaluate-test", "--out", str(tmp_path / "scored"))
    metrics = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert code == 0 and metrics["test_evaluated"] is True and 0 < metrics["test"]["model"]["auprc"] <= 1
    assert "auprc_specific" in metrics["test"]["model"]


def _cli(capsys, *argv):
    code = run_cli(train_main, list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def test_bad_init_fold_and_gpu(data_file, stage1_run, tmp_path, capsys):
    common = ["--data", data_file, "--folds", "3", "--width", "0.125", "--out", str(tmp_path / "x")]
    code, err = _cli(capsys, *common, "--stage", "2", "--arch", "resnet", "--init", str(stage1_run))
    assert code == 2 and len(err) == 1 and "--init" in err[0] and "resnet" in err[0]
    code, err = _cli(capsys, *common, "--stage", "2", "--arch", "basset", "--init", data_file)
    assert code == 2 and len(err) == 1 and "--init" in err[0]
    code, err = _cli(capsys, *common, "--stage", "2", "--arch", "basset", "--init", str(tmp_path / "s1" / "best.pt"))
    assert code == 2 and len(err) == 1 and "--init" in err[0]
    code, err = _cli(capsys, *common, "--fold", "3")
    assert code == 2 and len(err) == 1 and "--fold 3" in err[0]
    code, err = _cli(capsys, *common, "--gpu")
    assert code == 2 and len(err) == 1 and "--gpu" in err[0]
    code, err = _cli(capsys, *common, "--arch", "alexnet")
    assert code == 2 and "basset" in err[0]
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_rerun_into_used_folder_needs_resume(data_file, stage1_run, capsys):
    code, err = _cli(capsys, "--data", data_file, "--folds", "3", "--width", "0.125", "--arch", "basset",
                     "--workers", "0", "--out", str(stage1_run))
    assert code == 2 and "--resume" in err[0]
    assert json.loads((stage1_run / "metrics.json").read_text())["history"]


def test_held_out_chromosomes_any_names(tmp_path):
    """--test-chroms: whole chromosomes (here chrX and chrY) stay out of both stages' training and
    the test cell types are scored on them only."""
    ds = random_dataset(n_chroms=4, n_cells=12, chrom_len=12_000, positive_rate=0.1)
    ds.chromosomes = ["chr1", "chr2", "chrX", "chrY"]
    ds.genome = dict(zip(ds.chromosomes, ds.genome.values()))
    path = tmp_path / "xy.h5"
    write_dataset(path, ds)
    fast = {**FAST, "eval_every": 1}
    s1 = run_training(TrainConfig(data=str(path), stage=1, test_chroms=["chrX", "chrY"], **fast), tmp_path / "s1",
                      workers=0)
    s2 = run_training(TrainConfig(data=str(path), stage=2, init=str(tmp_path / "s1"), test_chroms=["chrX", "chrY"],
                                  evaluate_test=True, **fast), tmp_path / "s2", workers=0)
    on_xy = int((ds.bin_chrom >= 2).sum())
    assert s1["n_bins"]["test"] == s2["n_bins"]["test"] == on_xy
    assert s1["n_bins"]["train"] + s1["n_bins"]["valid"] <= ds.n_bins - on_xy
    assert 0 < s2["test"]["model"]["auprc"] <= 1


def test_relative_paths_reach_ray_absolute(data_file, stage1_run, tmp_path, monkeypatch, capsys):
    """Ray's workers run in another folder: --data, --init and --out are resolved against the caller's."""
    import os

    import chromtune.train.runner as runner
    seen = {}

    def fake_run_training(cfg, out, *args, **kwargs):
        seen.update(cfg=cfg, out=out)
        return {"best_valid_auprc": 0.5}
    monkeypatch.setattr(runner, "run_training", fake_run_training)
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, "--data", os.path.relpath(data_file), "--folds", "3", "--stage", "2", "--workers", "0",
                     "--init", os.path.relpath(stage1_run), "--out", "runs/s2")
    assert code == 0, err
    assert seen["cfg"].data == data_file and seen["cfg"].init == str(stage1_run)
    assert str(seen["out"]) == str(tmp_path / "runs" / "s2")
    # stage 2 took the architecture and width from --init: none was given
    assert (seen["cfg"].arch, seen["cfg"].width) == (FAST["arch"], FAST["width"])


@pytest.mark.parametrize("flags,fragment", [
    (["--fold", "1"], "other cell types"),
    (["--seed", "1"], "other cell types"),
    (["--folds", "4"], "other cell types"),
    (["--test-chroms", "chr1"], "held out chromosomes"),
    (["--width", "0.25"], "--width 0.25"),
])
def test_stage2_refuses_an_init_of_another_fold(data_file, stage1_run, tmp_path, capsys, flags, fragment):
    """A stage-1 trunk trained on this fold's test cell types (or its held-out chromosomes) would leak."""
    folds = [] if "--folds" in flags else ["--folds", "3"]
    code, err = _cli(capsys, "--data", data_file, *folds, "--stage", "2", "--workers", "0",
                     "--init", str(stage1_run), "--out", str(tmp_path / "s2"), *flags)
    assert code == 2 and len(err) == 1 and "--" in err[0] and fragment in err[0], err
    assert not (tmp_path / "s2").exists()


def test_out_is_checked_before_training(data_file, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = _cli(capsys, "--data", data_file, "--workers", "0", "--out", str(tmp_path / "file" / "run"))
    assert code == 2 and len(err) == 1 and "--out" in err[0] and "which is a file" in err[0]


def test_a_user_error_raised_in_a_ray_worker_is_one_line(capsys):
    """Ray wraps a worker's exception (RayTaskError, Train's WorkerGroupError); the cause is shown."""
    import ray

    from chromtune.errors import UserError, user_error_in
    from chromtune.sweep.ray_runtime import start_ray

    started = not ray.is_initialized()
    start_ray()
    try:
        @ray.remote
        def fails():
            raise UserError("--data x.h5: no such file")
        with pytest.raises(Exception) as caught:
            ray.get(fails.remote())
    finally:
        if started:
            ray.shutdown()

    def main(_argv):
        try:
            raise caught.value
        except Exception as err:
            raise RuntimeError("training failed") from err
    assert str(user_error_in(caught.value)) == "--data x.h5: no such file"
    code = run_cli(main, [])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["chromtune: error: --data x.h5: no such file"]


def test_progress_in_a_pipe_is_a_plain_line_every_30_s_and_at_the_end(data_file, tmp_path, capsys, monkeypatch):
    """Piped (a log), ``train`` prints its line on stderr 5 s after it starts (here at once), every 30 s
    and at the end; stdout keeps only the summary."""
    monkeypatch.setattr(progress_module, "FIRST_LINE_AFTER", 0.0)
    code = run_cli(train_main, ["--data", data_file, "--folds", "3", "--arch", "basset", "--width", "0.125",
                                "--epochs", "2", "--samples-per-epoch", "48", "--batch-size", "16", "--eval-every", "2",
                                "--workers", "0", "--out", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = err.splitlines()
    assert lines and all(line.startswith("train stage 1 fold 0 | ") for line in lines)
    assert len(lines) == 2 and lines[0].endswith(" | starting")  # the command began: its first line
    assert re.fullmatch(r"train stage 1 fold 0 \| \d:\d\d \| finished \| 6/6 batches \| (?:[\d.]+ batches/s|[\d.,]+ s each)", lines[-1])
    assert "\r" not in err and json.loads(out)["best_valid_auprc"] > 0


def test_a_stop_while_an_epoch_checkpoint_is_copied_leaves_no_half_copied_folder(tmp_path, monkeypatch):
    from chromtune.train import loop

    source = tmp_path / "epoch"
    source.mkdir()
    (source / "state.pt").write_bytes(b"x")

    def stopped(src, dst):
        (Path(dst) / "half").mkdir(parents=True)
        raise KeyboardInterrupt
    monkeypatch.setattr(loop.shutil, "copytree", stopped)
    session = loop.FolderSession(tmp_path / "storage")
    with pytest.raises(KeyboardInterrupt):
        session.report({}, source, "epoch_0001")
    assert list((tmp_path / "storage").iterdir()) == []
