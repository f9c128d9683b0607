"""The fold driver: a fold's two stages and its one test evaluation; a fold in a process of its own."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow.fs as pafs

from chromtune.errors import user_error_in
from chromtune.models.flat_input import FlatInputModel
from chromtune.io.storage import fetch
from chromtune.sweep.plan import SweepPlan
from chromtune.sweep.progress import emit, say
from chromtune.sweep.signals import STOP, Interrupted
from chromtune.sweep.stage import run_stage
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import RESULT_NAMES
from chromtune.train.metrics import skipped_text

FOLD_METRICS = ("auprc", "auroc", "auprc_mean_per_cell", "auroc_mean_per_cell", "auprc_specific")
MODEL_LOGGED = "chromtune.model_logged"


def evaluate_remotely(plan: SweepPlan, stage2: dict) -> dict:
    """The selected model's test evaluation as a Ray task with one trial worker's resources (its GPU
    when trials have one), wherever the cluster has them, instead of in this driver."""
    import ray

    from chromtune.train.evaluate import evaluate_checkpoint

    s = plan.settings
    task = ray.remote(evaluate_checkpoint).options(num_cpus=s.cpus_per_worker, num_gpus=s.gpus_per_worker,
                                                   name="chromtune-test-evaluation")
    return ray.get(task.remote(stage2["config"], plan.storage.uri_of(stage2["checkpoint"], "best.pt")))


def evaluate_fold(plan: SweepPlan, tracker, fold: int, fold_run: str, stage2: dict) -> dict:
    """The one test evaluation of the selected stage-2 model (a Ray task; kept as ``foldK-test.json``
    once computed), then its record in the fold's run, which a resumed sweep completes."""
    from chromtune.train.runner import finish_run

    out = plan.local / f"fold{fold}-selected"
    done = plan.storage.read_text(f"fold{fold}-test.json")
    if done is None:
        STOP.check(f"fold {fold} test evaluation (not started)")
        out.mkdir(parents=True, exist_ok=True)
        cfg = TrainConfig.from_dict({**stage2["config"], "evaluate_test": True})  # the fold's one test evaluation
        report = evaluate_remotely(plan, stage2)
        metrics = finish_run(cfg, fetch(plan.storage.uri_of(stage2["checkpoint"])), out, test=report)
        if plan.storage.is_uri:
            plan.storage.put_folder(out, out.name)
        test = metrics["test"]
        result = {"fold": fold, "test_pairs": metrics["test_pairs"],
                  "skipped": skipped_text(test["model"], metrics["split"]["test"]),
                  **{name: {m: test[name][m] for m in FOLD_METRICS if m in test[name]} for name in RESULT_NAMES}}
        plan.storage.write_text(f"fold{fold}-test.json", json.dumps(result, indent=1))
    else:
        result = json.loads(done)
        if not out.exists() and plan.storage.is_uri:  # resumed on another machine
            out = fetch(plan.storage.uri_of(out.name))
    record_fold(tracker, fold_run, result, stage2, out)
    return result


def record_fold(tracker, fold_run: str, result: dict, stage2: dict, out: Path) -> None:
    """The fold's test metrics, selected parameters, files and model in its run, then FINISHED.
    Each step is skipped or harmless when an interrupted driver did it already."""
    from chromtune.models.checkpoint import load_model

    run = tracker.client.get_run(fold_run)
    if run.info.status == "FINISHED":
        return
    tracker.log_metrics_once(fold_run, {f"test_{name}_{m}": result[name][m] for name in RESULT_NAMES
                                        for m in FOLD_METRICS if m in result[name]})
    tracker.log_params(fold_run, {**{f"selected.{k}": v for k, v in stage2["params"].items()},
                                  **{f"test_{k}": v for k, v in result.get("test_pairs", {}).items()}})
    tracker.log_artifacts(fold_run, [out / name for name in
                                     ("metrics.json", "split.tsv", "pr_curves.png", "pr_curves.npz", "best.pt")])
    if MODEL_LOGGED not in run.data.tags:
        model, _ = load_model(out / "best.pt")
        tracker.log_model(fold_run, FlatInputModel(model), FlatInputModel.example(model))
        tracker.set_tags(fold_run, {MODEL_LOGGED: "true"})
    tracker.finish(fold_run)


def share_data_file(plan: SweepPlan) -> str:
    """Copy the data set file into the sweep's storage once, so every node can fetch it; its URI."""
    target = f"data/{Path(plan.data).name}"
    if plan.storage.fs.get_file_info(plan.storage.path(target)).size != os.path.getsize(plan.data):
        plan.storage.fs.create_dir(plan.storage.path("data"), recursive=True)
        pafs.copy_files(plan.data, plan.storage.path(target), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=plan.storage.fs)
    return plan.storage.uri_of(target)


def run_fold(plan: SweepPlan, fold: int, sweep_run: str) -> dict:
    """One fold: stage-1 search, stage-2 search from its best checkpoint, the test evaluation.
    A stop ends the fold's run KILLED (``--resume`` reopens it)."""
    from chromtune.tracking import NOTE_TAG, Tracker

    s = plan.settings
    tracker = Tracker(plan.tracking_uri, plan.experiment, plan.key)
    fold_tags = {"chromtune.level": "fold", "arch": s.arch, "fold": fold, "paradigm": s.paradigm,
                 "mean": s.with_mean,
                 NOTE_TAG: f"Fold {fold} of {s.folds}: stage 1 and stage 2 searched on this fold's training cell "
                           "types, the model selected on its validation cell types (best.pt, the MLflow model) and "
                           "its test metrics on the held-out cell types."}
    fold_run = tracker.hierarchy_run(f"{plan.key}/fold{fold}", f"{plan.label} fold {fold}", sweep_run, fold_tags)
    try:
        stage1 = run_stage(plan, tracker, fold, 1, fold_run, None)
        stage2 = run_stage(plan, tracker, fold, 2, fold_run, plan.storage.uri_of(stage1["checkpoint"], "best.pt"))
        result = evaluate_fold(plan, tracker, fold, fold_run, stage2)
        prune_fold(plan, fold)
    except Interrupted:
        tracker.finish(fold_run, "KILLED")
        raise
    pairs = result["test_pairs"]
    say(f"[fold {fold}] test AUPRC model {result['model']['auprc']:.4f} | mean baseline "
        f"{result['mean_baseline']['auprc']:.4f} | RNA-weighted {result['weighted_mean_baseline']['auprc']:.4f} "
        f"({pairs['pairs']:,} pairs: every {pairs['every']} of the test bins x {pairs['cells']} cell types)")
    if result.get("skipped"):
        say(f"[fold {fold}] test: {result['skipped']}")
    emit(("fold_done", fold))
    return result


def prune_fold(plan: SweepPlan, fold: int) -> None:
    """Once the fold's test evaluation is recorded, its stages' training state (optimizer, sampler,
    history: read by that evaluation only) goes; each stage's selected best.pt stays."""
    from chromtune.train.loop import STATE_FILE

    for stage in plan.spaces:
        name = f"fold{fold}-stage{stage}-selected/{STATE_FILE}"
        if plan.storage.exists(name):
            plan.storage.fs.delete_file(plan.storage.path(name))


def fold_process(plan: SweepPlan, fold: int, sweep_run: str, address: str, driver_pid: int, events) -> None:
    """A fold in a process of its own (folds at once; spawned by the driver): its Tune experiments
    run in this process's main thread, as Tune requires for its state and its stop signal. The
    driver forwards a stop as SIGTERM (SIGINT from a terminal is left to the driver); exit status
    130 says the fold stopped resumably. Its lines and trial events go to the driver's progress
    line through the queue ``events``."""
    import sys

    import ray

    from chromtune.sweep.progress import connect
    from chromtune.sweep.signals import EXIT_INTERRUPTED, quiet_libraries

    _die_with(driver_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connect(events)
    quiet_libraries()
    ray.init(address=address, log_to_driver=False)
    STOP.install(resume_hint="", signals=(signal.SIGTERM,))  # after ray.init, which sets its own SIGTERM handler
    try:
        run_fold(plan, fold, sweep_run)
    except Interrupted:  # the driver prints the one line
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:  # bad input, or a stage with nothing to select: the driver's one error line
        found = user_error_in(err)
        if found is None:
            raise
        emit(("error", fold, str(found)))
        sys.exit(2)


def _die_with(driver_pid: int) -> None:
    """End this process when the driver dies, even by SIGKILL (Linux; elsewhere a fold outlives a
    killed driver until its Ray connection drops)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != driver_pid:  # the driver died before prctl took effect
        os._exit(1)
