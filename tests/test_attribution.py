"""Gradient x input: analytical answers on toy models, finite differences on a real ResNet, and the contribution identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from chromtune.data.encoding import one_hot
from chromtune.interpret.attribution import (centre_bases, contributions, hypothetical_contributions,
                                             input_gradients, span_contributions)
from chromtune.models import build_model
from conftest import random_dataset

L, G = 40, 5


class LinearToy(nn.Module):
    """logit = <W, x> + u . expr (+ v mean): the gradient with respect to x is W whatever the cell type."""

    def __init__(self, with_mean: bool, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.config = {"with_mean": with_mean}
        self.w = torch.randn(4, L, generator=generator, dtype=torch.float64)
        self.u = torch.randn(G, generator=generator, dtype=torch.float64)
        self.trunk = nn.Flatten()

    def head(self, feat, expr, mean=None):
        out = feat @ self.w.reshape(-1) + expr @ self.u
        return out if mean is None else out + 0.7 * mean.reshape(-1)


class ProductToy(LinearToy):
    """logit = <W, x> * (u . expr): the gradient is W scaled by each cell type's own u . expr."""

    def head(self, feat, expr, mean=None):
        return (feat @ self.w.reshape(-1)) * (expr @ self.u)


class SquareToy(LinearToy):
    """logit = <W, x>^2 + u . expr: the path average of its gradient has a closed form."""

    def head(self, feat, expr, mean=None):
        return (feat @ self.w.reshape(-1)) ** 2 + expr @ self.u


def windows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, (n, L), dtype=np.uint8)


def test_linear_model_gradient_is_its_weights_for_every_pair_and_base_swaps_are_exact():
    model = LinearToy(with_mean=True)
    codes = windows(3)
    x = one_hot(codes, dtype=torch.float64)
    expr = torch.randn(4, G, dtype=torch.float64)
    grads = input_gradients(model, x, expr, torch.rand(3, dtype=torch.float64))
    assert grads.shape == (3, 4, 4, L)
    assert torch.allclose(grads, model.w.expand(3, 4, 4, L))
    hyp = centre_bases(grads).numpy()
    assert np.allclose(hyp.sum(2), 0)
    # The hypothetical contributions predict the exact change of a linear model's logit when a base is swapped.
    i, j, pos, new = 1, 2, 17, (int(codes[1, 17]) + 1) % 4
    swapped = codes.copy()
    swapped[i, pos] = new
    before = model.head(x[i:i + 1].flatten(1), expr[j:j + 1])
    after = model.head(one_hot(swapped[i:i + 1], dtype=torch.float64).flatten(1), expr[j:j + 1])
    assert float(after - before) == pytest.approx(hyp[i, j, new, pos] - hyp[i, j, codes[i, pos], pos], abs=1e-12)


def test_expression_is_held_fixed_per_cell_type_in_the_given_order():
    model = ProductToy(with_mean=False, seed=3)
    x = one_hot(windows(2), dtype=torch.float64)
    expr = torch.randn(3, G, dtype=torch.float64)
    grads = input_gradients(model, x, expr, None)
    scale = (expr @ model.u).view(1, 3, 1, 1)
    assert torch.allclose(grads, model.w.view(1, 1, 4, L) * scale)


def test_resnet_gradients_match_central_finite_differences():
    torch.manual_seed(0)
    model = build_model("resnet", 2, n_genes=G, with_mean=True, seq_len=L, width=0.05, hidden=16).double().eval()
    x = one_hot(windows(2, seed=1), dtype=torch.float64)
    expr = torch.randn(3, G, dtype=torch.float64)
    mean = torch.tensor([0.2, 0.6], dtype=torch.float64)
    grads = input_gradients(model, x, expr, mean)
    direction = torch.randn_like(x)
    eps = 1e-5
    for j in range(3):
        def logit(inp):
            return model(inp, expr[j].expand(2, G), mean)
        numeric = (logit(x + eps * direction) - logit(x - eps * direction)) / (2 * eps)
        analytic = (grads[:, j] * direction).sum((1, 2))
        assert torch.allclose(numeric, analytic, rtol=1e-6, atol=1e-8), (j, numeric, analytic)


def test_hypothetical_contributions_over_a_data_set_and_the_contribution_identity():
    ds = random_dataset(n_chroms=1, chrom_len=2_000, n_cells=3, n_genes=G, bin_size=20, stride=20, context=L)
    model = LinearToy(with_mean=False).float()
    model.w, model.u = model.w.float(), model.u.float()
    bins = np.array([5, 30, 61, 98])  # away from the chromosome ends: no N in the windows
    expression = ds.expression[[2, 0]]
    hyp = hypothetical_contributions(model, ds, bins, expression, None, batch_size=3)
    assert hyp.shape == (4, 2, 4, L) and hyp.dtype == np.float32
    centred = (model.w - model.w.mean(0)).numpy()
    assert np.allclose(hyp, centred, atol=1e-6)
    codes = ds.window_codes(bins)
    per_base = contributions(hyp, codes[:, None, :])
    assert per_base.shape == (4, 2, L)
    # Summed over positions, the contributions are g . (x - 1/4).
    x = one_hot(codes).numpy()
    expected = (model.w.numpy()[None] * (x - 0.25)).sum((1, 2))
    assert np.allclose(per_base[:, 0].sum(1), expected, atol=1e-5)
    with pytest.raises(ValueError, match="mean must be None"):
        hypothetical_contributions(model, ds, bins, expression, np.zeros(ds.n_bins))


def test_an_unknown_base_contributes_nothing():
    hyp = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    codes = np.array([[0, 4, 3], [2, 1, 4]], dtype=np.uint8)
    assert contributions(hyp, codes).tolist() == [[0, 0, 11], [18, 16, 0]]


def test_steps_average_the_gradient_on_the_path_from_the_uniform_background():
    """For <W, x>^2 the right Riemann sum of the path gradients is known exactly; steps=1 is the plain gradient."""
    ds = random_dataset(n_chroms=1, chrom_len=2_000, n_cells=2, n_genes=G, bin_size=20, stride=20, context=L)
    model = SquareToy(with_mean=False, seed=4).float()
    model.w, model.u = model.w.float(), model.u.float()
    bins = np.array([3, 50])
    x = one_hot(ds.window_codes(bins)).numpy()
    w = model.w.numpy()
    s1, s0 = (w * x).sum((1, 2)), np.full(2, 0.25 * w.sum())
    centred = w - w.mean(0)
    for steps in (1, 4):
        hyp = hypothetical_contributions(model, ds, bins, ds.expression[:1], None, steps=steps)[:, 0]
        mean_s = s0 + (s1 - s0) * (steps + 1) / (2 * steps)  # mean of s(k/steps), k = 1..steps
        assert np.allclose(hyp, 2 * mean_s[:, None, None] * centred, rtol=1e-4, atol=1e-4), steps
    # With many steps the contributions add up to f(x) - f(uniform) (completeness).
    hyp = hypothetical_contributions(model, ds, bins, ds.expression[:1], None, steps=400)[:, 0]
    total = contributions(hyp, ds.window_codes(bins)).sum(1)
    assert np.allclose(total, s1 ** 2 - s0 ** 2, rtol=1e-2)


def test_span_sums_by_forward_mode_equal_summed_contributions_on_a_resnet():
    ds = random_dataset(n_chroms=1, chrom_len=400, n_cells=3, n_genes=G, bin_size=20, stride=20, context=L)
    torch.manual_seed(1)
    model = build_model("resnet", 2, n_genes=G, with_mean=True, seq_len=L, width=0.05, hidden=16).eval()
    mean = np.random.default_rng(0).random(ds.n_bins).astype(np.float32)
    bins = np.array([0, 4, 4, 19])                     # bins 0 and 19: windows running past the chromosome (N)
    starts, ends = np.array([0, 3, 20, 25]), np.array([15, 11, 40, 38])
    expression = ds.expression[[2, 0, 1]]
    spans = span_contributions(model, ds, bins, starts, ends, expression, mean, batch_size=3, steps=3)
    hyp = hypothetical_contributions(model, ds, bins, expression, mean, steps=3)
    per_base = contributions(hyp, ds.window_codes(bins)[:, None, :])
    expected = np.stack([per_base[k, :, a:b].sum(-1) for k, (a, b) in enumerate(zip(starts, ends))])
    assert spans.shape == (4, 3)
    assert np.allclose(spans, expected, rtol=1e-4, atol=1e-5)
