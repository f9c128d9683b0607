"""The trial logger against a real sqlite MLflow store: one FINISHED run per finished trial, also
when a driver died between Tune's record of a trial and MLflow's. Tune's trials and results are
stood in for by plain objects (this tests the logger, not Tune)."""

from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from chromtune.tracking import Tracker, TrialLogger

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
    assert sorted(r.info.status for r in runs["killed"]) == ["FINISHED", "KILLED"]
    recorded = next(r for r in runs["killed"] if r.info.status == "FINISHED")
    history = MlflowClient(uri).get_metric_history(recorded.info.run_id, "valid_auprc")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.1), (2, 0.2)]
    assert recorded.data.params == {"lr": "0.01", "batch_size": "32"}
    assert recorded.data.tags["mlflow.parentRunId"] == stage and recorded.data.tags["fold"] == "0"
