"""The Tune callback that logs a stage's trials to MLflow (it runs in the sweep's driver)."""

from __future__ import annotations

import math

from ray import tune

from chromtune.tracking import STOPPED_TAG, Tracker, numeric_metrics, stopped_early

# What Tune adds to every result (timings, pid, host, counters): not chromtune's metrics.
TUNE_KEYS = frozenset(tune.result.AUTO_RESULT_KEYS) | {"iterations_since_restore", "time_since_restore", "done"}


SHORT_NAMES = {"batch_size": "bs", "samples_per_epoch": "spe", "epochs": "ep"}  # in trial run names


def short_value(value) -> str:
    """A parameter value as a run name shows it: ``2e-3``, ``0.25``, ``128``."""
    if isinstance(value, float) and value != 0 and not 1e-2 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def trial_label(params: dict) -> str:
    """The searched parameters of a trial, short: ``bs128 lr2e-3`` (trials differ in these)."""
    return " ".join(f"{SHORT_NAMES.get(k, k)}{short_value(v)}" for k, v in params.items())


def trial_metrics(result: dict) -> dict[str, float]:
    """A trial's own numbers from a Tune result: chromtune's epoch metrics without Tune's bookkeeping."""
    return numeric_metrics({k: v for k, v in result.items() if k not in TUNE_KEYS})


class TrialLogger(tune.Callback):
    """A Tune callback (it runs in the driver): one MLflow run per trial, metrics per epoch,
    and a concise progress line per finished trial (through ``say``: the sweep prints it above
    its status line). Trial runs are named ``<run_prefix> <label> <searched parameters>``, e.g.
    ``resnet+mean (tune) fold 0 stage 1 bs128 lr2e-3`` (Tune's trial id is the tag ``chromtune.trial_id``)."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_key: str, stage_run: str, tags: dict,
                 searched: list[str], label: str, total: int, run_prefix: str = "", say=print):
        self.args = (tracking_uri, experiment, sweep_key)
        self.stage_run, self.tags, self.searched, self.label, self.total = stage_run, tags, searched, label, total
        self.run_prefix, self.say = run_prefix, say
        self._tracker: Tracker | None = None
        self._logged: set[str] | None = None
        self.runs: dict[str, str] = {}
        self.logged_epoch: dict[str, float] = {}
        self.done, self.best = 0, -math.inf

    def __getstate__(self):  # Tune pickles callbacks with its experiment state
        state = dict(self.__dict__)
        state.update(_tracker=None, _logged=None, runs={}, logged_epoch={})
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

    def _open_run(self, trial_id: str, config: dict) -> str:
        """The trial's RUNNING run under the stage's run: the one an interrupted driver left (KILLED or
        RUNNING; the epochs it holds are not logged again), else a new one with the trial's config
        (not the runtime_ keys)."""
        earlier = self.tracker.trial_run_of(trial_id)
        if earlier is not None:
            self.tracker.client.update_run(earlier.info.run_id, status="RUNNING")
            self.logged_epoch[trial_id] = earlier.data.metrics.get("epoch", -math.inf)
            return earlier.info.run_id
        params = {k: v for k, v in config.items() if not k.startswith("runtime_")}
        self.logged_epoch[trial_id] = -math.inf
        shown = trial_label({k: config[k] for k in self.searched if k in config}) or f"trial {trial_id}"
        return self.tracker.trial_run(f"{self.run_prefix} {self.label} {shown}".lstrip(), self.stage_run,
                                      {**self.tags, "chromtune.trial_id": trial_id}, params)

    def _log_result(self, trial_id: str, result: dict) -> None:
        """One epoch's metrics, unless an earlier driver logged that epoch already."""
        epoch = numeric_metrics(result).get("epoch", 0)
        if epoch <= self.logged_epoch.get(trial_id, -math.inf):
            return
        self.logged_epoch[trial_id] = epoch
        self.tracker.log_metrics(self.runs[trial_id], trial_metrics(result), step=int(epoch))

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.runs and not self.already_logged(trial.trial_id):
            self.runs[trial.trial_id] = self._open_run(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.on_trial_start(iteration, trials, trial)
        if trial.trial_id in self.runs:
            self._log_result(trial.trial_id, result)
            if "node_id" in result:  # the node that trained this epoch (a rescheduled trial moves)
                self.tracker.set_tags(self.runs[trial.trial_id], {"node_id": result["node_id"]})

    def _end(self, trial, status: str):
        result = trial.last_result or {}
        stopped = status == "FINISHED" and stopped_early(trial.config, result)
        run_id = self.runs.pop(trial.trial_id, None)
        if run_id:
            if stopped:
                self.tracker.set_tags(run_id, {STOPPED_TAG: "true"})
            self.tracker.finish(run_id, status)
        self.done += 1
        value = result.get("best_valid_auprc", math.nan)
        if status == "FINISHED" and not stopped and value > self.best:
            self.best = value
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self._params(trial).items())
        how = f"stopped early at epoch {result.get('epoch')}/{trial.config.get('epochs')}" if stopped else status.lower()
        best = f"{self.best:.4f}" if self.best > -math.inf else "none yet"
        self.say(f"[{self.label}] trial {self.done}/{self.total} {how}: {shown} "
                 f"valid_auprc={value:.4f} (best at full budget: {best})")

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
            trial_id = result.metrics["trial_id"]
            self.runs[trial_id] = self._open_run(trial_id, result.config)
            for row in result.metrics_dataframe.to_dict("records"):  # a trial_id means one result at least
                self._log_result(trial_id, row)
            if stopped_early(result.config, result.metrics):
                self.tracker.set_tags(self.runs[trial_id], {STOPPED_TAG: "true"})
            self.tracker.finish(self.runs.pop(trial_id))
        return len(missing)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, "FAILED")
