"""The per-worker training loop for both stages, run by ``ray.train.torch.TorchTrainer``.

Each epoch: ``samples_per_epoch`` samples in ``steps_per_epoch`` batches from this worker's shard
(stage 1: training bins x training cell types, BCE summed over tasks; stage 2: (bin, training
cell type) pairs at 1 positive : 3 negatives, BCE), Adam; then the selection metric on held-out
data; then one checkpoint directory reported to Ray Train::

    state.pt   model, optimizer, epoch, sampler state, best metric so far, history (weights_only)
    best.pt    the best model so far by the selection metric (chromtune.models.checkpoint format)

Resuming from such a directory restores all of it, so an interrupted run continues with exactly
the batches, dropout masks and optimizer moments the uninterrupted run would have had: the
samplers and torch's RNG are seeded from (seed, epoch, rank), never from hidden state.

Where checkpoints come from and go is a session's job: :class:`TrainSession` inside Ray Train
workers (``ray.train.report`` / ``get_checkpoint``), :class:`FolderSession` in this process with
checkpoints kept in a folder (``--workers 0``; Ray Train's own local mode neither persists
checkpoints nor resumes), and the sweep's Tune session for single-process trials.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.nn.functional as F

from chromtune.data.encoding import one_hot
from chromtune.data.sampling import Stage1Sampler, Stage2Sampler
from chromtune.errors import UserError
from chromtune.models import build_model
from chromtune.models.checkpoint import load_model
from chromtune.io.files import absolute
from chromtune.io.storage import fetch
from chromtune.progress import Throttled
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import (UndefinedMetric, undefined_cause, unwrap, validation_metrics,
                                     validation_sample)
from chromtune.train.precision import autocast, resolve_precision
from chromtune.train.sessions import checkpoint_files
from chromtune.train.task import FoldTask

STATE_FILE = "state.pt"
BEST_FILE = "best.pt"


def read_stage1(init: str) -> dict:
    """The stage-1 best checkpoint that stage 2 starts from (a run folder or a file), read."""
    path = fetch(init)  # a sweep on a cluster hands over a URI in its shared storage
    path = path / BEST_FILE if path.is_dir() else path
    try:
        _, checkpoint = load_model(path)
    except ValueError as err:
        raise UserError(f"--init {init}: {err}") from None
    return checkpoint


def fold_identity(cfg: TrainConfig, task: FoldTask) -> dict:
    """What stage 2 must share with its stage-1 checkpoint: the training cell types (so the trunk never
    saw the fold's validation or test cell types) and the held-out chromosomes."""
    return {"train_cells": [task.dataset.cell_types[c] for c in task.fold.train],
            "test_chroms": sorted(cfg.test_chroms)}


def model_record(cfg: TrainConfig, task: FoldTask) -> dict:
    """What prediction needs beside the weights, in every best.pt (each epoch's and the run's), so that an
    epoch checkpoint of a stopped run predicts and interprets as the finished run's would: the data set's genes
    and expression transform, its cell types and place, the fold and :func:`fold_identity`."""
    ds = task.dataset
    return {"genes": list(ds.genes), "expression_transform": str(ds.attrs.get("expression_transform", "unknown")),
            "cell_types": list(ds.cell_types), "data": absolute(cfg.data),
            "fold": cfg.fold, **fold_identity(cfg, task)}


def stage1_checkpoint(init: str, cfg: TrainConfig, seq_len: int, task: FoldTask | None = None) -> dict:
    """Read and check the stage-1 checkpoint: this model, and (given ``task``) this fold's split."""
    checkpoint = read_stage1(init)
    config = checkpoint["config"]
    wanted = {"stage": 1, "arch": cfg.arch, "width": float(cfg.width), "seq_len": seq_len}
    found = {k: config.get(k) for k in wanted}
    if found != wanted:
        raise UserError(f"--init {init}: not a stage-1 checkpoint of this model (found {found}, need {wanted})")
    if task is not None:
        want = fold_identity(cfg, task)
        cells, chroms = checkpoint.get("train_cells"), checkpoint.get("test_chroms")
        if cells is None or chroms is None:
            raise UserError(f"--init {init}: records no fold (written by an older chromtune); train stage 1 again")
        if sorted(cells) != sorted(want["train_cells"]):
            held_out = sorted(set(cells) - set(want["train_cells"]))
            raise UserError(f"--init {init}: stage 1 was trained on other cell types than this fold's "
                            f"({len(held_out)} of them held out here, e.g. {', '.join(held_out[:3]) or '-'}); "
                            "use the stage-1 run of the same --fold, --folds, --split and --seed")
        if sorted(chroms) != want["test_chroms"]:
            raise UserError(f"--init {init}: stage 1 held out chromosomes {','.join(chroms) or 'none'}, this run "
                            f"{','.join(want['test_chroms']) or 'none'}; --test-chroms must match")
    return checkpoint


def build_for(cfg: TrainConfig, task: FoldTask) -> torch.nn.Module:
    """The stage's model, seeded; stage 2 takes its trunk from the stage-1 checkpoint."""
    torch.manual_seed(cfg.seed)
    ds = task.dataset
    if cfg.stage == 1:
        return build_model(cfg.arch, 1, n_tasks=len(task.fold.train), seq_len=ds.context, width=cfg.width)
    stage1 = stage1_checkpoint(cfg.init, cfg, ds.context, task)
    model = build_model(cfg.arch, 2, n_genes=ds.n_genes, with_mean=cfg.with_mean, head=cfg.head,
                        n_tasks=stage1["config"]["n_tasks"], seq_len=ds.context, width=cfg.width)
    model.load_trunk(stage1)
    if cfg.paradigm == "freeze":
        model.freeze_trunk()
    return model


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0]))


def training_mean_feature(mean: torch.Tensor, y: torch.Tensor, n_train: int, leave_one_out: bool) -> torch.Tensor:
    """The mean-accessibility input of stage-2 training pairs (bin i, training cell type j).

    ``mean`` is the fraction of the T = ``n_train`` training cell types accessible at each pair's
    bin, which counts the pair's own label ``y``. Leave-one-out gives (sum - y) / (T - 1), the mean
    over the other training cell types, so the input never contains the label it is trained to
    predict (at test time the cell type is never among those T). Without it: the reference's
    ``mean`` as is. The count is rounded back to an integer first, so flipping y leaves the value
    bit-for-bit unchanged.
    """
    if not leave_one_out:
        return mean
    return (torch.round(mean.double() * n_train) - y.double()).div(n_train - 1).to(mean.dtype)


class _Batches:
    """Turns sampler output into device tensors (:meth:`get`: the data side of a step) and a loss for
    the stage (:meth:`loss`: the forward pass, in bf16 autocast when ``bf16``)."""

    def __init__(self, cfg: TrainConfig, task: FoldTask, device: torch.device, rank: int, world_size: int,
                 bf16: bool = False):
        ds, fold = task.dataset, task.fold
        if cfg.stage == 1:
            self.sampler = Stage1Sampler(ds.labels, task.bins.train, fold.train, cfg.batch_size, cfg.seed, rank,
                                         world_size)
        else:
            self.sampler = Stage2Sampler(ds.labels, task.bins.train, fold.train, cfg.batch_size, cfg.seed, rank,
                                         world_size, cfg.pairs_per_bin)
        self.cfg, self.ds, self.device, self.n_train, self.bf16 = cfg, ds, device, len(fold.train), bf16
        if cfg.stage == 2:
            self.expression = torch.as_tensor(ds.expression, device=device)
            self.mean_access = task.mean_access  # computed per batch from the packed labels

    def get(self, epoch: int, step: int) -> tuple[torch.Tensor, ...]:
        """(windows, labels) for stage 1; (windows, expression, mean feature or None, labels) for stage 2,
        and with pairs grouped by bin (``pairs_per_bin`` > 1) (distinct windows, expression, mean feature
        or None, each pair's window index, labels): the trunk then runs once per bin."""
        batch = self.sampler.batch(epoch, step)
        y = torch.as_tensor(batch[-1], device=self.device)
        if self.cfg.stage == 1:
            return one_hot(self.ds.window_codes(batch[0]), self.device), y
        bins = batch[0]
        if self.cfg.pairs_per_bin > 1:
            bins, bin_index = np.unique(bins, return_inverse=True)
        x = one_hot(self.ds.window_codes(bins), self.device)
        mean = None
        if self.cfg.with_mean:
            feature = torch.as_tensor(self.mean_access[batch[0]], device=self.device)
            mean = training_mean_feature(feature, y, self.n_train, self.cfg.mean_feature == "loo")
        expression = self.expression[torch.as_tensor(batch[1], device=self.device)]
        if self.cfg.pairs_per_bin == 1:
            return x, expression, mean, y
        return x, expression, mean, torch.as_tensor(bin_index, device=self.device), y

    def loss(self, model, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        *inputs, y = batch
        with autocast(self.device, self.bf16):
            logits = model(*inputs)
        if self.cfg.stage == 1:
            return F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").sum(1).mean()
        return F.binary_cross_entropy_with_logits(logits.float(), y)


def _silent(done: int, total: int, phase: str) -> None:
    """No progress shown (other ranks, the sweep's trials)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrainSession:
    """Inside a Ray Train worker: rank, device and checkpoints come from Ray Train."""

    def __init__(self):
        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(model)

    def checkpoint_files(self):
        return checkpoint_files(ray.train.get_checkpoint())

    def report(self, metrics: dict, folder: Path | None, name: str) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if folder else None
        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id(), "worker_pid": os.getpid()}
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)


class FolderSession:
    """In this process, one worker; each epoch's checkpoint replaces the previous one in ``storage``."""

    rank, world_size = 0, 1

    def __init__(self, storage: Path, device: torch.device | None = None):
        self.storage = Path(storage)
        self.device = device or torch.device("cpu")

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def checkpoint_dir(self) -> Path | None:
        found = sorted(self.storage.glob(f"epoch_*/{STATE_FILE}"))
        return found[-1].parent if found else None

    def checkpoint_files(self):
        return contextlib.nullcontext(self.checkpoint_dir())

    def report(self, metrics: dict, folder: Path | None, name: str) -> None:
        previous = self.checkpoint_dir()
        self.storage.mkdir(parents=True, exist_ok=True)
        staging = self.storage / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            shutil.copytree(folder, staging)
            staging.rename(self.storage / name)
        finally:  # a stop mid-copy leaves no half-copied folder
            shutil.rmtree(staging, ignore_errors=True)
        if previous and previous.name != name:
            shutil.rmtree(previous)


PROGRESS_QUEUE = "progress_queue"  # the key of train_loop_config that carries the driver's progress queue


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point: train ``config`` (a TrainConfig dict), reporting every epoch; with a
    ``progress_queue`` (a ``ray.util.queue.Queue``), rank 0 puts its progress there once a second."""
    queue = config.get(PROGRESS_QUEUE)
    run_loop(TrainConfig.from_dict(config), TrainSession(),
             Throttled(lambda *state: queue.put_nowait(state)) if queue is not None else None)


def run_loop(cfg: TrainConfig, session, progress: Callable[[int, int, str], None] | None = None) -> None:
    """Train ``cfg``; ``session`` supplies rank, device, the checkpoint to resume and reporting.
    ``progress`` (rank 0) hears ``(batches done, batches in all epochs, phase)`` at every batch."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Denormal floats (tiny activations and Adam moments) run ~4x slower on x86 CPUs; flush them.
    torch.set_flush_denormal(True)
    rank, world_size, device = session.rank, session.world_size, session.device
    precision = resolve_precision(cfg.precision, device)  # this worker's device: bf16 is never emulated
    cfg = replace(cfg, precision=precision)
    task = FoldTask.from_config(cfg)
    model = build_for(cfg, task)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    start_epoch, best_metric, best_epoch, best_state, history = 0, -math.inf, 0, None, []
    state = best = None
    with session.checkpoint_files() as folder:
        if folder is not None:
            state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
            best = torch.load(folder / BEST_FILE, map_location="cpu", weights_only=True)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best_metric, history = state["epoch"] + 1, state["best_metric"], state["history"]
        best_state, best_epoch = best["state_dict"], best["epoch"]
    model = session.prepare(model)
    batches = _Batches(cfg, task, device, rank, world_size, bf16=precision == "bf16")
    bins, cells, _ = sample = validation_sample(task, cfg)  # fixed for the run: drawn (and grown) once
    cause = undefined_cause(task.dataset.labels[np.ix_(bins, cells)], cfg)
    if cause:  # fail before training, with the reason: a NaN metric never reaches Tune or Optuna
        raise UndefinedMetric(f"fold {cfg.fold} stage {cfg.stage}: {cause}")
    steps = cfg.steps_per_epoch
    if progress is None or rank != 0:
        progress = _silent

    for epoch in range(start_epoch, cfg.epochs):
        _seed_epoch(cfg, epoch, rank)
        model.train()
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        step_time, loss_sum = 0.0, 0.0
        phase = f"epoch {epoch + 1}/{cfg.epochs}"
        for step in range(steps):
            progress(epoch * steps + step, cfg.epochs * steps, phase)
            batch = batches.get(epoch, step)  # data gathering: outside the timed step
            _sync(device)
            started = time.perf_counter()
            loss = batches.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(device)
            step_time += time.perf_counter() - started
            loss_sum += loss.item()
        train_time = time.perf_counter() - epoch_start
        progress((epoch + 1) * steps, cfg.epochs * steps, f"{phase}: validating")
        valid = validation_metrics(model, task, cfg, device, rank, world_size, sample)
        valid_time = time.perf_counter() - epoch_start - train_time
        metric = valid["valid_auprc"]  # never NaN (validation_metrics raises UndefinedMetric instead)
        if metric > best_metric:
            best_metric = metric
            best_state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
            best_epoch = epoch + 1
        metrics = {"epoch": epoch + 1, "train_loss": loss_sum / steps, **valid,
                   "best_valid_auprc": best_metric, "train_time_s": train_time, "valid_time_s": valid_time,
                   "samples_per_s": cfg.batch_size * steps / train_time, "step_time_s": step_time}
        history.append(dict(metrics))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) if rank == 0 else None
            if folder:
                torch.save({"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch, "sampler": {"seed": cfg.seed, "next_epoch": epoch + 1},
                            "best_metric": best_metric, "history": history}, folder / STATE_FILE)
                current = unwrap(model)
                torch.save({"config": dict(current.config), "state_dict": best_state or current.state_dict(),
                            "epoch": best_epoch, "valid_auprc": best_metric, **model_record(cfg, task)},
                           folder / BEST_FILE)
            # the epoch's share outside forward + backward + optimizer step: data, validation, checkpoint
            metrics["overhead_fraction"] = 1.0 - step_time / (time.perf_counter() - epoch_start)
            # CPU seconds of this process for the epoch: on a shared machine, a steadier cost than wall time
            metrics["epoch_cpu_s"] = time.process_time() - epoch_cpu
            session.report(metrics, folder, f"epoch_{epoch + 1:04d}")
