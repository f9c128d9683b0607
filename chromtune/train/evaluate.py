"""Scoring and evaluation, always under ``torch.inference_mode`` (no autograd graphs).

    stage1_logits(model, dataset, bins, ...)              -> (len(bins), T_train) float32
    pair_logits(model, task, bins, cells, ...)            -> (len(bins), len(cells)) float32
    validation_metrics(model, task, cfg, ...)             -> {"valid_auprc", ...}   selection metric
    test_report(model, task, ...)                         -> {"model", "mean_baseline",
                                                              "weighted_mean_baseline"}: metrics
                                                             on the same test pairs, + score arrays

``pair_logits`` runs the trunk once per bin and only the head once per (bin, cell type) pair.
Validation is sharded over Ray Train workers (contiguous shares of the bins) and gathered.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist

from chromtune.data.encoding import one_hot
from chromtune.data.sampling import eval_chunks
from chromtune.train.baselines import mean_baseline, weighted_mean_baseline
from chromtune.train.config import TrainConfig
from chromtune.train.metrics import auprc, auroc, evaluate_scores, mean_task_auprc
from chromtune.train.task import FoldTask


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The chromtune model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on a GPU when asked; float32 everywhere else."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
def pair_logits(model, task: FoldTask, bins: np.ndarray, cells, device: torch.device, batch_size: int = 512,
                bf16: bool = False) -> np.ndarray:
    """Stage-2 logits for every (bin, cell type) pair; the trunk runs once per bin."""
    model = unwrap(model).eval()
    cells = np.asarray(cells, dtype=np.int64)
    expr = torch.as_tensor(task.dataset.expression[cells], device=device)
    mean_access = torch.as_tensor(task.mean_access, device=device)
    out = []
    for chunk in eval_chunks(bins, max(1, batch_size // len(cells))):
        with autocast(device, bf16):
            feat = model.trunk(one_hot(task.dataset.window_codes(chunk), device))
            rows = len(chunk) * len(cells)
            mean = mean_access[torch.as_tensor(chunk, device=device)].repeat_interleave(len(cells)).view(rows, 1)
            logits = model.head(feat.repeat_interleave(len(cells), dim=0), expr.repeat(len(chunk), 1),
                                mean if model.config["with_mean"] else None)
        out.append(logits.float().view(len(chunk), len(cells)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(cells)), np.float32)


def _gather_rows(local: np.ndarray, world_size: int) -> np.ndarray:
    """Concatenate every worker's rows in rank order (the shares are contiguous, so this is bin order)."""
    if world_size == 1:
        return local
    parts = [None] * world_size
    dist.all_gather_object(parts, local)
    return np.concatenate(parts)


def validation_metrics(model, task: FoldTask, cfg: TrainConfig, device: torch.device, rank: int = 0,
                       world_size: int = 1) -> dict:
    """The selection metric: stage 1, mean per-task AUPRC on held-out bin blocks of the training cell
    types; stage 2, pooled AUPRC on the validation cell types."""
    fold, labels = task.fold, task.dataset.labels
    if cfg.stage == 1:
        bins = task.bins.valid
        share = np.array_split(bins, world_size)[rank]
        scores = _gather_rows(stage1_logits(model, task.dataset, share, device, cfg.eval_batch_size, cfg.bf16),
                              world_size)
        truth = labels[np.ix_(bins, fold.train)]
        return {"valid_auprc": mean_task_auprc(truth, scores), "valid_pooled_auprc": auprc(truth, scores),
                "valid_pooled_auroc": auroc(truth, scores)}
    bins = task.bins.fit
    share = np.array_split(bins, world_size)[rank]
    scores = _gather_rows(pair_logits(model, task, share, fold.valid, device, cfg.eval_batch_size, cfg.bf16),
                          world_size)
    truth = labels[np.ix_(bins, fold.valid)]
    return {"valid_auprc": auprc(truth, scores), "valid_auroc": auroc(truth, scores),
            "valid_auprc_mean_per_cell": float(np.nanmean([auprc(truth[:, j], scores[:, j])
                                                           for j in range(truth.shape[1])]))}


def test_report(model, task: FoldTask, device: torch.device, batch_size: int = 512, bf16: bool = False) -> dict:
    """The fold's test cell types over its test bins: the model and both baselines on the same pairs."""
    ds, fold, bins = task.dataset, task.fold, task.bins.test
    truth = ds.labels[np.ix_(bins, fold.test)]
    train_fraction = task.mean_access[bins]
    scores = {
        "model": pair_logits(model, task, bins, fold.test, device, batch_size, bf16),
        "mean_baseline": mean_baseline(ds.labels, fold.train, fold.test)[bins],
        "weighted_mean_baseline": weighted_mean_baseline(ds.labels, ds.expression, fold.train, fold.test)[bins],
    }
    metrics = {name: evaluate_scores(truth, s, train_fraction) for name, s in scores.items()}
    return {"metrics": metrics, "labels": truth, "scores": scores}
