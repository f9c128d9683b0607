"""The sweep driver: one sweep per (--arch, --paradigm), each from its start or ``--resume`` to its end.

Order: plans validated -> finished sweeps named and left alone -> every sweep's lease taken (one
driver per sweep) -> storage checked -> the MLflow store created -> signals installed -> Ray ->
the folds (one after another in this process, or several at once, each in a process of its own)
-> the summary, and ``done.json``, the sweep's last write.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from chromtune.atomic import write_text
from chromtune.data.folds import roles_table
from chromtune.errors import UserError
from chromtune.sweep.fold import RESULT_NAMES, fold_process, run_fold, share_data_file
from chromtune.sweep.lease import Lease
from chromtune.sweep.plan import (DONE_MARKER, SweepPlan, check_storage, concurrent_folds, holds_sweep, is_finished,
                                 plan_sweep, write_plan)
from chromtune.sweep.settings import SweepSettings, command_flags
from chromtune.sweep.progress import Progress, relay, say
from chromtune.sweep.signals import EXIT_INTERRUPTED, STOP, Interrupted
from chromtune.sweep.summary import FoldModel, closing_text, seeds_text, storage_bytes, summary_table


def sweep_command(sweeps: list[SweepSettings], resume: bool = False) -> str:
    """The command that runs these sweeps with the settings they run with (``resume``: the one that
    continues them, with --resume and without --force)."""
    prog = "chromtune sweep" if Path(sys.argv[0]).name == "chromtune" else "python -m chromtune.sweep"
    if resume:
        sweeps = [replace(s, resume=True, force=False) for s in sweeps]
    return " ".join([prog, shlex.join(command_flags(sweeps))]).strip()


def run_folds(plan: SweepPlan, sweep_run: str, progress: Progress) -> list[dict]:
    """Every fold: in this process one after another, or ``concurrent_folds`` at once, each in a
    process of its own (Tune runs one experiment per process, in its main thread) whose lines and
    trial events reach ``progress`` through a queue."""
    at_once = concurrent_folds(plan)
    if at_once == 1:
        return [run_fold(plan, fold, sweep_run) for fold in range(plan.n_folds)]
    import multiprocessing

    import ray

    say(f"{at_once} folds at a time, each in a process of its own")
    context = multiprocessing.get_context("spawn")
    address = ray.get_runtime_context().gcs_address
    events = context.Queue()
    events.cancel_join_thread()  # this process never waits at exit on a queue a killed fold may have left locked
    reader = relay(events, progress)
    waiting, running, stopped, failed = list(range(plan.n_folds)), {}, [], []
    STOP.on_exit.append(lambda: [proc.kill() for proc in running.values()])
    forwarded = False
    try:
        while running or (waiting and not STOP.requested):
            while waiting and len(running) < at_once and not STOP.requested:
                fold = waiting.pop(0)
                running[fold] = context.Process(target=fold_process,
                                                args=(plan, fold, sweep_run, address, os.getpid(), events),
                                                name=f"chromtune-fold{fold}")
                running[fold].start()
            if STOP.requested and not forwarded:
                for proc in running.values():
                    proc.terminate()  # SIGTERM: the fold stops as the driver would
                forwarded = True
            for fold, proc in list(running.items()):
                proc.join(timeout=0.2)
                if proc.exitcode is not None:
                    del running[fold]
                    (stopped if proc.exitcode == EXIT_INTERRUPTED else failed if proc.exitcode else []).append(fold)
    finally:
        events.put(None)  # after every fold process has ended: their events are all in the queue
        reader.join(timeout=10)
    if failed and all(fold in progress.errors for fold in failed):
        raise UserError("; ".join(progress.errors[fold] for fold in sorted(failed)))
    if failed:
        raise RuntimeError(f"fold(s) {', '.join(map(str, failed))} failed; see their lines above")
    if stopped or waiting:
        raise Interrupted(f"fold(s) {', '.join(map(str, sorted(stopped + waiting)))} not finished")
    return [json.loads(plan.storage.read_text(f"fold{fold}-test.json")) for fold in range(plan.n_folds)]


def earlier_progress(plan: SweepPlan, tracker) -> tuple[set, dict, set]:
    """What earlier drivers of this sweep finished (``--resume``): stages, trials, folds."""
    folds = range(plan.n_folds)
    stages = {(fold, stage) for fold in folds for stage in plan.spaces
              if plan.storage.exists(f"fold{fold}-stage{stage}.json")}
    return stages, tracker.finished_trials_by_stage(), {f for f in folds if plan.storage.exists(f"fold{f}-test.json")}


def run_sweep(plan: SweepPlan) -> tuple[pd.DataFrame, str]:
    """One sweep from its start or --resume to its end, under a live progress line; its summary
    table and closing text."""
    from chromtune.data.shared import release_shared
    from chromtune.sweep.ray_runtime import check_resources, check_shared_storage, is_multi_node, start_ray
    from chromtune.tracking import Tracker, is_default_store

    s = plan.settings
    start_ray(s.address)
    STOP.install(STOP.resume_hint)  # ray.init replaced the SIGTERM handler with its own exit
    check_resources(s.workers_per_trial, s.cpus_per_worker, s.gpus_per_worker)
    check_shared_storage(plan.storage)
    write_plan(plan)  # what a --resume compares its settings with
    plan.local.mkdir(parents=True, exist_ok=True)
    if plan.storage.is_uri and is_multi_node():
        plan.base["data"] = share_data_file(plan)
    tracker = Tracker(plan.tracking_uri, plan.experiment, plan.key)
    if s.resume:
        killed = tracker.kill_orphans()
        print(f"resuming {plan.key}: {killed} orphaned trial run(s) marked KILLED", flush=True)
    tags = {"chromtune.level": "sweep", "arch": s.arch, "paradigm": s.paradigm, "mean": s.with_mean}
    smoke = ", smoke test" if s.smoke_test else ""
    sweep_run = tracker.hierarchy_run(plan.key, f"{plan.label} sweep, {plan.n_folds} folds{smoke} ({plan.key})", None,
                                      tags,
                                      {**{k: v for k, v in plan.base.items() if k != "data"}, "data": plan.data,
                                       "stage1_space": s.stage1_space, "stage2_space": s.stage2_space,
                                       "smoke_test": s.smoke_test, "early_stopping": s.early_stopping})
    started = time.time()
    progress = Progress(plan.n_folds, {stage: space.num_samples for stage, space in plan.spaces.items()}, plan.label)
    if s.resume:
        progress.seed(*earlier_progress(plan, tracker))
    STOP.on_exit.append(progress.clear)
    try:
        with progress:
            results = run_folds(plan, sweep_run, progress)
    except Interrupted:
        tracker.finish(sweep_run, "KILLED")
        raise
    table = summary_table(results)
    roles = roles_table(plan.folds, plan.cell_types)
    summary = {"summary.csv": table.to_csv(),
               "summary.md": (table.to_markdown() if _has_tabulate() else table.to_string())
               + "\n\nEach cell type's role per fold:\n\n" + roles,
               "folds.tsv": roles}
    for name, text in summary.items():
        write_text(plan.local / name, text)
        if plan.storage.is_uri:
            plan.storage.write_text(name, text)
    tracker.log_artifacts(sweep_run, [plan.local / name for name in summary])
    tracker.log_metrics_once(sweep_run, {"wall_time_s": time.time() - started,
                                         **{f"mean_test_{n}_auprc": table.loc["mean", f"{n} AUPRC"]
                                            for n in RESULT_NAMES}})
    tracker.finish(sweep_run)
    release_shared(plan.base["data"])
    plan.storage.write_text(DONE_MARKER, json.dumps({"sweep_run": sweep_run, "finished": time.time()}))
    return table, closing_text(plan.key, table, [fold_model(plan, tracker, result["fold"]) for result in results], sweep_run,
                        plan.storage.uri, storage_bytes(plan.storage), plan.tracking_uri, plan.experiment,
                        is_default_store(plan.tracking_uri), tracker.experiment_id)


def fold_model(plan: SweepPlan, tracker, fold: int) -> FoldModel:
    """Where fold ``fold``'s selected model is: its MLflow fold run, its best.pt, its parameters."""
    name = f"fold{fold}-selected"
    best = plan.storage.uri_of(name, "best.pt") if plan.storage.is_uri else str(plan.local / name / "best.pt")
    stage2 = json.loads(plan.storage.read_text(f"fold{fold}-stage2.json") or "{}")
    return FoldModel(fold, tracker.run_id(f"{plan.key}/fold{fold}") or "?", best, stage2.get("params", {}))


def fold_roles_text(plan: SweepPlan) -> str:
    """Each fold's test and validation cell types (the rest train); folds.tsv lists every role."""
    names = plan.cell_types
    lines = ["cell types per fold (every cell type is tested once; the rest of each fold trains; folds.tsv):"]
    for fold in plan.folds:
        lines.append(f"  fold {fold.index}: test {', '.join(names[c] for c in fold.test)}; "
                     f"valid {', '.join(names[c] for c in fold.valid)}")
    return "\n".join(lines)


def _has_tabulate() -> bool:
    """pandas' to_markdown needs the optional package tabulate."""
    return importlib.util.find_spec("tabulate") is not None


def print_seeds(plans: list[SweepPlan], tables: dict) -> None:
    """For each sweep run at several seeds: its test AUPRC over the seeds and the folds beaten at
    each (a seed that finished before this call: its stored summary)."""
    groups: dict[str, dict[int, pd.DataFrame]] = {}
    for plan in plans:
        text = None if plan.key in tables else plan.storage.read_text("summary.csv")
        table = tables.get(plan.key) if text is None else pd.read_csv(io.StringIO(text), index_col=0)
        if table is not None:
            groups.setdefault(plan.label, {})[plan.settings.seed] = table
    for label, by_seed in groups.items():
        if len(by_seed) > 1:
            print(f"\n{seeds_text(label, by_seed)}", flush=True)


def run_sweeps(sweeps: list[SweepSettings]) -> tuple[int, dict]:
    """Every sweep planned, then each run, then their comparison. Returns the exit status (130 after
    a stop, with one line saying how to continue) and each finished sweep's summary table by key."""
    from chromtune.sweep.signals import quiet_libraries

    quiet_libraries()
    plans = [plan_sweep(settings) for settings in sweeps]
    hint = sweep_command(sweeps, resume=True)
    todo, tables = [], {}
    for plan in plans:
        if plan.settings.resume and is_finished(plan):
            print(f"sweep {plan.key} finished already; nothing to resume ({plan.storage.uri})", flush=True)
        else:
            todo.append(plan)
    begun = [plan for plan in plans if plan.settings.resume and holds_sweep(plan)]
    if begun:  # one command of several sweeps (--seeds, several --arch): those it had not reached start now
        for plan in todo:
            if plan not in begun:
                print(f"sweep {plan.key} was not begun before the stop; it starts now", flush=True)
                plan.settings = replace(plan.settings, resume=False)
    leases: list[Lease] = []
    STOP.on_exit.append(lambda: [lease.release() for lease in leases])
    current = None
    try:
        for plan in todo:
            leases.append(Lease(plan.storage, sweep_command(sweeps),
                                on_lost=lambda who: STOP.request(f"another driver took the sweep over: {who}")))
            leases[-1].acquire(plan.settings.resume, plan.settings.force)
        for plan in todo:
            check_storage(plan)
        if todo:
            from chromtune.tracking import prepare_store

            prepare_store(plans[0].tracking_uri)
        STOP.install(hint)
        for plan in todo:
            current = plan
            STOP.check(f"sweep {plan.key} (not started)")
            stopping = "early stopping (ASHA)" if any(s.asha for s in plan.spaces.values()) else "no early stopping"
            print(f"sweep {plan.key}: {plan.n_folds} folds x 2 stages, {plan.spaces[1].num_samples} + "
                  f"{plan.spaces[2].num_samples} trials per fold, {stopping}\n  storage {plan.storage.uri}\n"
                  f"  MLflow {plan.tracking_uri}, experiment {plan.experiment}", flush=True)
            tables[plan.key], closing = run_sweep(plan)
            print(fold_roles_text(plan))
            print(f"\n{closing}", flush=True)
    except Interrupted as stop:
        why = f" ({STOP.reason})" if STOP.reason.startswith("another driver") else ""
        print(f"chromtune: interrupted{why}: sweep {current.key}: {stop}; continue with: {hint}",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED, tables
    finally:
        for lease in leases:
            lease.release()
    print_seeds(plans, tables)
    if len({plan.label for plan in plans}) > 1 and todo:  # seeds of one sweep are summarised, not compared
        from chromtune.compare import run_compare
        from chromtune.compare.report import verdict_text

        out = Path("comparison") / plans[0].experiment
        report = run_compare(plans[0].tracking_uri, plans[0].experiment, out, sweeps=[plan.key for plan in plans])
        print(f"\ncomparison of {len(plans)} sweeps (tables, figures and report.md in {out}):\n{verdict_text(report)}")
    return 0, tables
