"""Fully connected heads on top of a trunk's flat feature.

Shape contract (N = batch, F = trunk.out_features, G = genes, T = stage-1 tasks)
-------------------------------------------------------------------------------
MultiTaskHead   feat (N, F)                                  -> (N, T) logits   (stage 1)
SimpleHead      feat (N, F), expr (N, G), mean (N, 1)|None  -> (N,) logits     (stage 2)
ComplexHead     feat (N, F), expr (N, G), mean (N, 1)|None  -> (N,) logits     (stage 2)

Each hidden layer is Linear -> BatchNorm1d -> ReLU -> Dropout.

SimpleHead's first Linear acts on the concatenation in the order [feat, expr, mean]
(``input_slices`` names the column ranges), so its weight splits into a per-bin part
(feat and mean columns) and a per-cell-type part (expr columns): for genome-wide imputation the
two products can be computed once per bin and once per cell type and summed.

ComplexHead follows the reference's "complex" model: h = block(concat[feat, expr]) with
``hidden`` units; z = concat[h, s, mean(sigmoid(s)), mean?] where s = stage1(feat) are the
T logits of an embedded stage-1 head (``.stage1``, loaded together with the trunk from the
stage-1 model and frozen with it); then a block of ``COMPLEX_MIX`` = 100 units and one logit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["COMPLEX_MIX", "ComplexHead", "MultiTaskHead", "SimpleHead", "hidden_block"]

COMPLEX_MIX = 100


def hidden_block(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU -> Dropout."""
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(inplace=True),
                         nn.Dropout(dropout))


def _mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    """Two hidden blocks of `hidden` units, then a Linear to `n_out`."""
    return nn.Sequential(hidden_block(n_in, hidden, dropout), hidden_block(hidden, hidden, dropout),
                         nn.Linear(hidden, n_out))


class MultiTaskHead(nn.Module):
    """Stage-1 head: (N, F) -> (N, T) logits, one per training cell type."""

    def __init__(self, n_features: int, n_tasks: int, hidden: int = 1000, dropout: float = 0.3):
        super().__init__()
        self.mlp = _mlp(n_features, hidden, n_tasks, dropout)

    def forward(self, feat: Tensor) -> Tensor:
        return self.mlp(feat)


class SimpleHead(nn.Module):
    """Stage-2 head: one MLP over concat[feat, expr, mean?] -> (N,) logits."""

    def __init__(self, n_features: int, n_genes: int, with_mean: bool, hidden: int = 1000,
                 dropout: float = 0.3):
        super().__init__()
        n_in = n_features + n_genes + int(with_mean)
        self.input_slices = {"feat": slice(0, n_features),
                             "expr": slice(n_features, n_features + n_genes)}
        if with_mean:
            self.input_slices["mean"] = slice(n_features + n_genes, n_in)
        self.mlp = _mlp(n_in, hidden, 1, dropout)

    def forward(self, feat: Tensor, expr: Tensor, mean: Tensor | None = None) -> Tensor:
        parts = [feat, expr] if mean is None else [feat, expr, mean]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


class ComplexHead(nn.Module):
    """Stage-2 head of the reference's "complex" model (see the module docstring)."""

    def __init__(self, n_features: int, n_genes: int, n_tasks: int, with_mean: bool,
                 hidden: int = 1000, dropout: float = 0.3):
        super().__init__()
        self.stage1 = MultiTaskHead(n_features, n_tasks, hidden, dropout)
        self.joint = hidden_block(n_features + n_genes, hidden, dropout)
        self.mix = nn.Sequential(hidden_block(hidden + n_tasks + 1 + int(with_mean), COMPLEX_MIX, dropout),
                                 nn.Linear(COMPLEX_MIX, 1))

    def forward(self, feat: Tensor, expr: Tensor, mean: Tensor | None = None) -> Tensor:
        s = self.stage1(feat)
        parts = [self.joint(torch.cat([feat, expr], dim=1)), s, torch.sigmoid(s).mean(1, keepdim=True)]
        if mean is not None:
            parts.append(mean)
        return self.mix(torch.cat(parts, dim=1)).squeeze(1)
