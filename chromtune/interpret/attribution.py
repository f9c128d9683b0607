"""Gradient x input contribution scores of a stage-2 model, with each cell type's expression held fixed.

For a window x (one-hot, 4 x L) and a cell type j (expression e_j, and the bin's mean accessibility
m when the model takes it), the model's logit f(x, e_j, m) is differentiated with respect to x
only. The gradient g is centred over the four bases at each position (Majdandzic et al., Genome
Biology 2023: the part of g along the all-ones direction is an artefact of the one-hot simplex and
has no meaning), giving the *hypothetical contributions*

    h[b, l] = g[b, l] - mean_b' g[b', l]       what base b at position l would contribute

and the *contributions* ``h * x`` (only the base present is nonzero). Their sum over positions is
``g . (x - 1/4)``: gradient x (input - uniform background). TF-MoDISco takes the pair (one-hot,
hypothetical contributions).

``steps``: with 1, g is the gradient at the input (plain gradient x input). A trained network is
often saturated there: a site with two or three strong motif copies sits on a plateau of the
logit, and the local gradient is small and of mixed sign. With ``steps = m > 1`` g is the mean of
the gradients at ``u + (k/m)(x - u)``, k = 1..m, on the straight path from the uniform background
u = 1/4 to the input (the right Riemann sum of integrated gradients, Sundararajan et al. 2017),
so ``sum(h * x)`` approximates f(x) - f(u). On the demo data set's trained ResNet, the mean
contribution per planted-motif base over that of background bases rose from 0.0-0.9 (steps 1)
to 1.4-3.8 (steps 8-16) for eight of the nine motifs.

Shape contract (B windows, C cell types, L = window length, G genes)::

    input_gradients(model, x (B,4,L), expression (C,G), mean (B,)|None)  -> (B, C, 4, L) float32
    centre_bases(gradients (..., 4, L))                                -> same shape, mean over bases 0
    hypothetical_contributions(model, dataset, bins (n,), expression (C,G), mean (n_bins,)|None, steps)
                                                                       -> (n, C, 4, L) float32
    contributions(hypothetical (..., 4, L), codes (..., L) uint8)      -> (..., L) float32 per position
    span_contributions(model, dataset, bins (K,), starts (K,), ends (K,), expression (C,G), mean, steps)
                                                                       -> (K, C) float32 summed over each span

The trunk runs once per window and path point; each cell type costs one backward pass through it
(the head's input changes with the expression, so does the trunk's gradient). A sum of
contributions over a span is a directional derivative, along (x - 1/4) restricted to the span:
:func:`span_contributions` gets it by forward-mode differentiation, one trunk pass per span and
path point whatever the number of cell types, and only the small head once per cell type.
BatchNorm and dropout are in eval mode: the scores are those of the deployed model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import jvp

from chromtune.data.encoding import one_hot


def input_gradients(model, x: torch.Tensor, expression: torch.Tensor, mean: torch.Tensor | None) -> torch.Tensor:
    """(B, C, 4, L) gradient of the logit of every (window, cell type) pair with respect to the window."""
    n, n_cells = x.shape[0], expression.shape[0]
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        feat = model.trunk(x)
        mean_rows = None if mean is None else mean.reshape(n, 1).repeat_interleave(n_cells, dim=0)
        logits = model.head(feat.repeat_interleave(n_cells, dim=0), expression.repeat(n, 1),
                            mean_rows).view(n, n_cells)
        grads = []
        for j in range(n_cells):
            (grad,) = torch.autograd.grad(logits[:, j].sum(), x, retain_graph=j < n_cells - 1)
            grads.append(grad)
    return torch.stack(grads, dim=1)


def centre_bases(gradients: np.ndarray | torch.Tensor):
    """Subtract the mean over the base axis (-2) at every position."""
    return gradients - gradients.mean(-2, keepdims=True) if isinstance(gradients, np.ndarray) \
        else gradients - gradients.mean(-2, keepdim=True)


def _check_inputs(model, mean, steps: int) -> None:
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if (mean is None) == bool(model.config["with_mean"]):
        raise ValueError("this model takes the mean-accessibility feature: pass mean" if mean is None
                         else "this model takes no mean-accessibility feature: mean must be None")


def _path(x: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps * B, 4, L): the points u + (k/steps)(x - u), k = 1..steps, stacked step-major."""
    alpha = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype).view(steps, 1, 1, 1) / steps
    return (0.25 + alpha * (x - 0.25)).reshape(steps * len(x), *x.shape[1:])


def hypothetical_contributions(model, dataset, bins: np.ndarray, expression: np.ndarray, mean: np.ndarray | None,
                               batch_size: int = 64, device="cpu", steps: int = 1) -> np.ndarray:
    """(len(bins), C, 4, context) float32 hypothetical contributions for every bin x cell type.

    `expression` is (C, G) in the model's gene order, already transformed; `mean` is the
    (dataset.n_bins,) mean-accessibility feature or None for a model without it; `steps` the
    points on the path from the uniform background (1: the gradient at the input). `batch_size`
    counts windows; a batch holds batch_size x steps x C backward rows of memory.
    """
    _check_inputs(model, mean, steps)
    bins = np.asarray(bins, dtype=np.int64)
    device = torch.device(device)
    model = model.to(device).eval()
    expr = torch.as_tensor(np.asarray(expression, dtype=np.float32), device=device)
    out = np.empty((len(bins), len(expr), 4, dataset.context), dtype=np.float32)
    for start in range(0, len(bins), batch_size):
        chunk = bins[start:start + batch_size]
        m = None if mean is None else torch.as_tensor(np.asarray(mean, dtype=np.float32)[chunk], device=device)
        x = one_hot(dataset.window_codes(chunk), device)
        grads = input_gradients(model, _path(x, steps), expr, None if m is None else m.repeat(steps))
        mean_grads = grads.view(steps, len(chunk), *grads.shape[1:]).mean(0)
        out[start:start + len(chunk)] = centre_bases(mean_grads).cpu().numpy()
    return out


def contributions(hypothetical: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(..., L) contribution of the base present at each position (0 at N).

    `codes` (..., L) uint8 must broadcast against ``hypothetical.shape[:-2] + (L,)``.
    """
    present = np.asarray(codes)[..., None, :] == np.arange(4, dtype=np.uint8)[:, None]
    return (hypothetical * present).sum(-2, dtype=np.float32)


@torch.no_grad()
def span_contributions(model, dataset, bins: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                       expression: np.ndarray, mean: np.ndarray | None, batch_size: int = 64, device="cpu",
                       steps: int = 1) -> np.ndarray:
    """(K, C) float32: per span k (bin, positions start..end-1 of its window) and cell type, the summed contribution.

    Equals ``contributions(hypothetical_contributions(...))`` summed over the span (N positions
    contribute 0), computed as the derivative along (x - 1/4) on the span's known bases.
    """
    _check_inputs(model, mean, steps)
    bins = np.asarray(bins, dtype=np.int64)
    device = torch.device(device)
    model = model.to(device).eval()
    expr = torch.as_tensor(np.asarray(expression, dtype=np.float32), device=device)
    out = np.empty((len(bins), len(expr)), dtype=np.float32)
    for lo in range(0, len(bins), batch_size):
        chunk = slice(lo, lo + batch_size)
        codes = torch.as_tensor(dataset.window_codes(bins[chunk]), device=device)
        x = one_hot(codes, device)
        position = torch.arange(codes.shape[1], device=device)
        inside = ((position >= torch.as_tensor(starts[chunk], device=device)[:, None])
                  & (position < torch.as_tensor(ends[chunk], device=device)[:, None]) & (codes < 4))
        tangent = ((x - 0.25) * inside[:, None, :]).repeat(steps, 1, 1)
        feat, d_feat = jvp(model.trunk, (_path(x, steps),), (tangent,))
        rows = len(feat)
        m = None if mean is None else torch.as_tensor(np.asarray(mean, dtype=np.float32)[bins[chunk]],
                                                      device=device).repeat(steps).view(rows, 1)
        for j in range(len(expr)):
            e = expr[j].expand(rows, -1)
            _, d_logit = jvp(lambda f: model.head(f, e, m), (feat,), (d_feat,))
            out[chunk, j] = d_logit.view(steps, -1).mean(0).cpu().numpy()
    return out
