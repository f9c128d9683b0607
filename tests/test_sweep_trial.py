"""One sweep trial both ways: trained in the Tune trial's own process (``--workers-per-trial 0``,
the default) and through a Ray Train TorchTrainer (``--workers-per-trial 1``). The two run the same
loop on the same batches, so they must report the same metrics, and the stage selection must find
either one's last checkpoint."""

import pytest
from ray import tune

from chromtune.data.demo import demo_path
from chromtune.io.storage import Storage
from chromtune.sweep.stage import _checkpoint_location, _has_checkpoint, sweep_trial
from chromtune.train.loop import STATE_FILE
from chromtune.train.runner import latest_checkpoint

from conftest import sweep_ray

TINY = dict(arch="basset", width=0.125, stage=1, fold=0, folds=5, seed=0, epochs=2, samples_per_epoch=192,
            batch_size=32, lr=2e-3, eval_every=1, threads=1)


@pytest.fixture(scope="module")
def local_ray():
    yield from sweep_ray()


def run_trial(storage, workers: int):
    config = {**TINY, "data": str(demo_path()), "runtime_workers": workers, "runtime_gpus": 0, "runtime_cpus": 1,
              "runtime_max_failures": 0, "runtime_storage": storage}
    resources = {"CPU": 1} if workers == 0 else {"CPU": 0.01}  # as the sweep asks: Train's worker holds the CPU
    tuner = tune.Tuner(tune.with_resources(sweep_trial, resources), param_space=config,
                       run_config=tune.RunConfig(name=f"workers{workers}", storage_path=storage, verbose=0))
    (result,) = tuner.fit()
    assert result.error is None, result.error
    return result


@pytest.mark.slow
def test_in_process_and_torch_trainer_trials_agree(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    storage = str(tmp_path / "storage")
    in_process, trainer = run_trial(storage, 0), run_trial(storage, 1)

    for result in (in_process, trainer):
        history = result.metrics_dataframe
        assert list(history["epoch"]) == [1, 2]  # every epoch forwarded to Tune
        assert _has_checkpoint(result)
    for key in ("valid_auprc", "best_valid_auprc", "train_loss"):
        assert trainer.metrics[key] == pytest.approx(in_process.metrics[key], rel=1e-5, abs=1e-6), key

    assert in_process.checkpoint is not None and trainer.checkpoint is None  # Train keeps its own ...
    fs, path = _checkpoint_location(trainer, Storage(storage))               # ... and Tune has its path
    assert fs.get_file_info(f"{path}/{STATE_FILE}").is_file
    trial_id = trainer.metrics["trial_id"]
    newest = latest_checkpoint(Storage(storage), f"train-{trial_id}")  # where a restarted trial resumes
    assert newest is not None and newest.path.rstrip("/").endswith(path.rstrip("/").split("/")[-1])
