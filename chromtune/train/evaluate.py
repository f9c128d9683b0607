"""Scoring and evaluation, always under ``torch.inference_mode`` (no autograd graphs).

    score_blocks(model, dataset, bins, expression, mean, ...) -> yields (chunk (n,), logits (n, C) tensor)
    stage1_logits(model, dataset, bins, ...)              -> (len(bins), T_train) float32
    pair_logits(model, task, bins, cells, ...)            -> (len(bins), len(cells)) float32
    validation_sample(task, cfg)                          -> (bins, cells, added) the stage's fixed sample
    validation_metrics(model, task, cfg, ...)             -> {"valid_auprc", ...}   selection metric (never NaN)
    test_bins(task, cfg)                                  -> (bins, every) the test bins scored
    test_evaluation(model, task, cfg, device)             -> {"metrics", "curves", "pairs"}
    evaluate_checkpoint(config, checkpoint)               -> test_evaluation of a best.pt (a Ray task)

Stage-2 scores go through :class:`chromtune.models.SplitHead`: the trunk runs once per bin, the
head's first layer once per bin and once per cell type, only the rest of the head per pair.

Validation is bounded: a fixed sample seeded by (seed, fold, stage), not by the trial, so every
epoch and every trial of a stage is compared on the same pairs, and its cost does not grow with the
genome (sizes in :class:`TrainConfig`; 0 = all). It is sharded over Ray Train workers (contiguous
shares of the sampled bins) and gathered.

The test evaluation streams: per block of bins, the model's logits and both baselines' scores for
the test cell types are counted by :class:`StreamingMetrics` in float16, so no score matrix is
held; labels and baselines are read for the scored bins only.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from chromtune.data.encoding import one_hot
from chromtune.data.sampling import eval_chunks
from chromtune.data.validation import GROW_POSITIVES, check_held_out, grow_sample, positives
from chromtune.errors import UserError
from chromtune.models import SplitHead
from chromtune.models.checkpoint import load_model
from chromtune.models.split import MAX_PAIRS
from chromtune.io.storage import fetch
from chromtune.train.baselines import MeanAccessibility, mean_baseline, weighted_mean_baseline
from chromtune.train.config import TrainConfig
from chromtune.train.metrics import (SCORE_DTYPE, StreamingMetrics, auprc, auroc, evaluate_scores,
                                     mean_task_auprc, thin_curve)
from chromtune.train.precision import autocast, scores_in_bf16
from chromtune.train.task import FoldTask, bin_split

RESULT_NAMES = ("model", "mean_baseline", "weighted_mean_baseline")
GROWTH_STREAM = 1  # the validation sample's growth draws from (seed, fold, stage, GROWTH_STREAM): the draw is untouched


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The chromtune model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


@torch.inference_mode()
def stage1_logits(model, dataset, bins: np.ndarray, device: torch.device, batch_size: int = 512,
                  bf16: bool = False) -> np.ndarray:
    model = unwrap(model).eval()
    out = []
    for chunk in eval_chunks(bins, batch_size):
        with autocast(device, bf16):
            out.append(model(one_hot(dataset.window_codes(chunk), device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config["n_tasks"]), np.float32)


@torch.inference_mode()
def score_blocks(model, dataset, bins: np.ndarray, expression: np.ndarray, mean: np.ndarray | None,
                 device: torch.device, batch_size: int = 512, bf16: bool = False,
                 max_pairs: int = MAX_PAIRS) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Stage-2 logits of `bins` x the C cell types of `expression` (C, G), `batch_size` bins at a time.

    Yields (chunk, logits): the chunk's bin indices and a (len(chunk), C) float32 tensor on `device`.
    `mean` is the mean accessibility of every bin of the data set (indexed by bin), or None for a
    model without the mean feature. The model is put in eval mode (in place).
    """
    model = unwrap(model).eval()
    split = SplitHead(model)
    per_cell = split.per_cell(torch.as_tensor(np.asarray(expression, dtype=np.float32), device=device))
    for chunk in eval_chunks(bins, batch_size):
        mean_chunk = None if mean is None else torch.as_tensor(np.asarray(mean[chunk], np.float32), device=device)
        with autocast(device, bf16):
            logits = split.logits(model.trunk(one_hot(dataset.window_codes(chunk), device)), mean_chunk, per_cell,
                                  max_pairs)
        yield chunk, logits.float()


def pair_logits(model, task: FoldTask, bins: np.ndarray, cells, device: torch.device, batch_size: int = 512,
                bf16: bool = False) -> np.ndarray:
    """(len(bins), len(cells)) float32 stage-2 logits for every (bin, cell type) pair."""
    cells = np.asarray(cells, dtype=np.int64)
    mean = task.mean_access if unwrap(model).config["with_mean"] else None
    out = [logits.cpu().numpy() for _, logits in
           score_blocks(model, task.dataset, bins, task.dataset.expression[cells], mean, device, batch_size, bf16)]
    return np.concatenate(out) if out else np.zeros((0, len(cells)), np.float32)


def _gather_rows(local: np.ndarray, world_size: int) -> np.ndarray:
    """Concatenate every worker's rows in rank order (the shares are contiguous, so this is bin order)."""
    if world_size == 1:
        return local
    parts = [None] * world_size
    dist.all_gather_object(parts, local)
    return np.concatenate(parts)


def validation_sample(task: FoldTask, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """(bins, cells, added) this stage validates on, sorted bins: the same for every epoch and trial.

    Stage 1: ``cfg.valid_bins`` bins of the held-out blocks x the training cell types (its tasks).
    Stage 2: ceil(``cfg.valid_pairs`` / n_valid) bins off the test chromosomes x every validation
    cell type, so the pairs keep their natural class ratio and the trunk runs once per bin.
    The sample is drawn without replacement from a generator seeded by (seed, fold, stage); a size
    of 0, or one at least the population, takes every bin. A cell type with no positive in the
    drawn sample gets up to GROW_POSITIVES of its positive bins from the same population
    (:func:`chromtune.data.validation.grow_sample`, from a generator of its own): ``added`` maps
    each such cell type to the bins it got; a sample with positives of every cell type is the draw.
    """
    fold = task.fold
    if cfg.stage == 1:
        population, cells, wanted = task.bins.valid, np.asarray(fold.train), cfg.valid_bins
    else:
        cells = np.asarray(fold.valid)
        population, wanted = task.bins.fit, math.ceil(cfg.valid_pairs / len(cells))
    bins = population
    if wanted and wanted < len(population):
        rng = np.random.default_rng([cfg.seed, cfg.fold, cfg.stage])
        bins = np.sort(population[rng.choice(len(population), wanted, replace=False)])
    bins, added = grow_sample(task.dataset.labels, np.asarray(bins, dtype=np.int64), population, cells,
                              np.random.default_rng([cfg.seed, cfg.fold, cfg.stage, GROWTH_STREAM]))
    return bins, cells.astype(np.int64), added


def growth_text(task: FoldTask, cfg: TrainConfig, bins: np.ndarray, added: dict[int, int]) -> str:
    """One line saying how the validation sample was grown (empty when it was not)."""
    if not added:
        return ""
    names = ", ".join(f"{task.dataset.cell_types[c]} +{n}" for c, n in added.items())
    return (f"fold {cfg.fold} stage {cfg.stage}: the validation sample held no positive of {len(added)} cell "
            f"type(s); grown to {len(bins):,} bins with up to {GROW_POSITIVES} of their positive bins each ({names})")


def validation_lines(dataset, folds, configs: list[TrainConfig]) -> list[str]:
    """Before any training, for each stage's config (one per stage, any fold): the warnings of
    :func:`chromtune.data.validation.check_held_out` (which raises UserError for a fold that cannot
    validate), then the line of each fold whose validation sample grows. The bins are split once
    per distinct split setting."""
    splits, lines = {}, []
    for cfg in configs:
        key = (cfg.seed, cfg.valid_fraction, tuple(cfg.test_chroms), cfg.eval_every)
        split = splits[key] = splits.get(key) or bin_split(cfg, dataset)
        lines += check_held_out(dataset, folds, split, (cfg.stage,))
        for fold in folds:
            task = FoldTask(dataset, fold, split, MeanAccessibility(dataset.labels, fold.train))
            staged = replace(cfg, fold=fold.index)
            bins, _, added = validation_sample(task, staged)
            lines += [growth_text(task, staged, bins, added)] if added else []
    return lines


class UndefinedMetric(UserError):
    """The selection metric cannot be computed: the trial fails with this reason, never reports NaN."""


def validation_metrics(model, task: FoldTask, cfg: TrainConfig, device: torch.device, rank: int = 0,
                       world_size: int = 1, sample: tuple | None = None) -> dict:
    """The selection metric on :func:`validation_sample` (or ``sample``, its result): stage 1, mean
    per-task AUPRC on held-out bins of the training cell types; stage 2, pooled AUPRC on the
    validation cell types. Raises :class:`UndefinedMetric` rather than return a NaN metric."""
    bins, cells = (sample or validation_sample(task, cfg))[:2]
    share, bf16 = np.array_split(bins, world_size)[rank], scores_in_bf16(cfg.precision, device)
    truth = task.dataset.labels[np.ix_(bins, cells)]
    if cfg.stage == 1:
        scores = _gather_rows(stage1_logits(model, task.dataset, share, device, cfg.eval_batch_size, bf16),
                              world_size)
        _check_scores(cfg, scores)
        result = {"valid_auprc": mean_task_auprc(truth, scores), "valid_pooled_auprc": auprc(truth, scores),
                  "valid_pooled_auroc": auroc(truth, scores)}
    else:
        scores = _gather_rows(pair_logits(model, task, share, cells, device, cfg.eval_batch_size, bf16),
                              world_size)
        _check_scores(cfg, scores)
        metrics = evaluate_scores(truth, scores)
        result = {"valid_auprc": metrics["auprc"], "valid_auroc": metrics["auroc"],
                  "valid_auprc_mean_per_cell": metrics["auprc_mean_per_cell"]}
    if math.isnan(result["valid_auprc"]):
        raise UndefinedMetric(f"fold {cfg.fold} stage {cfg.stage}: {undefined_cause(truth, cfg)}")
    return result


def undefined_cause(truth: np.ndarray, cfg: TrainConfig) -> str:
    """Why AUPRC is undefined on ``truth`` (the validation sample's labels), or '' when it is defined."""
    positive = np.asarray(truth).sum(axis=0)
    single = (positive == 0) | (positive == len(truth))
    if (cfg.stage == 1 and not single.all()) or (cfg.stage == 2 and 0 < positive.sum() < truth.size):
        return ""
    what = "task (training cell type)" if cfg.stage == 1 else "validation cell type"
    return (f"the validation metric is undefined: no {what} has both classes among the {len(truth):,} "
            f"validation bins ({int(positive.sum()):,} positive pairs of {truth.size:,})")


def _check_scores(cfg: TrainConfig, scores: np.ndarray) -> None:
    if not np.isfinite(scores).all():
        raise UndefinedMetric(f"fold {cfg.fold} stage {cfg.stage} lr={cfg.lr:g} batch_size={cfg.batch_size}: the "
                              "model's validation scores are not finite (training diverged; a lower --lr may help)")


def test_bins(task: FoldTask, cfg: TrainConfig) -> tuple[np.ndarray, int]:
    """(bins, every): every ``every``-th test bin (``cfg.test_every``, or when 0 the smallest step that
    keeps bins x test cell types within ``cfg.test_max_pairs``)."""
    bins, n_cells = task.bins.test, len(task.fold.test)
    every = cfg.test_every or max(1, math.ceil(len(bins) * n_cells / cfg.test_max_pairs))
    return bins[::every], every


@torch.inference_mode()
def test_evaluation(model, task: FoldTask, cfg: TrainConfig, device: torch.device) -> dict:
    """The fold's test cell types on :func:`test_bins`: the model and both baselines on the same pairs.

    Returns plain data: ``metrics`` {name: :func:`evaluate_scores`-shaped dict} for the names in
    RESULT_NAMES, ``curves`` {name: (precision, recall)} pooled and thinned, and ``pairs`` (what
    was scored: bins, cells, pairs, every, max_pairs, score_dtype).
    """
    ds, fold = task.dataset, task.fold
    bins, every = test_bins(task, cfg)
    test, train = np.asarray(fold.test), np.asarray(fold.train)
    counts = positives(ds.labels, bins, test)  # one class only: left out of the per-fraction tables too
    one_class = np.flatnonzero((counts == 0) | (counts == len(bins)))
    streams = {name: StreamingMetrics(len(test), skip=one_class) for name in RESULT_NAMES}
    mean = task.mean_access if unwrap(model).config["with_mean"] else None
    for chunk, logits in score_blocks(model, ds, bins, ds.expression[test], mean, device, cfg.eval_batch_size,
                                      scores_in_bf16(cfg.precision, device)):
        rows = ds.labels[chunk]  # (n, all cell types) uint8, this block only
        fraction = task.mean_access[chunk]
        scores = {"model": logits.to(torch.float16).cpu().numpy(),
                  "mean_baseline": mean_baseline(rows, train, test),
                  "weighted_mean_baseline": weighted_mean_baseline(rows, ds.expression, train, test)}
        for name, stream in streams.items():
            stream.add(rows[:, test], scores[name], fraction)
    curves = {}
    for name, stream in streams.items():
        precision, recall = thin_curve(*stream.curve())
        curves[name] = (precision, recall)
    return {"metrics": {name: stream.result() for name, stream in streams.items()}, "curves": curves,
            "pairs": {"bins": int(len(bins)), "cells": int(len(test)), "pairs": int(len(bins) * len(test)),
                      "every": int(every), "max_pairs": int(cfg.test_max_pairs),
                      "score_dtype": np.dtype(SCORE_DTYPE).name}}


def evaluate_checkpoint(config: dict, checkpoint: str) -> dict:
    """:func:`test_evaluation` of the model in `checkpoint` (a best.pt file or URI) on ``config``'s fold.

    Plain arguments and result, so it runs as a Ray task wherever the resources are: on a GPU when
    the task was given one, else on the CPU with ``config["threads"]`` threads.
    """
    cfg = TrainConfig.from_dict(config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(fetch(checkpoint))
    return test_evaluation(model.to(device), FoldTask.from_config(cfg), cfg, device)
