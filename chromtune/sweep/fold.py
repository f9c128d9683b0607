"""The fold driver: each fold's two stages and its one test evaluation, and the sweep over folds."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from chromtune.atomic import write_text
from chromtune.models.flat_input import FlatInputModel
from chromtune.storage import fetch
from chromtune.sweep.plan import SweepPlan, check_storage, concurrent_folds
from chromtune.sweep.stage import run_stage
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import RESULT_NAMES


def evaluate_remotely(plan: SweepPlan, stage2: dict) -> dict:
    """The selected model's test evaluation as a Ray task with one trial worker's resources (its GPU
    when trials have one), wherever the cluster has them, instead of in this driver."""
    import ray

    from chromtune.train.evaluate import evaluate_checkpoint

    args = plan.args
    task = ray.remote(evaluate_checkpoint).options(num_cpus=args.cpus_per_worker, num_gpus=args.gpus_per_worker,
                                                   name="chromtune-test-evaluation")
    return ray.get(task.remote(stage2["config"], plan.storage.uri_of(stage2["checkpoint"], "best.pt")))


def evaluate_fold(plan: SweepPlan, tracker, fold: int, fold_run: str, stage2: dict) -> dict:
    """The one test evaluation of the selected stage-2 model (a Ray task), logged to the fold's run."""
    from chromtune.models.checkpoint import load_model
    from chromtune.train.runner import finish_run

    done = plan.storage.read_text(f"fold{fold}-test.json")
    if done is not None:
        return json.loads(done)
    out = plan.local / f"fold{fold}-selected"
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig.from_dict(stage2["config"])
    report = evaluate_remotely(plan, stage2)
    metrics = finish_run(cfg, fetch(plan.storage.uri_of(stage2["checkpoint"])), out, test=report)
    if plan.storage.is_uri:
        plan.storage.put_folder(out, out.name)
    test = metrics["test"]
    flat = {f"test_{name}_{m}": test[name][m] for name in RESULT_NAMES
            for m in ("auprc", "auroc", "auprc_mean_per_cell", "auroc_mean_per_cell")}
    tracker.log_metrics(fold_run, flat)
    tracker.log_params(fold_run, {**{f"selected.{k}": v for k, v in stage2["params"].items()},
                                  **{f"test_{k}": v for k, v in metrics["test_pairs"].items()}})
    tracker.log_artifacts(fold_run, [out / name for name in
                                     ("metrics.json", "split.tsv", "pr_curves.png", "pr_curves.npz", "best.pt")])
    model, _ = load_model(out / "best.pt")
    tracker.log_model(fold_run, FlatInputModel(model), FlatInputModel.example(model))
    tracker.finish(fold_run)
    result = {"fold": fold, "test_pairs": metrics["test_pairs"],
              **{name: {"auprc": test[name]["auprc"], "auroc": test[name]["auroc"]} for name in RESULT_NAMES}}
    plan.storage.write_text(f"fold{fold}-test.json", json.dumps(result, indent=1))
    return result


def summary_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for result in results:
        row = {"fold": result["fold"]}
        for name in RESULT_NAMES:
            row[f"{name} AUPRC"] = round(result[name]["auprc"], 4)
            row[f"{name} AUROC"] = round(result[name]["auroc"], 4)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("fold")
    table.loc["mean"] = table.mean().round(4)
    return table


def share_data_file(plan: SweepPlan) -> str:
    """Copy the data set file into the sweep's storage once, so every node can fetch it; its URI."""
    target = f"data/{Path(plan.data).name}"
    if plan.storage.fs.get_file_info(plan.storage.path(target)).size != os.path.getsize(plan.data):
        plan.storage.fs.create_dir(plan.storage.path("data"), recursive=True)
        pafs.copy_files(plan.data, plan.storage.path(target), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=plan.storage.fs)
    return plan.storage.uri_of(target)


def _serialise_tune_registry() -> None:
    """Let Tuners start in several threads: Tune's trainable registry (one dict per process, which
    every ``Tuner.fit`` writes and flushes) is not thread-safe in Ray 2.60, so guard it by a lock."""
    from ray.tune import registry

    if getattr(registry._Registry, "_chromtune_lock", None):
        return
    lock = threading.RLock()
    for name in ("register", "flush_values"):
        method = getattr(registry._Registry, name)
        setattr(registry._Registry, name, functools.wraps(method)(
            lambda self, *a, _method=method, **k: _locked(lock, _method, self, *a, **k)))
    registry._Registry._chromtune_lock = lock


def _locked(lock, method, *args, **kwargs):
    with lock:
        return method(*args, **kwargs)


def run_fold(plan: SweepPlan, fold: int, sweep_run: str) -> dict:
    """One fold: stage-1 search, stage-2 search from its best checkpoint, the test evaluation.
    Folds may run in threads at once (Tune runs in non-main threads); each has its own MLflow client."""
    from chromtune.tracking import Tracker

    args = plan.args
    tracker = Tracker(plan.tracking_uri, plan.experiment, plan.key)
    fold_tags = {"chromtune.level": "fold", "arch": args.arch, "fold": fold, "stage": 2,
                 "paradigm": args.paradigm, "mean": args.with_mean}
    fold_run = tracker.hierarchy_run(f"{plan.key}/fold{fold}", f"fold {fold}", sweep_run, fold_tags)
    stage1 = run_stage(plan, tracker, fold, 1, fold_run, None)
    stage2 = run_stage(plan, tracker, fold, 2, fold_run, plan.storage.uri_of(stage1["checkpoint"], "best.pt"))
    result = evaluate_fold(plan, tracker, fold, fold_run, stage2)
    pairs = result["test_pairs"]
    print(f"[fold {fold}] test AUPRC model {result['model']['auprc']:.4f} | mean baseline "
          f"{result['mean_baseline']['auprc']:.4f} | RNA-weighted {result['weighted_mean_baseline']['auprc']:.4f} "
          f"({pairs['pairs']:,} pairs: every {pairs['every']} of the test bins x {pairs['cells']} cell types)",
          flush=True)
    return result


def run_sweep(plan: SweepPlan) -> pd.DataFrame:
    from chromtune.data.shared import release_shared
    from chromtune.ray_runtime import check_resources, check_shared_storage, is_multi_node, start_ray
    from chromtune.tracking import Tracker

    args = plan.args
    check_storage(plan)
    start_ray(args.address)
    check_resources(args.workers_per_trial, args.cpus_per_worker, args.gpus_per_worker)
    check_shared_storage(plan.storage)
    plan.storage.fs.create_dir(plan.storage.root, recursive=True)
    plan.local.mkdir(parents=True, exist_ok=True)
    if plan.storage.is_uri and is_multi_node():
        plan.base["data"] = share_data_file(plan)
    tracker = Tracker(plan.tracking_uri, plan.experiment, plan.key)
    if args.resume:
        killed = tracker.kill_orphans()
        print(f"resuming {plan.key}: {killed} orphaned trial run(s) marked KILLED", flush=True)
    tags = {"chromtune.level": "sweep", "arch": args.arch, "paradigm": args.paradigm, "mean": args.with_mean}
    sweep_run = tracker.hierarchy_run(plan.key, f"sweep {plan.key}", None, tags,
                                      {**{k: v for k, v in plan.base.items() if k != "data"}, "data": plan.data,
                                       "stage1_space": args.stage1_space, "stage2_space": args.stage2_space,
                                       "smoke_test": args.smoke_test})
    started = time.time()
    at_once = concurrent_folds(plan)
    if at_once == 1:
        results = [run_fold(plan, fold, sweep_run) for fold in range(args.folds)]
    else:
        print(f"{at_once} folds at a time", flush=True)
        _serialise_tune_registry()
        with ThreadPoolExecutor(at_once, thread_name_prefix="fold") as pool:
            results = list(pool.map(lambda fold: run_fold(plan, fold, sweep_run), range(args.folds)))
    table = summary_table(results)
    summary = {"summary.csv": table.to_csv(),
               "summary.md": table.to_markdown() if _has_tabulate() else table.to_string()}
    for name, text in summary.items():
        write_text(plan.local / name, text)
        if plan.storage.is_uri:
            plan.storage.write_text(name, text)
    tracker.log_artifacts(sweep_run, [plan.local / name for name in summary])
    tracker.log_metrics(sweep_run, {"wall_time_s": time.time() - started,
                                    **{f"mean_test_{n}_auprc": table.loc["mean", f"{n} AUPRC"] for n in RESULT_NAMES}})
    tracker.finish(sweep_run)
    release_shared(plan.base["data"])
    return table


def _has_tabulate() -> bool:
    """pandas' to_markdown needs the optional package tabulate."""
    return importlib.util.find_spec("tabulate") is not None
