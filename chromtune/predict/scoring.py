"""Scoring bins through the split head (the fast path), for one model or the mean of a fold ensemble.

The trunk runs once per bin, the stage-2 head's first layer is split into a per-bin and a per-cell-type
product (:class:`chromtune.models.SplitHead`), and only the rest of the head runs per (bin, cell type)
pair, so an extra cell type costs the rest of the head, not the trunk. Training's validation and test
evaluation score the same way (:func:`chromtune.train.evaluate.score_blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from chromtune.data.dataset import Dataset
from chromtune.models.split import MAX_PAIRS
from chromtune.train.evaluate import score_blocks

PAIR_ROWS = MAX_PAIRS  # (bin, cell type) pairs per pass through the rest of the head


@dataclass
class Member:
    """One model of a (possibly one-model) ensemble, ready to score: the model in eval mode, its
    checkpoint's metadata, and its mean-accessibility feature over the data set's bins (None for a
    model without that feature)."""

    model: torch.nn.Module
    meta: dict
    mean: np.ndarray | None


@torch.inference_mode()
def predict_accessibility(model, dataset: Dataset, expression: np.ndarray, bins: np.ndarray,
                          mean: np.ndarray | None, batch_size: int = 512, device="cpu",
                          bf16: bool = False) -> np.ndarray:
    """(len(bins), C) float32 probabilities for every (bin, cell type) pair: the fast path.

    `expression` is (C, G) in the model's gene order, already transformed; `bins` index the data
    set's bins; `mean` is the (dataset.n_bins,) mean accessibility over the model's training cell
    types (:func:`chromtune.train.baselines.mean_accessibility`), or None for a model without the
    mean feature. The trunk runs once per bin in batches of `batch_size` bins. The model is moved
    to `device` and put in eval mode (in place); `bf16` scores under bf16 autocast (a resolved precision:
    :func:`chromtune.train.precision.resolve_precision`). Raises ValueError for inconsistent inputs.
    """
    config = model.config
    expression = np.asarray(expression, dtype=np.float32)
    bins = np.asarray(bins, dtype=np.int64)
    if config.get("stage") != 2:
        raise ValueError("predict_accessibility needs a stage-2 model")
    if expression.ndim != 2 or expression.shape[1] != config["n_genes"] or not len(expression):
        raise ValueError(f"expression has shape {expression.shape}, expected (C >= 1, {config['n_genes']})")
    if dataset.context != config["seq_len"]:
        raise ValueError(f"the data set's windows are {dataset.context} bp, the model takes {config['seq_len']} bp")
    if (mean is None) == config["with_mean"]:
        raise ValueError("this model takes the mean-accessibility feature: pass mean" if mean is None
                         else "this model takes no mean-accessibility feature: mean must be None")
    if mean is not None and np.shape(mean) != (dataset.n_bins,):
        raise ValueError(f"mean has shape {np.shape(mean)}, expected ({dataset.n_bins},)")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    device = torch.device(device)
    model = model.to(device).eval()
    out = np.empty((len(bins), len(expression)), dtype=np.float32)
    done = 0
    for chunk, logits in score_blocks(model, dataset, bins, expression, mean, device, batch_size, bf16,
                                      max_pairs=PAIR_ROWS):
        out[done:done + len(chunk)] = torch.sigmoid(logits).cpu().numpy()
        done += len(chunk)
    return out


def predict_ensemble(members: Sequence[Member], dataset: Dataset, expression: np.ndarray, bins: np.ndarray,
                     batch_size: int = 512, device="cpu", bf16: bool = False) -> np.ndarray:
    """(len(bins), C) float32: the mean over `members` of :func:`predict_accessibility`, a fold
    ensemble's probabilities (one member: its own)."""
    total = None
    for member in members:
        p = predict_accessibility(member.model, dataset, expression, bins, member.mean, batch_size, device, bf16)
        total = p if total is None else total + p
    return total / len(members)
