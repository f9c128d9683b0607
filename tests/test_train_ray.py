"""Both stages end to end on the demo data set through Ray Train's TorchTrainer with 2 workers (DDP
on CPU, gloo). The model must beat the mean-accessibility baseline on the test cell types. (One
worker, as a sweep trial runs it, is tests/test_sweep_trial.py: it must match the in-process loop.)"""

import io

import pytest

from chromtune.data.demo import demo_path
from chromtune.progress import Progress
from chromtune.train.config import TrainConfig
from chromtune.train.runner import run_training

from conftest import sweep_ray

STAGE1 = dict(arch="basset", width=0.25, epochs=2, samples_per_epoch=60 * 128, batch_size=128, lr=2e-3)
STAGE2 = dict(arch="basset", width=0.25, epochs=2, samples_per_epoch=40 * 256, batch_size=256, lr=1e-3)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    yield from sweep_ray()


@pytest.mark.slow
def test_two_stages_through_torch_trainer_beat_the_mean_baseline(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    data = str(demo_path())
    progress = Progress("train stage 1 fold 0", stream=io.StringIO(), tick=None)
    stage1 = run_training(TrainConfig(data=data, stage=1, **STAGE1), tmp_path / "s1", workers=2, progress=progress)
    assert len(stage1["history"]) == 2
    # rank 0's batches reached this process: all 120 of both epochs, counted from the first
    assert (progress.done, progress.total, progress.phase) == (120, 120, "epoch 2/2: validating")
    assert progress.rate() > 0
    stage2 = run_training(TrainConfig(data=data, stage=2, init=str(tmp_path / "s1"), paradigm="tune",
                                      with_mean=True, evaluate_test=True, **STAGE2), tmp_path / "s2", workers=2)
    test = stage2["test"]
    assert test["model"]["auprc"] > test["mean_baseline"]["auprc"], test
