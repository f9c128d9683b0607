"""MLflow run hierarchy and logging, all from the sweep's driver (workers need no tracking access),
and the one place chromtune makes MLflow clients (:func:`client`). No Ray here: predict, variants and
interpret use it; the Tune callback that logs trials is :mod:`chromtune.sweep.trial_logger`.

Runs nest by the ``mlflow.parentRunId`` tag: sweep -> fold -> stage -> trial. Every run carries
``chromtune.sweep`` (the sweep's key) and ``chromtune.level``; hierarchy runs are found again by
``chromtune.key`` on ``--resume`` and reused, so a resumed sweep never duplicates them. Trial runs
left ``RUNNING`` by a driver that died are marked ``KILLED`` before the sweep goes on.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from chromtune.atomic import check_output_file
from chromtune.errors import UserError
from chromtune.io.files import is_uri

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SQLITE = "sqlite:///"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # the run's description in MLflow's UI
UI_ADDRESS = "http://127.0.0.1:5000"  # where ``mlflow ui`` serves by default
# MLflow 3's UI opens an experiment of this kind on its training runs (not the GenAI overview).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def resolve_tracking_uri(uri: str | None, flag: str = "--tracking-uri") -> str:
    """The MLflow store: an SQLite path made absolute against the caller's folder and checked (a
    folder, a file that is not SQLite, an unwritable place), other URIs as given. A plain path or
    ``file://`` names MLflow's file store, which MLflow 3.13 removed."""
    uri = uri or DEFAULT_TRACKING_URI
    if uri.startswith(SQLITE):
        path = Path(uri[len(SQLITE):]).expanduser().absolute()
        if path.is_dir():
            raise UserError(f"{flag} {uri}: {path} is a folder, expected an SQLite file")
        if path.is_file():
            with open(path, "rb") as handle:
                head = handle.read(16)
            if head and head != b"SQLite format 3\x00":
                raise UserError(f"{flag} {uri}: {path} is a plain file, not an SQLite database")
        else:
            check_output_file(path, flag)
        return SQLITE + str(path)
    if (not is_uri(uri) and uri != "databricks") or uri.startswith("file:"):
        raise UserError(f"{flag} {uri}: a path names MLflow's file store, which MLflow removed; "
                        "give sqlite:///FILE.db or a server's http://host:port")
    return uri


def client(tracking_uri: str | None = None) -> MlflowClient:
    """An MLflow client of the store `tracking_uri` (default ``sqlite:///mlflow.db``)."""
    return MlflowClient(tracking_uri or DEFAULT_TRACKING_URI)


def download_artifact(run_id: str, name: str, folder: str | os.PathLike, tracking_uri: str | None = None) -> Path:
    """The run's artifact `name`, downloaded into `folder`."""
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(folder),
                                                    tracking_uri=tracking_uri or DEFAULT_TRACKING_URI))


def require_store(tracking_uri: str | None, hint: str) -> str:
    """`tracking_uri` (default ``sqlite:///mlflow.db``), or a one-line UserError when it names an
    SQLite file that does not exist (MLflow would create an empty store); `hint` says what to do."""
    uri = tracking_uri or DEFAULT_TRACKING_URI
    if uri.startswith(SQLITE) and not Path(uri[len(SQLITE):]).is_file():
        raise UserError(f"--tracking-uri {uri}: no such MLflow store ({hint})")
    return uri


def is_default_store(uri: str) -> bool:
    """Whether ``uri`` (resolved) is ./mlflow.db, the store that ``mlflow ui`` and chromtune's
    commands open when given no URI."""
    return uri == SQLITE + str(Path(DEFAULT_TRACKING_URI[len(SQLITE):]).absolute())


def ui_command(tracking_uri: str | None) -> str:
    """The ``mlflow ui`` command that shows the store: bare for ./mlflow.db, which ``mlflow ui`` opens by default."""
    if tracking_uri in (None, DEFAULT_TRACKING_URI) or is_default_store(tracking_uri):
        return "mlflow ui"
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def runs_page(experiment_id: str) -> str:
    """The address of the experiment's training-runs page under ``mlflow ui`` (127.0.0.1:5000 by default).
    MLflow 3.17's UI keeps its GenAI / model-training toggle in the browser's localStorage (default GenAI,
    MLflow issue 24498) but takes ``workflowType=machine_learning`` from the address first."""
    return f"{UI_ADDRESS}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def artifact_root(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlartifacts/`` beside an SQLite store (MLflow's
    own default is ``./mlruns`` in whatever folder the driver runs in); a server decides for itself."""
    if not tracking_uri.startswith(SQLITE):
        return None
    return (Path(tracking_uri[len(SQLITE):]).expanduser().absolute().parent / "mlartifacts").as_uri()


def numeric_metrics(values: dict) -> dict[str, float]:
    """The finite numbers of a result dict (MLflow takes floats only)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def stopped_early(config: dict, metrics: dict) -> bool:
    """A trial that ended before its budget's last epoch (the scheduler stopped it at a rung)."""
    return int(metrics.get("epoch") or 0) < int(config.get("epochs") or 0)


STOPPED_TAG = "chromtune.stopped_early"

MODEL_EXPORT_LOCK = threading.Lock()


def prepare_store(tracking_uri: str) -> None:
    """Create an sqlite MLflow store's schema under a file lock, so sweeps started together never
    race on it (the loser of that race died on MLflow's table creation)."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    import fcntl

    path = Path(tracking_uri[len("sqlite:///"):]).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]  # the lock file stays out of the user's folder
    with open(Path(tempfile.gettempdir()) / f"chromtune-mlflow-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client(tracking_uri).search_experiments(max_results=1)


class Tracker:
    """Creates and finds the sweep's runs in one MLflow experiment."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_key: str):
        self.tracking_uri, self.experiment_name, self.sweep_key = tracking_uri, experiment, sweep_key
        self.client = client(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            try:
                self.client.create_experiment(experiment, artifact_location=artifact_root(tracking_uri),
                                              tags=EXPERIMENT_KIND)
            except MlflowException:  # another sweep sharing the store created it just now
                pass
            found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id
        if not set(EXPERIMENT_KIND.items()) <= set(found.tags.items()):
            for key, value in EXPERIMENT_KIND.items():
                self.client.set_experiment_tag(self.experiment_id, key, value)

    def run_id(self, key: str) -> str | None:
        """The id of the sweep, fold or stage run for ``key``, if it exists."""
        found = self._find(key)
        return found.info.run_id if found else None

    def _find(self, key: str):
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`chromtune.key` = '{key}'",
                                       max_results=1)
        return runs[0] if runs else None

    def hierarchy_run(self, key: str, name: str, parent: str | None, tags: dict, params: dict | None = None) -> str:
        """The run for ``key`` (a sweep, fold or stage): reused if it exists, else created."""
        existing = self._find(key)
        if existing:
            if existing.info.status != "FINISHED":
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

    def log_metrics_once(self, run_id: str, metrics: dict) -> None:
        """Log the metrics ``run_id`` does not hold yet (a resumed sweep redoes the step that logged them)."""
        held = self.client.get_run(run_id).data.metrics
        self.log_metrics(run_id, {k: v for k, v in metrics.items() if k not in held})

    def set_tags(self, run_id: str, tags: dict) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def _trial_runs(self, condition: str = ""):
        query = f"tags.`chromtune.sweep` = '{self.sweep_key}' and tags.`chromtune.level` = 'trial'"
        return self.client.search_runs([self.experiment_id], filter_string=f"{query} {condition}".strip(),
                                       max_results=10_000)

    def kill_orphans(self, parent: str | None = None) -> int:
        """Mark this sweep's trial runs still RUNNING (their driver died or was stopped) as KILLED;
        only those under the stage run ``parent`` when given."""
        condition = "and attributes.status = 'RUNNING'" + (f" and tags.`{PARENT_TAG}` = '{parent}'" if parent else "")
        runs = self._trial_runs(condition)
        for run in runs:
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        return len(runs)

    def finished_trials(self, parent: str | None = None) -> set[str]:
        """Tune trial ids with a FINISHED run (under the stage run ``parent`` when given)."""
        condition = "and attributes.status = 'FINISHED'" + (f" and tags.`{PARENT_TAG}` = '{parent}'" if parent else "")
        return {run.data.tags.get("chromtune.trial_id") for run in self._trial_runs(condition)}

    def finished_trials_by_stage(self) -> dict[tuple[int, int], set[str]]:
        """Tune trial ids with a FINISHED run, per (fold, stage): what an earlier driver finished."""
        out: dict[tuple[int, int], set[str]] = {}
        for run in self._trial_runs("and attributes.status = 'FINISHED'"):
            tags = run.data.tags
            out.setdefault((int(tags["fold"]), int(tags["stage"])), set()).add(tags.get("chromtune.trial_id"))
        return out

    def trial_run_of(self, trial_id: str):
        """The run an earlier driver made for Tune trial ``trial_id``, if any (FINISHED ones first)."""
        runs = self._trial_runs(f"and tags.`chromtune.trial_id` = '{trial_id}'")
        return min(runs, key=lambda run: run.info.status != "FINISHED", default=None)

    def delete_trials(self, parent: str, status: str | None = None) -> int:
        """Delete the trial runs under a stage run (only those with ``status`` when given): the KILLED
        ones once the stage has finished (trials an interrupted driver started that the resumed stage
        ran under another run or Tune trial), all of them when the stage starts again from nothing."""
        runs = self._trial_runs(f"and tags.`{PARENT_TAG}` = '{parent}'"
                                + (f" and attributes.status = '{status}'" if status else ""))
        for run in runs:
            self.client.delete_run(run.info.run_id)
        return len(runs)

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
