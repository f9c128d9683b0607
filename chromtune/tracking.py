"""MLflow run hierarchy and logging, all from the sweep's driver (workers need no tracking access).

Runs nest by the ``mlflow.parentRunId`` tag: sweep -> fold -> stage -> trial. Every run carries
``chromtune.sweep`` (the sweep's key) and ``chromtune.level``; hierarchy runs are found again by
``chromtune.key`` on ``--resume`` and reused, so a resumed sweep never duplicates them. Trial runs
left ``RUNNING`` by a driver that died are marked ``KILLED`` before the sweep goes on.
"""

from __future__ import annotations

import math
import os
import threading
import time

import mlflow
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "mlflow.parentRunId"


def numeric_metrics(values: dict) -> dict[str, float]:
    """The finite numbers of a result dict (MLflow takes floats only)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


MODEL_EXPORT_LOCK = threading.Lock()


class Tracker:
    """Creates and finds the sweep's runs in one MLflow experiment."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_key: str):
        self.tracking_uri, self.experiment_name, self.sweep_key = tracking_uri, experiment, sweep_key
        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)

    def _find(self, key: str):
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`chromtune.key` = '{key}'",
                                       max_results=1)
        return runs[0] if runs else None

    def hierarchy_run(self, key: str, name: str, parent: str | None, tags: dict, params: dict | None = None) -> str:
        """The run for ``key`` (a sweep, fold or stage): reused if it exists, else created."""
        existing = self._find(key)
        if existing:
            self.client.update_run(existing.info.run_id, status="RUNNING")
            return existing.info.run_id
        all_tags = {"chromtune.key": key, "chromtune.sweep": self.sweep_key, **tags}
        if parent:
            all_tags[PARENT_TAG] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def trial_run(self, name: str, parent: str, tags: dict, params: dict) -> str:
        all_tags = {"chromtune.sweep": self.sweep_key, "chromtune.level": "trial", PARENT_TAG: parent, **tags}
        run = self.client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict) -> None:
        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, run_id: str, metrics: dict, step: int = 0) -> None:
        stamp = int(time.time() * 1000)
        batch = [Metric(k, v, stamp, step) for k, v in numeric_metrics(metrics).items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def kill_orphans(self) -> int:
        """Mark this sweep's trial runs still RUNNING (their driver died) as KILLED."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`chromtune.sweep` = '{self.sweep_key}' and tags.`chromtune.level` = 'trial' "
                          f"and attributes.status = 'RUNNING'", max_results=10_000)
        for run in runs:
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        return len(runs)

    def finished_trials(self) -> set[str]:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`chromtune.sweep` = '{self.sweep_key}' and tags.`chromtune.level` = 'trial' "
                          f"and attributes.status = 'FINISHED'", max_results=10_000)
        return {run.data.tags.get("chromtune.trial_id") for run in runs}

    def log_artifacts(self, run_id: str, paths: list[str | os.PathLike]) -> None:
        for path in paths:
            if os.path.exists(path):
                self.client.log_artifact(run_id, str(path))

    def log_model(self, run_id: str, model, input_example) -> None:
        """The selected model as an MLflow PyTorch model (MLflow 3 needs an input example)."""
        import torch

        with MODEL_EXPORT_LOCK:  # fluent MLflow state and torch's model export are per process
            mlflow.set_tracking_uri(self.tracking_uri)
            with mlflow.start_run(run_id=run_id):
                mlflow.pytorch.log_model(model, name="model", input_example=input_example,
                                         pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "chromtune"])
        self.client.update_run(run_id, status="RUNNING")


class TrialLogger(tune.Callback):
    """A Tune callback (it runs in the driver): one MLflow run per trial, metrics per epoch,
    and a concise progress line per finished trial."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_key: str, stage_run: str, tags: dict,
                 searched: list[str], label: str, total: int):
        self.args = (tracking_uri, experiment, sweep_key)
        self.stage_run, self.tags, self.searched, self.label, self.total = stage_run, tags, searched, label, total
        self._tracker: Tracker | None = None
        self._logged: set[str] | None = None
        self.runs: dict[str, str] = {}
        self.done, self.best = 0, -math.inf

    def __getstate__(self):  # Tune pickles callbacks with its experiment state
        state = dict(self.__dict__)
        state.update(_tracker=None, _logged=None, runs={})
        return state

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(*self.args)
        return self._tracker

    def _params(self, trial) -> dict:
        return {k: trial.config[k] for k in self.searched if k in trial.config}

    def already_logged(self, trial_id: str) -> bool:
        """A trial MLflow holds as FINISHED: its driver died after logging it but before Tune saved
        its state, so a resumed Tune starts it again (from its final checkpoint). Log it once only."""
        if self._logged is None:
            self._logged = self.tracker.finished_trials()
        return trial_id in self._logged

    def _trial_run(self, trial_id: str, config: dict) -> str:
        """A new RUNNING run for a trial, under the stage's run, with its config (not the runtime_ keys)."""
        params = {k: v for k, v in config.items() if not k.startswith("runtime_")}
        return self.tracker.trial_run(f"{self.label} trial {trial_id}", self.stage_run,
                                      {**self.tags, "chromtune.trial_id": trial_id}, params)

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.runs and not self.already_logged(trial.trial_id):
            self.runs[trial.trial_id] = self._trial_run(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.on_trial_start(iteration, trials, trial)
        if trial.trial_id in self.runs:
            run_id = self.runs[trial.trial_id]
            self.tracker.log_metrics(run_id, result, step=int(result.get("epoch", 0)))
            if "node_id" in result:  # the node that trained this epoch (a rescheduled trial moves)
                self.tracker.set_tags(run_id, {"node_id": result["node_id"]})

    def _end(self, trial, status: str):
        run_id = self.runs.pop(trial.trial_id, None)
        if run_id:
            self.tracker.finish(run_id, status)
        self.done += 1
        value = (trial.last_result or {}).get("best_valid_auprc", math.nan)
        if status == "FINISHED" and value > self.best:
            self.best = value
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self._params(trial).items())
        print(f"[{self.label}] trial {self.done}/{self.total} {status.lower()}: {shown} "
              f"valid_auprc={value:.4f} (best {self.best:.4f})", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, "FINISHED")

    def record_unlogged(self, results) -> int:
        """After the stage: a run for every trial Tune finished that MLflow holds no FINISHED run for
        (a driver that died between Tune's record and MLflow's leaves one KILLED), from Tune's own
        result history, so each finished trial has exactly one FINISHED run. Returns how many."""
        logged = self.tracker.finished_trials()
        reported = [r for r in results if r.error is None and (r.metrics or {}).get("trial_id")]
        missing = [r for r in reported if r.metrics["trial_id"] not in logged]
        for result in missing:
            run_id = self._trial_run(result.metrics["trial_id"], result.config)
            for row in result.metrics_dataframe.to_dict("records"):  # a trial_id means one result at least
                self.tracker.log_metrics(run_id, row, step=int(numeric_metrics(row).get("epoch", 0)))
            self.tracker.finish(run_id)
        return len(missing)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, "FAILED")
