"""Validation that can decide (chromtune.data.validation, the evaluate / loop / plan / stage paths that use it):
samples hold positives of every cell type they score, a fold that cannot is named before training,
and an undefined metric fails its trial with the reason instead of reaching Tune or Optuna."""

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from chromtune.cli.sweep import main as sweep_main
from chromtune.cli.train import main as train_main
from chromtune.data.dataset import open_dataset, write_dataset
from chromtune.data.demo import demo_path
from chromtune.data.folds import BinRanges
from chromtune.data import validation
from chromtune.data.validation import GROW_POSITIVES, check_held_out, grow_sample, positive_bins, positives
from chromtune.errors import UserError, run_cli
from chromtune.sweep.plan import plan_sweep
from chromtune.sweep.settings import SweepSettings
from chromtune.train import evaluate
from chromtune.train.config import TrainConfig, size_defaults
from chromtune.train.loop import FolderSession, run_loop
from chromtune.train.metrics import StreamingMetrics, evaluate_scores, skipped_text
from chromtune.train.task import FoldTask
from conftest import assert_one_line_error, random_dataset, sweep_ray

FAST = dict(arch="basset", width=0.125, folds=3, epochs=1, samples_per_epoch=32, batch_size=16)
# sha256 of every demo fold's stage-1 and stage-2 validation bins and cell types (seed 0, the demo's
# default sizes), computed by the code before samples could grow (main at 1ae31f1): the demo's
# samples, and so its results, are unchanged by the growth.
DEMO_SAMPLES = "6d7aa11d0bd036f8d59ebb6690c18f8bfd7f4851e5be6c22b2ad7b8f4e574596"


def write(tmp_path, ds, name="data.h5") -> str:
    path = tmp_path / name
    write_dataset(path, ds)
    return str(path)


def test_demo_samples_are_the_draw_of_before(tmp_path):
    path = str(demo_path(tmp_path / "cache"))
    digest, grown = hashlib.sha256(), []
    for fold in range(5):
        for stage in (1, 2):
            cfg = TrainConfig(data=path, fold=fold, stage=stage, init="x" if stage == 2 else None,
                              valid_pairs=size_defaults(on_demo=True)["valid_pairs"])
            bins, cells, added = evaluate.validation_sample(FoldTask.from_config(cfg), cfg)
            digest.update(bins.tobytes())
            digest.update(cells.tobytes())
            grown.append(added)
    assert grown == [{}] * 10
    assert digest.hexdigest() == DEMO_SAMPLES


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("every", [1, 2])
def test_counts_and_positive_bins_read_ranges_column_wise(tmp_path, packed, every, monkeypatch):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 16)  # blocks that split runs
    ds = random_dataset(n_cells=11, chrom_len=8_000, positive_rate=0.1, seed=3)
    dense = np.asarray(ds.labels)
    labels = open_dataset(write(tmp_path, ds)).labels if packed else dense
    bins = BinRanges(np.array([3, 50, 200]), np.array([20, 120, 230]), every=every)
    rows, cells = np.asarray(bins), np.array([0, 4, 10])
    np.testing.assert_array_equal(positives(labels, bins, cells), dense[np.ix_(rows, cells)].sum(0))
    found = positive_bins(labels, bins, cells)
    assert len(found) == 3
    for cell, got in zip(cells, found):
        assert len(got) and np.array_equal(got, rows[dense[rows, cell] == 1])


def sparse_cell_file(tmp_path, n_positive: int) -> tuple[str, int, np.ndarray, FoldTask, TrainConfig]:
    """A data set whose training cell type ``cell`` is positive only at ``n_positive`` held-out bins that
    the stage-1 draw of 30 bins leaves out; returns (path, cell, the draw, its task, its config)."""
    ds = random_dataset(n_cells=12, chrom_len=40_000, positive_rate=0.15)
    path = write(tmp_path, ds, "base.h5")
    cfg = TrainConfig(data=path, stage=1, valid_bins=30, **FAST)
    task = FoldTask.from_config(cfg)
    drawn = evaluate.validation_sample(task, cfg)[0]
    outside = np.setdiff1d(np.asarray(task.bins.valid), drawn)
    cell = task.fold.train[0]
    labels = np.asarray(ds.labels).copy()
    labels[:, cell] = 0
    labels[outside[:n_positive], cell] = 1
    ds.labels = labels
    path = write(tmp_path, ds, f"sparse{n_positive}.h5")
    cfg = TrainConfig(data=path, stage=1, valid_bins=30, **FAST)
    return path, cell, drawn, FoldTask.from_config(cfg), cfg


@pytest.mark.parametrize("n_positive", [3, 40])
def test_a_sample_without_positives_of_a_task_grows_within_the_bound(tmp_path, n_positive):
    path, cell, drawn, task, cfg = sparse_cell_file(tmp_path, n_positive)
    labels = task.dataset.labels
    assert positives(labels, drawn, [cell])[0] == 0  # the draw alone would leave the task without a positive
    bins, cells, added = evaluate.validation_sample(task, cfg)
    want = min(n_positive, GROW_POSITIVES)
    assert added == {cell: want}
    assert len(bins) == len(drawn) + want and np.isin(drawn, bins).all() and np.all(np.diff(bins) > 0)
    assert np.isin(bins, task.bins.valid).all()
    assert positives(labels, bins, [cell])[0] == want
    assert positives(labels, bins, cells).min() > 0
    assert np.array_equal(evaluate.validation_sample(task, cfg)[0], bins)  # grown the same way every time
    assert f"+{want}" in evaluate.growth_text(task, cfg, bins, added)


def test_grow_sample_leaves_a_sample_with_positives_alone():
    labels = np.zeros((100, 3), np.uint8)
    labels[[5, 50, 70], [0, 1, 2]] = 1
    sample = np.array([5, 50, 70, 80])
    bins, added = grow_sample(labels, sample, np.arange(100), np.arange(3), np.random.default_rng(0))
    assert bins is sample and added == {}
    labels[[10, 20], 2] = 1
    bins, added = grow_sample(labels, np.array([5, 50, 80]), np.arange(100), np.arange(3), np.random.default_rng(0))
    assert added == {2: 3} and bins.tolist() == [5, 10, 20, 50, 70, 80]


def test_a_task_without_held_out_positives_is_a_warning_none_left_an_error(tmp_path):
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    cfg = TrainConfig(data=write(tmp_path, ds), stage=1, **FAST)
    task = FoldTask.from_config(cfg)
    held_out = np.asarray(task.bins.valid)
    labels = np.asarray(ds.labels).copy()
    first = task.fold.train[0]
    labels[held_out, first] = 0
    ds.labels = labels
    (line,) = check_held_out(ds, [task.fold], task.bins, stages=(1,))
    assert line.startswith("fold 0 stage 1: training cell type(s) cell") and ds.cell_types[first] in line
    assert f"the other {len(task.fold.train) - 1} tasks" in line and "no positive" in line
    labels[held_out] = 0
    with pytest.raises(UserError, match="fold 0 stage 1: training cell type.*no positive in the .* held-out"):
        check_held_out(ds, [task.fold], task.bins, stages=(1,))


def test_train_stops_before_training_when_no_task_can_be_validated(tmp_path, capsys):
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    cfg = TrainConfig(data=write(tmp_path, ds, "good.h5"), stage=1, **FAST)
    labels = np.asarray(ds.labels).copy()
    labels[np.asarray(FoldTask.from_config(cfg).bins.valid)] = 0
    ds.labels = labels
    data = write(tmp_path, ds, "bad.h5")
    code = run_cli(train_main, ["--data", data, "--folds", "3", "--arch", "basset", "--width", "0.125",
                                "--workers", "0", "--out", str(tmp_path / "run")])
    assert_one_line_error(code, capsys.readouterr().err, "fold 0 stage 1", "no positive", "held-out blocks")
    assert not (tmp_path / "run").exists()


def test_sweep_names_a_validation_cell_type_without_positives_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    fold = plan_sweep(SweepSettings(arch="basset", data=write(tmp_path, ds, "good.h5"), folds=3, storage="r")).folds[1]
    empty = fold.valid[0]
    labels = np.asarray(ds.labels).copy()
    labels[:, empty] = 0
    ds.labels = labels
    code = run_cli(sweep_main, ["--data", write(tmp_path, ds, "bad.h5"), "--arch", "basset", "--folds", "3",
                                "--smoke-test", "--storage", "r"])
    assert_one_line_error(code, capsys.readouterr().err, "fold 1 stage 2", f"validation cell type(s) {ds.cell_types[empty]} ",
                          "no positive", "off the test chromosomes")
    assert not (tmp_path / "r").exists() and not (tmp_path / "mlflow.db").exists()  # nothing began


def test_a_run_whose_metric_is_undefined_fails_before_training(tmp_path):
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    cfg = TrainConfig(data=write(tmp_path, ds, "good.h5"), stage=1, **FAST)
    labels = np.asarray(ds.labels).copy()
    labels[np.asarray(FoldTask.from_config(cfg).bins.valid)] = 0
    ds.labels = labels
    cfg = TrainConfig(data=write(tmp_path, ds, "bad.h5"), stage=1, **FAST)
    session = FolderSession(tmp_path / "run")
    with pytest.raises(evaluate.UndefinedMetric, match="fold 0 stage 1: the validation metric is undefined: no task"):
        run_loop(cfg, session)
    assert session.checkpoint_dir() is None  # nothing reported


def test_non_finite_scores_fail_with_the_reason(tmp_path):
    cfg = TrainConfig(data=write(tmp_path, random_dataset(n_cells=12, chrom_len=12_000)), stage=1, **FAST)
    task = FoldTask.from_config(cfg)

    class Diverged(torch.nn.Module):
        config = {"n_tasks": len(task.fold.train)}

        def forward(self, x):
            return torch.full((len(x), self.config["n_tasks"]), math.nan)

    with pytest.raises(evaluate.UndefinedMetric, match="not finite .*lower --lr"):
        evaluate.validation_metrics(Diverged(), task, cfg, torch.device("cpu"))


def test_per_cell_means_skip_cell_types_without_positives_and_count_them():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 4)) < 0.2).astype(np.uint8)
    labels[:, 2] = 0
    scores = rng.normal(size=labels.shape) + labels
    stream = StreamingMetrics(4)
    stream.add(labels, scores, rng.random(400))
    for result in (evaluate_scores(labels, scores), stream.result()):
        per = result["per_cell"]["auprc"]
        assert result["n_cells_skipped"] == 1 and math.isnan(per[2])
        assert result["auprc_mean_per_cell"] == pytest.approx(np.mean([per[0], per[1], per[3]]), rel=1e-6)
        assert not math.isnan(result["auroc_mean_per_cell"])
        assert skipped_text(result, ["a", "b", "c", "d"]).startswith("1 of 4 cell type(s) have no positive")
        assert skipped_text(result, ["a", "b", "c", "d"]).endswith("(c)")
    labels[:, 2] = 1
    assert evaluate_scores(labels, scores)["n_cells_skipped"] == 1
    labels[0, 2] = 0
    assert evaluate_scores(labels, scores)["n_cells_skipped"] == 0


def test_train_says_which_test_cell_types_were_skipped(tmp_path, capsys):
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    cfg = TrainConfig(data=write(tmp_path, ds, "good.h5"), stage=1, **FAST)
    empty = FoldTask.from_config(cfg).fold.test[0]
    labels = np.asarray(ds.labels).copy()
    labels[:, empty] = 0
    ds.labels = labels
    data = write(tmp_path, ds, "bad.h5")
    common = ["--data", data, "--folds", "3", "--workers", "0", "--epochs", "1", "--samples-per-epoch", "32",
              "--batch-size", "16"]
    assert run_cli(train_main, [*common, "--arch", "basset", "--width", "0.125", "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    code = run_cli(train_main, [*common, "--stage", "2", "--init", str(tmp_path / "one"), "--evaluate-test",
                                "--out", str(tmp_path / "two")])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["test_cells_skipped"] == 1
    (line,) = [line for line in err.splitlines() if "left out of the per-cell-type means" in line]
    assert line.startswith("chromtune: warning: test: 1 of") and line.endswith(f"({ds.cell_types[empty]})")


@pytest.fixture
def local_ray():
    yield from sweep_ray()


@pytest.mark.slow
def test_a_stage_whose_trials_have_no_defined_metric_stops_in_one_line(tmp_path, capfd, monkeypatch, local_ray):
    """Real Tune stages (the smoke space's two trials, Tune's retries, ASHA and Optuna), two folds at
    once in processes of their own, on a data set whose held-out blocks hold no positive at all. The
    plan would refuse it, so the plan is made on a good data set and the folds then given the bad
    one: each trial fails before training with the reason, each fold's stage 1 stops instead of
    selecting -inf, and the driver says both in one line."""
    from chromtune.sweep.driver import run_folds
    from chromtune.sweep.progress import Progress
    from chromtune.tracking import Tracker, prepare_store

    monkeypatch.chdir(tmp_path)
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    plan = plan_sweep(SweepSettings(arch="basset", data=write(tmp_path, ds, "good.h5"), folds=2, smoke_test=True,
                                    storage="r", max_concurrent_trials=1, concurrent_folds=2))
    labels = np.asarray(ds.labels).copy()
    labels[np.asarray(FoldTask.from_config(TrainConfig(**plan.base)).bins.valid)] = 0
    ds.labels = labels
    plan.base["data"] = write(tmp_path, ds, "bad.h5")
    prepare_store(plan.tracking_uri)
    plan.storage.fs.create_dir(plan.storage.root, recursive=True)
    sweep_run = Tracker(plan.tracking_uri, plan.experiment, plan.key).hierarchy_run(
        plan.key, "sweep", None, {"chromtune.level": "sweep"})
    progress = Progress(2, {stage: space.num_samples for stage, space in plan.spaces.items()}, plan.label)
    capfd.readouterr()

    def main(_argv):
        with progress:
            run_folds(plan, sweep_run, progress)
    code = run_cli(main, [])
    out, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("chromtune: error:")]
    assert code == 2 and len(errors) == 1, err
    parts = errors[0].removeprefix("chromtune: error: ").split("; ")
    assert len(parts) == 2, errors[0]
    for fold, part in enumerate(parts):
        assert part.startswith(f"fold {fold} stage 1: no trial to select (2 of 2 trials failed): the validation "
                               "metric is undefined: no task"), part
        assert not plan.storage.exists(f"fold{fold}-stage1.json")  # nothing selected
    for text in ("RuntimeWarning", "is not acceptable", "-inf", "selected", "Traceback"):
        assert text not in out + err, text


def test_the_per_fraction_tables_leave_out_cell_types_without_positives_streamed_or_not():
    rng = np.random.default_rng(1)
    labels = (rng.random((600, 5)) < 0.3).astype(np.uint8)
    labels[:, 3] = 0
    scores = rng.normal(size=labels.shape) + labels
    fraction = rng.integers(0, 11, 600) / 10
    stream = StreamingMetrics(5, skip=[3])
    for start in range(0, 600, 128):
        stream.add(labels[start:start + 128], scores[start:start + 128], fraction[start:start + 128])
    without = evaluate_scores(np.delete(labels, 3, axis=1), np.delete(scores, 3, axis=1), fraction)
    for result in (evaluate_scores(labels, scores, fraction), stream.result()):
        assert result["n_cells_skipped"] == 1 and result["n_specific"] == without["n_specific"]
        assert result["auprc_specific"] == pytest.approx(without["auprc_specific"], abs=2e-3)  # float16 scores
        assert [b["n_pairs"] for b in result["binned"]] == [b["n_pairs"] for b in without["binned"]]
        got, want = [b["auprc"] for b in result["binned"]], [b["auprc"] for b in without["binned"]]
        assert len(got) == 10 and got == pytest.approx(want, abs=5e-3, nan_ok=True)


def test_a_stage_2_sample_grows_with_positives_of_a_validation_cell_type(tmp_path):
    ds = random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.15)
    cfg = TrainConfig(data=write(tmp_path, ds, "good.h5"), stage=2, init="x", valid_pairs=60, **FAST)
    task = FoldTask.from_config(cfg)
    drawn = evaluate.validation_sample(task, cfg)[0]
    cell = task.fold.valid[0]
    outside = np.setdiff1d(np.asarray(task.bins.fit), drawn)
    labels = np.asarray(ds.labels).copy()
    labels[:, cell] = 0
    labels[outside[::7][:GROW_POSITIVES + 5], cell] = 1
    ds.labels = labels
    cfg = TrainConfig(data=write(tmp_path, ds, "sparse.h5"), stage=2, init="x", valid_pairs=60, **FAST)
    task = FoldTask.from_config(cfg)
    bins, cells, added = evaluate.validation_sample(task, cfg)
    assert added == {cell: GROW_POSITIVES} and len(bins) == len(drawn) + GROW_POSITIVES
    assert np.isin(drawn, bins).all() and np.isin(bins, task.bins.fit).all()
    assert positives(task.dataset.labels, bins, cells).min() > 0


def test_tunes_report_of_a_trial_failed_by_a_user_error_is_one_line():
    import logging

    from chromtune.sweep.signals import quiet_libraries

    quiet_libraries()
    logger = logging.getLogger("ray.tune.execution.tune_controller")  # Ray's loggers do not propagate
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        for cause in (evaluate.UndefinedMetric("fold 0 stage 1: the validation metric is undefined"),
                      ValueError("bug")):
            try:
                raise RuntimeError("the trial's task failed") from cause
            except RuntimeError as err:
                logger.error("Trial task failed for trial t1", exc_info=err)
    finally:
        logger.removeHandler(handler)
    user, other = records
    assert user.getMessage() == ("Trial task failed for trial t1: fold 0 stage 1: the validation metric is "
                                 "undefined") and user.exc_info is None
    assert other.getMessage() == "Trial task failed for trial t1" and other.exc_info[1].__cause__.args == ("bug",)
