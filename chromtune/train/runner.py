"""Fitting one TrainConfig with Ray Train's TorchTrainer, and writing the run folder.

    OUT/metrics.json   config, fold split, per-epoch validation history, best epoch, and for
                       stage 2 ``test.model`` / ``test.mean_baseline`` / ``test.weighted_mean_baseline``
                       and ``test_pairs`` (the test bins, cell types and pairs scored, every k-th bin)
    OUT/best.pt        the selected model (chromtune checkpoint; stage 2 starts from a stage-1 one),
                       with what prediction needs beside the weights: ``genes``, ``expression_transform``,
                       ``train_cells``, ``cell_types``, ``data``, ``fold``
    OUT/split.tsv      the fold's cell-type split
    OUT/pr_curves.png  stage 2: precision-recall of the model and both baselines on the test pairs
    OUT/pr_curves.npz  stage 2: those curves as points, ``<name>_precision`` / ``<name>_recall`` (thinned)
    OUT/ray/           Ray Train's storage: the latest epoch checkpoint, from which --resume continues
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue

from chromtune.atomic import atomic_path, write_text
from chromtune.data.folds import split_table
from chromtune.data.sampling import check_pairs_per_bin
from chromtune.errors import UserError
from chromtune.models.checkpoint import load_model, save_model
from chromtune.io.storage import Storage
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import test_evaluation, validation_lines
from chromtune.progress import Progress
from chromtune.train.loop import (BEST_FILE, PROGRESS_QUEUE, STATE_FILE, FolderSession, model_record, run_loop,
                                  stage1_checkpoint, train_loop_per_worker)
from chromtune.train.plots import plot_curve_points
from chromtune.train.precision import resolve_precision
from chromtune.train.task import FoldTask

RUN_NAME = "train"
NOT_EVALUATED = ("test cell types not scored: choose on the validation cell types, then score the chosen "
                 "model once with --evaluate-test (the sweep does this for each fold's selected model)")


def latest_checkpoint(storage: Storage, name: str = RUN_NAME) -> Checkpoint | None:
    """The newest epoch checkpoint of Train run ``name`` in a Ray storage location, if any."""
    folders = [posixpath.dirname(p) for p in storage.find(f"/{STATE_FILE}", under=name)]
    folders = sorted((f for f in folders if posixpath.basename(f).startswith("epoch_")), key=posixpath.basename)
    return Checkpoint(storage.path(folders[-1]), filesystem=storage.fs) if folders else None


def make_trainer(cfg: TrainConfig, storage: str, workers: int = 1, use_gpu: bool = False,
                 cpus_per_worker: float = 1, max_failures: int = 0, resume: Checkpoint | None = None,
                 name: str = RUN_NAME, callbacks: list | None = None, progress_queue=None) -> TorchTrainer:
    """A TorchTrainer for ``cfg``: DDP over ``workers`` Ray Train workers; rank 0 puts its progress in
    ``progress_queue`` (a ``ray.util.queue.Queue``) when one is given."""
    resources = {"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {})}
    extra = {PROGRESS_QUEUE: progress_queue} if progress_queue is not None else {}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**cfg.to_dict(), **extra},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker=resources if workers else None),
        run_config=RunConfig(name=name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=max_failures), callbacks=callbacks),
        resume_from_checkpoint=resume,
    )


def finish_run(cfg: TrainConfig, checkpoint_dir: Path, out: Path, task: FoldTask | None = None,
               test: dict | None = None, progress: Progress | None = None) -> dict:
    """Copy the best model out, evaluate the test cell types once (stage 2) and write metrics.json.

    `test` is that evaluation when it already ran elsewhere (:func:`evaluate_checkpoint` as a Ray
    task); otherwise it runs here, on the CPU, when ``cfg.evaluate_test`` asks for it. metrics.json
    says whether the test cell types were scored (``test_evaluated``)."""
    task = task or FoldTask.from_config(cfg)
    state = torch.load(checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=True)
    model, best = load_model(checkpoint_dir / BEST_FILE)
    save_model(out / BEST_FILE, model, epoch=best["epoch"], valid_auprc=best["valid_auprc"], **model_record(cfg, task))
    split = {group: [task.dataset.cell_types[c] for c in getattr(task.fold, group)]
             for group in ("train", "valid", "test")}
    metrics = {"config": cfg.to_dict(), "split": split, "history": state["history"],
               "best_epoch": best["epoch"], "best_valid_auprc": best["valid_auprc"],
               "n_bins": {k: int(len(getattr(task.bins, k))) for k in ("train", "valid", "fit", "test")}}
    if cfg.stage == 2:
        metrics["test_evaluated"] = test is not None or cfg.evaluate_test
        if not metrics["test_evaluated"]:
            metrics["test_note"] = NOT_EVALUATED
    if cfg.stage == 2 and metrics["test_evaluated"]:
        if progress is not None and test is None:
            progress.update(phase="scoring the test cell types")
        report = test if test is not None else test_evaluation(model, task, cfg, torch.device("cpu"))
        metrics["test"], metrics["test_pairs"] = report["metrics"], report["pairs"]
        plot_curve_points({name: (*report["curves"][name], m["auprc"]) for name, m in report["metrics"].items()},
                          out / "pr_curves.png", title=f"{cfg.arch} fold {cfg.fold}: test cell types")
        points = {}
        for name, (precision, recall) in report["curves"].items():
            points[f"{name}_precision"], points[f"{name}_recall"] = precision, recall
        with atomic_path(out / "pr_curves.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **points)
    write_text(out / "split.tsv", split_table(task.fold, task.dataset.cell_types))
    write_text(out / "metrics.json", json.dumps(metrics, indent=1, default=_plain))
    return metrics


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


@contextlib.contextmanager
def progress_from_workers(progress: Progress | None) -> Iterator[Queue | None]:
    """A queue for the Ray Train worker of rank 0 to put its progress in, and a thread that hands
    it to ``progress`` (this process's line) until the context ends; None without a ``progress``."""
    if progress is None:
        yield None
        return
    queue = Queue(actor_options={"num_cpus": 0})
    done = threading.Event()

    def relay():
        while True:
            try:  # after the context: what is left, without waiting
                batches, total, phase = queue.get_nowait() if done.is_set() else queue.get(timeout=0.5)
            except Empty:
                if done.is_set():
                    return
                continue
            except Exception:  # the queue's actor is gone (Ray shutting down): no more progress
                return
            progress.update(done=batches, total=total, phase=phase, unit="batches")

    thread = threading.Thread(target=relay, name="chromtune-train-progress", daemon=True)
    thread.start()
    try:
        yield queue
    finally:
        done.set()
        thread.join()
        queue.shutdown()


def run_training(cfg: TrainConfig, out: str | Path, workers: int = 1, use_gpu: bool = False,
                 cpus_per_worker: float = 1, resume: bool = False, max_failures: int = 0,
                 progress: Progress | None = None, start: Callable[[], None] | None = None) -> dict:
    """Train ``cfg`` through Ray Train, then write the run folder; returns metrics.json's content.
    ``progress``: the line that shows the batches done, the phase and the time left; ``start``: runs
    (with Ray workers) once the data, fold and --out are checked (the command starts Ray there).
    ``cfg.precision`` auto is resolved here for the workers' device, so the run records the choice."""
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, torch.device("cuda" if use_gpu else "cpu")))
    out = Path(out).resolve()
    task = FoldTask.from_config(cfg)  # bad data, folds or chromosomes fail here, before Ray starts
    for line in validation_lines(task.dataset, [task.fold], [cfg]):  # a fold that cannot validate: one line
        print(f"chromtune: warning: {line}", file=sys.stderr, flush=True)
    if cfg.stage == 2:
        check_pairs_per_bin(cfg.pairs_per_bin, [task.fold])
        stage1_checkpoint(cfg.init, cfg, task.dataset.context, task)
    storage = out / "ray"
    previous = latest_checkpoint(Storage(str(storage)))
    if previous and not resume:
        raise UserError(f"--out {out}: holds an earlier run; pass --resume to continue it or choose another folder")
    if resume and previous is None:
        raise UserError(f"--resume: {out} holds no checkpoint to resume from")
    if workers and start is not None:
        start()
    out.mkdir(parents=True, exist_ok=True)
    if workers == 0:
        session = FolderSession(storage / RUN_NAME, torch.device("cuda") if use_gpu else None)
        run_loop(cfg, session, progress and (lambda batches, total, phase: progress.update(
            done=batches, total=total, phase=phase, unit="batches")))
        return finish_run(cfg, session.checkpoint_dir(), out, task, progress=progress)
    if progress is not None:
        progress.update(phase=f"starting {workers} Ray Train worker{'s' if workers > 1 else ''}")
    with progress_from_workers(progress) as queue:
        result = make_trainer(cfg, str(storage), workers, use_gpu, cpus_per_worker, max_failures, previous,
                              progress_queue=queue).fit()
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    with result.checkpoint.as_directory() as folder:  # no copy of a local checkpoint, none left in /tmp
        return finish_run(cfg, Path(folder), out, task, progress=progress)
