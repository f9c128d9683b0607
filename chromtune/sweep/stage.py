"""One (fold, stage) of a sweep: a Ray Tune experiment searched by Optuna, its trials logged to MLflow,
and the selected trial's checkpoint copied beside it."""

from __future__ import annotations

import json
import math

import pyarrow.fs as pafs
import torch

from chromtune.errors import UserError, user_error_in
from chromtune.io.storage import Storage
from chromtune.sweep.signals import STOP, Interrupted, StopTune
from chromtune.sweep.plan import SweepPlan, concurrency
from chromtune.train.config import TrainConfig
from chromtune.train.sessions import TuneSession


def sweep_trial(config: dict) -> None:
    """A Tune function trainable: one TrainConfig, trained in this process or by a TorchTrainer."""
    from ray import tune

    from chromtune.train.loop import run_loop
    from chromtune.train.runner import latest_checkpoint, make_trainer

    cfg = TrainConfig.from_dict(config)
    workers = config["runtime_workers"]
    if workers == 0:
        run_loop(cfg, TuneSession(torch.device("cuda") if config["runtime_gpus"] else torch.device("cpu")))
        return
    from ray.tune.integration.ray_train import TuneReportCallback

    # Train's checkpoints stay in Train's storage (TuneReportCallback forwards their path as the
    # metric ``checkpoint_path``), so a restarted trial resumes from its Train run's latest one.
    name = f"train-{tune.get_context().get_trial_id()}"
    resume = latest_checkpoint(Storage(config["runtime_storage"]), name)
    trainer = make_trainer(cfg, config["runtime_storage"], workers, bool(config["runtime_gpus"]),
                           config["runtime_cpus"], max_failures=config["runtime_max_failures"], resume=resume,
                           name=name, callbacks=[TuneReportCallback()])
    trainer.fit()


def run_stage(plan: SweepPlan, tracker, fold: int, stage: int, parent_run: str, init: str | None) -> dict:
    """One (fold, stage) Tune experiment; returns the selected trial (config, metric, and its checkpoint
    folder's name in the sweep's storage)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from chromtune.sweep.progress import ProgressCallback, emit, say
    from chromtune.sweep.summary import params_text
    from chromtune.sweep.trial_logger import TrialLogger
    from chromtune.tracking import stopped_early

    s, space = plan.settings, plan.spaces[stage]
    name = f"fold{fold}-stage{stage}"
    done = plan.storage.read_text(f"{name}.json")
    if done is not None:
        emit(("stage_done", fold, stage))
        return json.loads(done)
    label = f"fold {fold} stage {stage}"
    STOP.check(f"{label} (not started)")
    tags = {"chromtune.level": "stage", "arch": s.arch, "fold": fold, "stage": stage,
            "paradigm": s.paradigm, "mean": s.with_mean}
    stage_run = tracker.hierarchy_run(f"{plan.key}/{name}", f"{plan.label} {label}", parent_run, tags,
                                      {"sampler": space.sampler, "num_samples": space.num_samples, **space.fixed})
    # "epochs" always present: the scheduler's last rung and the test for a trial stopped early
    param_space = {**plan.base, "epochs": TrainConfig.epochs, **space.fixed, "stage": stage, "fold": fold, "init": init,
                   "runtime_workers": s.workers_per_trial, "runtime_gpus": s.gpus_per_worker,
                   "runtime_cpus": s.cpus_per_worker, "runtime_max_failures": 2,
                   "runtime_storage": plan.storage.uri_of()}
    # A trial that drives a TorchTrainer only waits on it; its workers request the real resources.
    resources = ({"CPU": s.cpus_per_worker, "GPU": s.gpus_per_worker} if s.workers_per_trial == 0
                 else {"CPU": 0.01})
    trainable = tune.with_resources(sweep_trial, resources)
    logger = TrialLogger(plan.tracking_uri, plan.experiment, plan.key, stage_run,
                         {k: v for k, v in tags.items() if k != "chromtune.level"}, list(space.params), label,
                         space.num_samples, run_prefix=plan.label, say=say)
    path = plan.storage.uri_of(name)
    if tune_state_saved(plan.storage, name):
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=param_space)
    else:
        if plan.storage.exists(name):  # begun by a driver that died before Tune saved any state
            plan.storage.fs.delete_dir(plan.storage.path(name))
            tracker.delete_trials(stage_run)  # that experiment's trials, begun or finished, are run again
        scheduler = (ASHAScheduler(time_attr="epoch", metric="best_valid_auprc", mode="max",
                                   max_t=param_space["epochs"], **space.asha) if space.asha else None)
        searcher = OptunaSearch(space.distributions(), metric="valid_auprc", mode="max",
                                sampler=space.optuna_sampler(s.seed + 100 * fold + stage))
        # reuse_actors: a trial process (torch, Ray and chromtune imported: ~6 CPU s) goes on to the
        # stage's next trial; every trial still seeds and builds its own model and optimiser.
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=space.num_samples,
                                        max_concurrent_trials=concurrency(plan, space.num_samples), reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=plan.storage.uri_of(), verbose=0,
                                      callbacks=[logger, StopTune(), ProgressCallback(fold, stage)],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      failure_config=tune.FailureConfig(max_failures=2)),
        )
    emit(("stage", fold, stage, tracker.finished_trials(parent=stage_run)))  # finished before a --resume
    results = tuner.fit()
    if STOP.tune_stopped:  # Tune saved its state and stopped the running trials: resumable, not selectable
        tracker.kill_orphans(parent=stage_run)
        tracker.finish(stage_run, "KILLED")
        finished = len(tracker.finished_trials(parent=stage_run))
        raise Interrupted(f"{label} ({finished} of {space.num_samples} trials finished)")
    recorded = logger.record_unlogged(results)
    if recorded:
        say(f"[{label}] {recorded} finished trial(s) had no FINISHED MLflow run; recorded from Tune's results")
    tracker.delete_trials(stage_run, status="KILLED")
    finished = [r for r in results if r.error is None and _has_checkpoint(r)
                and math.isfinite((r.metrics or {}).get("best_valid_auprc", math.nan))]
    if not finished:
        raise nothing_to_select(label, results, path)
    best = max(top_rung(finished), key=lambda r: r.metrics.get("best_valid_auprc", float("-inf")))
    selected = f"{name}-selected"
    source_fs, source = _checkpoint_location(best, plan.storage)
    plan.storage.fs.create_dir(plan.storage.path(selected), recursive=True)
    pafs.copy_files(source, plan.storage.path(selected), source_filesystem=source_fs,
                    destination_filesystem=plan.storage.fs)
    choice = {"config": {k: v for k, v in best.config.items() if not k.startswith("runtime_")},
              "params": {k: best.config[k] for k in space.params}, "best_valid_auprc": best.metrics["best_valid_auprc"],
              "checkpoint": selected, "trials": len(results)}
    tracker.log_metrics_once(stage_run, {"best_valid_auprc": choice["best_valid_auprc"]})
    tracker.set_tags(stage_run, {f"selected.{k}": v for k, v in choice["params"].items()})
    tracker.finish(stage_run)
    stopped = sum(stopped_early(r.config, r.metrics) for r in finished)
    say(f"[{label}] selected {params_text(choice['params'])} valid_auprc={choice['best_valid_auprc']:.4f}"
        + (f" ({stopped} of {len(results)} trials stopped early)" if space.asha else ""))
    plan.storage.write_text(f"{name}.json", json.dumps(choice, indent=1))
    emit(("stage_done", fold, stage))
    prune_checkpoints(plan.storage, results)
    return choice


def nothing_to_select(label: str, results, path: str) -> Exception:
    """The error of a stage none of whose trials has a defined selection metric: one line naming the
    stage and the cause when a trial failed with one (an undefined metric, bad input: a UserError,
    shown by the CLI as one line, exit 2); else the first failure, whose traceback says more."""
    errors = [r.error for r in results if r.error is not None]
    found = next((e for e in map(user_error_in, errors) if e is not None), None)
    if found is not None:
        cause = str(found).removeprefix(f"{label}: ")
        return UserError(f"{label}: no trial to select ({len(errors)} of {len(results)} trials failed): {cause}")
    if not errors:
        return UserError(f"{label}: no trial to select: none of the {len(results)} trials reported a defined "
                         f"validation metric; see {path}")
    failure = RuntimeError(f"{label}: every trial failed; see {path}")
    failure.__cause__ = errors[0]
    return failure


def top_rung(finished: list) -> list:
    """The trials that trained the whole budget: a trial the scheduler stopped early is never
    selected (its metric comes from fewer epochs). Should none have (every such trial failed),
    those that got furthest."""
    from chromtune.tracking import stopped_early

    full = [r for r in finished if not stopped_early(r.config, r.metrics)]
    if full:
        return full
    furthest = max(int(r.metrics.get("epoch") or 0) for r in finished)
    return [r for r in finished if int(r.metrics.get("epoch") or 0) == furthest]


def prune_checkpoints(storage: Storage, results) -> None:
    """Once the stage's choice is copied to ``<stage>-selected`` and recorded (``<stage>.json``), no
    later step, ``--resume`` included, reads its trials' checkpoints: delete them (Tune's own per
    trial, or a TorchTrainer trial's Train run). Tune's experiment state and results stay."""
    for result in results:
        if result.checkpoint is not None:
            fs = result.checkpoint.filesystem
            for info in fs.get_file_info(pafs.FileSelector(result.path, allow_not_found=True)):
                if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                    fs.delete_dir(info.path)
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id and storage.exists(f"train-{trial_id}"):
            storage.fs.delete_dir(storage.path(f"train-{trial_id}"))


def tune_state_saved(storage: Storage, name: str) -> bool:
    """Tune saved experiment ``name``'s state, so it can resume it. ``Tuner.can_restore`` asks only for
    tuner.pkl, which a driver killed as the experiment began leaves alone; restoring that resumes
    nothing and runs a partial search."""
    found = storage.fs.get_file_info(pafs.FileSelector(storage.path(name), allow_not_found=True))
    return any(info.base_name.startswith("experiment_state-") for info in found)


def _has_checkpoint(result) -> bool:
    return result.checkpoint is not None or bool((result.metrics or {}).get("checkpoint_path"))


def _checkpoint_location(result, storage: Storage):
    """A trial's last epoch checkpoint as (filesystem, path): Tune's own (in-process trials) or
    Train's, whose path TuneReportCallback forwards in the storage's filesystem (TorchTrainer trials)."""
    if result.checkpoint is not None:
        return result.checkpoint.filesystem, result.checkpoint.path
    return storage.fs, result.metrics["checkpoint_path"]
