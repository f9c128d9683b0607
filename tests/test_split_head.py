"""The split stage-2 head (chromtune.models.split) equals the plain forward pass of the model."""

import pytest
import torch

from chromtune.models import SplitHead, build_model
from conftest import randomize_batchnorm

G, C, T = 7, 5, 4
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_with_random_bn(head: str, with_mean: bool):
    """A tiny stage-2 model whose eval-mode BatchNorm layers are non-trivial affine maps."""
    torch.manual_seed(0)
    model = build_model("basset", 2, n_genes=G, with_mean=with_mean, head=head, n_tasks=T, seq_len=200,
                        width=0.1, hidden=16)
    return randomize_batchnorm(model, seed=1)


def windows(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, 200), generator=gen)
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float()


@pytest.mark.parametrize("head,with_mean", [("simple", True), ("simple", False), ("complex", True),
                                            ("complex", False)])
@pytest.mark.parametrize("n", [1, 8, 64])
def test_split_head_equals_plain_forward(head, with_mean, n):
    model = model_with_random_bn(head, with_mean)
    x, expr = windows(n), torch.randn(C, G, generator=torch.Generator().manual_seed(2))
    mean = torch.rand(n, generator=torch.Generator().manual_seed(3)) if with_mean else None
    with torch.inference_mode():
        plain = model(x.repeat_interleave(C, 0), expr.repeat(n, 1),
                      None if mean is None else mean.repeat_interleave(C)).view(n, C)
        split = SplitHead(model)
        feat = model.trunk(x)
        per_cell = split.per_cell(expr)
        whole = split.pairs(split.per_bin(feat, mean), per_cell)
        passes = split.logits(feat, mean, per_cell, max_pairs=7)  # several passes, one ragged
    assert whole.shape == (n, C)
    torch.testing.assert_close(whole, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(passes, plain, rtol=1e-5, atol=1e-5)
    if n > 1:
        assert plain.std(1).mean() > 1e-3  # cell types do get different scores


def test_split_head_refuses_training_mode_and_wrong_mean():
    model = model_with_random_bn("simple", True)
    split = SplitHead(model)
    feat = torch.zeros(2, model.trunk.out_features)
    with pytest.raises(ValueError, match="pass mean"):
        split.per_bin(feat)
    model.train()
    with pytest.raises(ValueError, match="eval mode only"):
        split.per_cell(torch.zeros(1, G))
    with pytest.raises(ValueError, match="stage-2 model"):
        SplitHead(build_model("basset", 1, n_tasks=T, seq_len=200, width=0.1, hidden=16))
