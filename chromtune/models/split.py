"""The stage-2 head split into a per-bin and a per-cell-type part: many cell types cost about one.

Scoring n bins in C cell types with the plain forward pass runs the trunk and the whole head
n x C times. The split head runs the trunk once per bin, and the head's first Linear (which acts
on concat[feat, expr, mean]) as one product per bin plus one per cell type; only the rest of the
head runs per (bin, cell type) pair. predict, stage-2 validation and the test evaluation all score
through it.

Shape contract (n = bins, C = cell types, F = trunk.out_features, G = genes, H = hidden units,
T = stage-1 tasks of the complex head)::

    split = SplitHead(model)                   model: a Stage2Model in eval mode
    c     = split.per_cell(expr)               expr (C, G) float          -> (C, H)
    b     = split.per_bin(feat, mean)          feat (n, F) = model.trunk(x),
                                               mean (n,) or (n, 1) float iff with_mean, else None
                                                                          -> tuple of (n, ...) tensors
    z     = split.pairs(b, c)                  -> (n, C) logits, z[i, j] = model(x[i], expr[j], mean[i])
    z     = split.logits(feat, mean, c)        the same, in passes of at most ``max_pairs`` pairs

Simple head: a = feat W_feat^T (+ mean w_mean^T) per bin, c = expr W_expr^T + b per cell type,
then BN(a_i + c_j) -> ReLU -> ... -> logit per pair. Complex head: its ``joint`` Linear splits the
same way, and the first Linear of its ``mix`` block into the columns of the joint block's output
(per pair) and those of the stage-1 logits, their mean sigmoid and the mean feature (per bin).

Exact in eval mode only (BatchNorm is then a fixed affine map per unit; training-mode BatchNorm
would normalise over a different batch), so every method raises ValueError while the model is in
training mode. Results equal the plain forward pass up to float rounding. The weights are sliced
when the split is built: build a new one after the model's weights change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .heads import ComplexHead, SimpleHead

__all__ = ["MAX_PAIRS", "SplitHead"]

MAX_PAIRS = 1 << 14  # (bin, cell type) pairs per pass through the per-pair rest of the head


def _columns(weight: Tensor, columns: slice) -> Tensor:
    """A contiguous copy of some input columns of a Linear's weight (a fast operand for F.linear)."""
    return weight.detach()[:, columns].contiguous()


class SplitHead:
    """A Stage2Model's head as per-bin and per-cell-type products (see the module docstring)."""

    def __init__(self, model: nn.Module):
        head = getattr(model, "head", None)
        if not isinstance(head, (SimpleHead, ComplexHead)):
            raise ValueError("SplitHead needs a stage-2 model (simple or complex head)")
        self.model, self.with_mean = model, bool(model.config["with_mean"])
        if isinstance(head, SimpleHead):
            first, columns = head.mlp[0][0], head.input_slices
            self.w_feat = _columns(first.weight, columns["feat"])
            self.w_expr = _columns(first.weight, columns["expr"])
            self.w_mean = _columns(first.weight, columns["mean"]) if self.with_mean else None
            self.bias = first.bias.detach()
            self.rest = nn.Sequential(*head.mlp[0][1:], *head.mlp[1:])  # BN, ReLU, Dropout, block 2, output
            self.stage1 = None
        else:
            joint, mix = head.joint[0], head.mix[0][0]
            n_features = model.trunk.out_features
            self.w_feat = _columns(joint.weight, slice(0, n_features))
            self.w_expr = _columns(joint.weight, slice(n_features, None))
            self.bias = joint.bias.detach()
            self.joint_rest = head.joint[1:]
            self.w_mix_pair = _columns(mix.weight, slice(0, joint.out_features))
            self.w_mix_bin = _columns(mix.weight, slice(joint.out_features, None))
            self.b_mix = mix.bias.detach()
            self.rest = nn.Sequential(*head.mix[0][1:], head.mix[1])
            self.stage1 = head.stage1

    def _check_eval(self) -> None:
        if self.model.training:
            raise ValueError("the split head equals the plain forward pass in eval mode only: call model.eval()")

    def per_cell(self, expr: Tensor) -> Tensor:
        """(C, G) expression -> (C, H): the cell types' share of the first layer, bias included."""
        self._check_eval()
        return F.linear(expr, self.w_expr, self.bias)

    def per_bin(self, feat: Tensor, mean: Tensor | None = None) -> tuple[Tensor, ...]:
        """(n, F) trunk features (and (n,) mean accessibility iff the model takes it) -> per-bin parts."""
        self._check_eval()
        if (mean is None) == self.with_mean:
            raise ValueError("this model takes the mean-accessibility feature: pass mean" if mean is None
                             else "this model takes no mean-accessibility feature: mean must be None")
        mean = None if mean is None else mean.reshape(-1, 1).to(feat.dtype)
        a = F.linear(feat, self.w_feat)
        if self.stage1 is None:
            return (a if mean is None else a + F.linear(mean, self.w_mean),)
        s = self.stage1(feat)
        parts = [s, torch.sigmoid(s).mean(1, keepdim=True)] + ([] if mean is None else [mean])
        return a, F.linear(torch.cat(parts, dim=1), self.w_mix_bin, self.b_mix)

    def pairs(self, per_bin: tuple[Tensor, ...], per_cell: Tensor) -> Tensor:
        """(n, C) logits of every pair of the bins of `per_bin` and the cell types of `per_cell`."""
        self._check_eval()
        a, n, c = per_bin[0], len(per_bin[0]), len(per_cell)
        h1 = (a[:, None, :] + per_cell[None]).reshape(n * c, -1)
        if self.stage1 is None:
            return self.rest(h1).view(n, c)
        z = F.linear(self.joint_rest(h1), self.w_mix_pair).view(n, c, -1) + per_bin[1][:, None, :]
        return self.rest(z.reshape(n * c, -1)).view(n, c)

    def logits(self, feat: Tensor, mean: Tensor | None, per_cell: Tensor, max_pairs: int = MAX_PAIRS) -> Tensor:
        """:meth:`pairs` of ``per_bin(feat, mean)``, in passes of at most `max_pairs` pairs (bounds memory)."""
        per_bin = self.per_bin(feat, mean)
        step = max(1, max_pairs // max(1, len(per_cell)))
        return torch.cat([self.pairs(tuple(p[lo:lo + step] for p in per_bin), per_cell)
                          for lo in range(0, len(feat), step)]) if len(feat) else feat.new_zeros(0, len(per_cell))
