"""The trial logger against a real sqlite MLflow store: one FINISHED run per finished trial, also
when a driver died between Tune's record of a trial and MLflow's. Tune's trials and results are
stood in for by plain objects (this tests the logger, not Tune)."""

from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from chromtune.sweep.trial_logger import TrialLogger, short_value, trial_label
from chromtune.tracking import Tracker

pytestmark = pytest.mark.tracking


def trial_runs(uri: str) -> dict[str, list]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("exp")
    runs = {}
    for run in client.search_runs([experiment.experiment_id], "tags.`chromtune.level` = 'trial'"):
        runs.setdefault(run.data.tags["chromtune.trial_id"], []).append(run)
    return runs


def result(trial_id, epochs, error=None):
    history = pd.DataFrame({"epoch": list(range(1, epochs + 1)), "valid_auprc": [0.1 * e for e in range(1, epochs + 1)],
                            "trial_id": trial_id})
    return SimpleNamespace(error=error, metrics=history.iloc[-1].to_dict(), metrics_dataframe=history,
                           config={"lr": 0.01, "batch_size": 32, "runtime_workers": 0})


def test_a_trial_finished_in_tune_but_killed_in_mlflow_gets_one_finished_run(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "exp", "sweep-key")
    stage = tracker.hierarchy_run("sweep-key/fold0-stage1", "stage", None, {"chromtune.level": "stage"})
    logger = TrialLogger(uri, "exp", "sweep-key", stage, {"fold": 0, "stage": 1}, ["lr", "batch_size"], "f0s1", 3)
    trials = {name: SimpleNamespace(trial_id=name, config={"lr": 0.01, "batch_size": 32}, last_result={})
              for name in ("logged", "killed")}
    for trial in trials.values():
        logger.on_trial_start(0, [], trial)
    logger.on_trial_result(0, [], trials["logged"], {"epoch": 1, "valid_auprc": 0.5})
    logger.on_trial_complete(0, [], trials["logged"])
    assert tracker.kill_orphans() == 1  # the driver died while "killed" ran; a resumed sweep marks it

    results = [result("logged", 1), result("killed", 2), result("errored", 1, error=RuntimeError("x"))]
    assert logger.record_unlogged(results) == 1
    assert logger.record_unlogged(results) == 0  # idempotent

    runs = trial_runs(uri)
    assert set(runs) == {"logged", "killed"}
    assert [r.info.status for r in runs["logged"]] == ["FINISHED"]
    assert [r.info.status for r in runs["killed"]] == ["FINISHED"]  # its KILLED run, reopened and finished
    recorded = runs["killed"][0]
    history = MlflowClient(uri).get_metric_history(recorded.info.run_id, "valid_auprc")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.1), (2, 0.2)]
    assert recorded.data.params == {"lr": "0.01", "batch_size": "32"}
    assert recorded.data.tags["mlflow.parentRunId"] == stage and recorded.data.tags["fold"] == "0"
    assert recorded.info.run_name == "f0s1 lr0.01 bs32"  # its searched parameters, not Tune's id


def test_run_names_show_parameters_short():
    assert trial_label({"batch_size": 128, "lr": 0.002}) == "bs128 lr2e-3"
    assert [short_value(v) for v in (0.25, 1e-4, 0.00125, 200_000, 3.0)] == ["0.25", "1e-4", "1.25e-3", "200000", "3"]


def test_a_resumed_trial_continues_its_run_and_logs_each_epoch_once(tmp_path):
    """A driver stopped after a trial's epoch 1; the resumed trial reports epoch 1 again (it restarts
    from that epoch's checkpoint or before) and then epoch 2: one run, one value per epoch."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "exp", "sweep-key")
    stage = tracker.hierarchy_run("sweep-key/fold0-stage1", "stage", None, {"chromtune.level": "stage"})
    trial = SimpleNamespace(trial_id="t1", config={"lr": 0.01, "batch_size": 32}, last_result={})
    first = TrialLogger(uri, "exp", "sweep-key", stage, {"fold": 0, "stage": 1}, ["lr"], "f0s1", 1)
    first.on_trial_result(0, [], trial, {"epoch": 1, "valid_auprc": 0.1})
    assert tracker.kill_orphans(parent=stage) == 1

    resumed = TrialLogger(uri, "exp", "sweep-key", stage, {"fold": 0, "stage": 1}, ["lr"], "f0s1", 1)
    for epoch in (1, 2):
        resumed.on_trial_result(0, [], trial, {"epoch": epoch, "valid_auprc": 0.1 * epoch})
    trial.last_result = {"best_valid_auprc": 0.2}
    resumed.on_trial_complete(0, [], trial)
    (run,) = trial_runs(uri)["t1"]
    history = MlflowClient(uri).get_metric_history(run.info.run_id, "valid_auprc")
    assert run.info.status == "FINISHED" and [(m.step, round(m.value, 6)) for m in history] == [(1, 0.1), (2, 0.2)]
    assert tracker.delete_trials(stage, status="KILLED") == 0


def test_sweeps_started_together_create_one_store(tmp_path):
    """Several drivers creating one sqlite store at once: all succeed (MLflow's schema creation is
    serialised by prepare_store), and the store works."""
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = f"from chromtune.tracking import prepare_store, Tracker; prepare_store({uri!r}); Tracker({uri!r}, 'exp', 'k')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    assert MlflowClient(uri).get_experiment_by_name("exp") is not None


def test_trial_runs_hold_chromtune_metrics_and_stopped_trials_are_tagged(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "exp", "sweep-key")
    client = MlflowClient(uri)
    kind = client.get_experiment_by_name("exp").tags.get("mlflow.experimentKind")
    assert kind == "custom_model_development"  # MLflow 3's UI opens on the training runs
    stage = tracker.hierarchy_run("sweep-key/fold0-stage1", "stage", None, {"chromtune.level": "stage"})
    logger = TrialLogger(uri, "exp", "sweep-key", stage, {"fold": 0, "stage": 1}, ["lr"], "f0s1", 2)
    tune_keys = {"pid": 123, "timestamp": 1.7e9, "time_this_iter_s": 2.0, "training_iteration": 1,
                 "time_total_s": 2.0, "iterations_since_restore": 1, "hostname": "h", "trial_id": "x"}
    trials = {}
    for name, epochs in (("full", 2), ("stopped", 1)):
        trials[name] = SimpleNamespace(trial_id=name, config={"lr": 0.01, "epochs": 2}, last_result={})
        logger.on_trial_start(0, [], trials[name])
        for epoch in range(1, epochs + 1):
            metrics = {"epoch": epoch, "valid_auprc": 0.1 * epoch, "best_valid_auprc": 0.1 * epoch}
            trials[name].last_result = {**metrics, **tune_keys}
            logger.on_trial_result(0, [], trials[name], trials[name].last_result)
        logger.on_trial_complete(0, [], trials[name])
    runs = {name: r[0] for name, r in trial_runs(uri).items()}
    assert set(runs["full"].data.metrics) == {"epoch", "valid_auprc", "best_valid_auprc"}
    assert "chromtune.stopped_early" not in runs["full"].data.tags
    assert runs["stopped"].data.tags["chromtune.stopped_early"] == "true"
    assert "stopped early at epoch 1/2" in capsys.readouterr().out
    Tracker(uri, "exp", "sweep-key")  # reopening an experiment keeps its kind
    assert client.get_experiment_by_name("exp").tags["mlflow.experimentKind"] == "custom_model_development"


def test_tracking_imports_no_ray():
    """predict, variants and interpret use tracking; Ray (seconds to import) belongs to the sweep."""
    import subprocess
    import sys

    code = "import sys, chromtune.tracking; assert 'mlflow' in sys.modules; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
