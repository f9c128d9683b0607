"""Tests for chromtune.models: trunks, heads, registry and checkpoints."""

import os

import pytest
import torch

from chromtune.models import ARCHITECTURES, build_model, count_parameters
from chromtune.models.checkpoint import load_model, save_model

T, G = 103, 1630
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_hot(n, length, seed=0):
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 5, (n, length), generator=gen)  # 4 = "N": all-zero column
    return torch.nn.functional.one_hot(idx, 5)[..., :4].permute(0, 2, 1).float()


def small(arch="resnet", stage=1, **kw):
    kw = {"seq_len": 200, "width": 0.25, "hidden": 32, **kw}
    if stage == 1:
        kw.setdefault("n_tasks", 5)
    else:
        kw.setdefault("n_genes", 7)
    return build_model(arch, stage, **kw)


# ---------------------------------------------------------------- architecture


@pytest.mark.parametrize("arch, total, trunk", [
    ("basset", 6_274_003, 964_900),
    ("factorized", 6_702_481, 1_393_378),
    ("resnet", 8_327_199, 3_018_096),
])
def test_exact_parameter_counts(arch, total, trunk):
    model = build_model(arch, n_tasks=T)
    assert count_parameters(model) == total
    assert count_parameters(model.trunk) == trunk
    assert model.trunk.out_channels == 200 and model.trunk.out_length == 21
    assert model.trunk.out_features == 4200


def test_simple_stage2_head_count():
    model = build_model("basset", 2, n_genes=G, with_mean=True)
    assert count_parameters(model.head) == 6_838_001
    model.freeze_trunk()
    assert count_parameters(model, trainable_only=True) == 6_838_001


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("seq_len, width, batch", [(200, 1.0, 2), (500, 0.5, 3), (1000, 0.25, 2),
                                                   (1001, 0.25, 1)])
def test_output_shapes(arch, seq_len, width, batch):
    x = one_hot(batch, seq_len)
    s1 = build_model(arch, n_tasks=5, seq_len=seq_len, width=width, hidden=16).eval()
    feat = s1.trunk(x)
    assert feat.shape == (batch, s1.trunk.out_features)
    assert s1(x).shape == (batch, 5)
    s2 = build_model(arch, 2, n_genes=7, with_mean=True, seq_len=seq_len, width=width, hidden=16).eval()
    assert s2(x, torch.randn(batch, 7), torch.rand(batch)).shape == (batch,)


def test_width_scales_channels():
    trunk = small("factorized", width=0.5).trunk
    convs = [m.out_channels for m in trunk.modules() if isinstance(m, torch.nn.Conv1d)]
    assert convs == [24, 32, 50, 75, 150, 100, 100, 100, 100]
    assert trunk.out_features == 100 * trunk.out_length


def test_wrong_input_shape_and_short_sequence():
    model = small()
    with pytest.raises(ValueError, match=r"\(N, 4, 200\)"):
        model(one_hot(2, 201))
    with pytest.raises(ValueError, match="too short"):
        build_model("basset", n_tasks=3, seq_len=20)


@pytest.mark.parametrize("stage", [1, 2])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batch_size_invariance_in_eval_mode(arch, stage):
    torch.manual_seed(0)
    model = small(arch, stage, with_mean=True) if stage == 2 else small(arch)
    model.eval()
    n = 70
    x, expr, mean = one_hot(n, 200), torch.randn(n, 7), torch.rand(n)
    run = (lambda s: model(x[s])) if stage == 1 else (lambda s: model(x[s], expr[s], mean[s]))
    with torch.no_grad():
        full = run(slice(0, n))
        for size, stop in ((1, 12), (8, n), (64, n)):  # batch size 1: the first 12 samples
            parts = torch.cat([run(slice(i, min(i + size, stop))) for i in range(0, stop, size)])
            torch.testing.assert_close(parts, full[:stop], rtol=1e-4, atol=1e-5)


def test_same_seed_same_weights_and_outputs():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = small("basset").eval()
        outs.append((model.state_dict(), model(one_hot(4, 200))))
    for k, v in outs[0][0].items():
        assert torch.equal(v, outs[1][0][k]), k
    assert torch.equal(outs[0][1], outs[1][1])


# ---------------------------------------------------------------- registry


def test_unknown_arch_lists_names():
    with pytest.raises(ValueError) as err:
        build_model("vgg", n_tasks=3)
    message = str(err.value)
    assert "\n" not in message and "vgg" in message
    assert all(name in message for name in ARCHITECTURES)


@pytest.mark.parametrize("kwargs", [
    {"stage": 3, "n_tasks": 3},
    {"stage": 1},
    {"stage": 1, "n_tasks": 3, "n_genes": 5},
    {"stage": 2},
    {"stage": 2, "n_genes": 5, "head": "fancy"},
    {"stage": 2, "n_genes": 5, "head": "complex"},
    {"stage": 1, "n_tasks": 3, "width": 0},
])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        build_model("basset", seq_len=200, **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"stage": 1, "n_tasks": 4},
    {"stage": 2, "n_genes": 7, "with_mean": True},
    {"stage": 2, "n_genes": 7, "head": "complex", "n_tasks": 4, "freeze_trunk": True},
])
def test_config_rebuilds_same_architecture(kwargs):
    model = build_model("resnet", seq_len=300, width=0.3, hidden=20, **kwargs)
    config = model.config
    assert all(type(v) in (str, int, float, bool) for v in config.values())
    rebuilt = build_model(**config)
    assert rebuilt.config == config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


# ---------------------------------------------------------------- stage 2


@pytest.mark.parametrize("head", ["simple", "complex"])
@pytest.mark.parametrize("with_mean", [True, False])
def test_stage2_forward_with_and_without_mean(head, with_mean):
    model = small("basset", 2, with_mean=with_mean, head=head, n_tasks=5)
    x, expr, mean = one_hot(4, 200), torch.randn(4, 7), torch.rand(4)
    model.train()
    out = model(x, expr, mean if with_mean else None)
    assert out.shape == (4,)
    out.sum().backward()
    model.eval()
    if with_mean:
        torch.testing.assert_close(model(x, expr, mean), model(x, expr, mean[:, None]))
        with pytest.raises(ValueError, match="pass mean"):
            model(x, expr)
    else:
        with pytest.raises(ValueError, match="mean must be None"):
            model(x, expr, mean)


def test_simple_head_first_layer_splits_by_input_slices():
    model = small("basset", 2, with_mean=True).eval()
    head = model.head
    feat, expr, mean = torch.randn(3, model.trunk.out_features), torch.randn(3, 7), torch.rand(3, 1)
    first = head.mlp[0][0]
    w, s = first.weight, head.input_slices
    split = feat @ w[:, s["feat"]].T + expr @ w[:, s["expr"]].T + mean @ w[:, s["mean"]].T + first.bias
    torch.testing.assert_close(split, first(torch.cat([feat, expr, mean], 1)))


@pytest.mark.parametrize("head", ["simple", "complex"])
@pytest.mark.parametrize("how", ["build", "method"])
def test_frozen_trunk_gets_no_gradients_and_keeps_bn_stats(head, how):
    model = small("resnet", 2, with_mean=True, head=head, n_tasks=5, freeze_trunk=how == "build")
    if how == "method":
        model.train()
        model.freeze_trunk()
    frozen = [model.trunk] + ([model.head.stage1] if head == "complex" else [])
    before = {k: v.clone() for m in frozen for k, v in m.state_dict().items()}
    model.train()
    assert all(not m.training for f in frozen for m in f.modules())
    assert model.head.training if head == "simple" else model.head.joint.training

    out = model(one_hot(6, 200), torch.randn(6, 7), torch.rand(6))
    out.sum().backward()
    for f in frozen:
        assert all(p.grad is None and not p.requires_grad for p in f.parameters())
    trained = [p for n, p in model.head.named_parameters() if not n.startswith("stage1.")]
    assert all(p.grad is not None for p in trained)
    assert any(p.grad.abs().sum() > 0 for p in trained)
    after = {k: v for m in frozen for k, v in m.state_dict().items()}
    for k, v in before.items():
        assert torch.equal(v, after[k]), k  # running_mean/var and num_batches_tracked untouched


def test_tuned_trunk_gets_gradients():
    model = small("basset", 2, with_mean=True).train()
    model(one_hot(4, 200), torch.randn(4, 7), torch.rand(4)).sum().backward()
    parameters = list(model.trunk.parameters())
    assert parameters and all(p.grad is not None for p in parameters)


@pytest.mark.parametrize("head", ["simple", "complex"])
def test_stage1_to_stage2_transfer_is_exact(head):
    stage1 = small("factorized", n_tasks=5).train()
    with torch.no_grad():
        stage1(one_hot(8, 200, seed=1) * 3)  # move BN running stats away from their defaults
    stage2 = small("factorized", 2, with_mean=False, head=head, n_tasks=5)
    for source in (stage1, {"config": stage1.config, "state_dict": stage1.state_dict()}):
        stage2.load_trunk(source)
        for k, v in stage1.trunk.state_dict().items():
            assert torch.equal(v, stage2.trunk.state_dict()[k]), k
        stage1.eval()
        stage2.eval()
        x = one_hot(5, 200, seed=2)
        with torch.no_grad():
            assert torch.equal(stage1.trunk(x), stage2.trunk(x))
            if head == "complex":
                assert torch.equal(stage1(x), stage2.head.stage1(stage2.trunk(x)))


@pytest.mark.parametrize("source_kw, target_kw", [
    ({"arch": "basset"}, {"arch": "factorized"}),
    ({"width": 0.5}, {"width": 0.25}),
    ({"seq_len": 201}, {"seq_len": 200}),
    ({"n_tasks": 4}, {"head": "complex", "n_tasks": 5}),
    ({"n_tasks": 5, "hidden": 16}, {"head": "complex", "n_tasks": 5}),
])
def test_mismatched_transfer_raises(source_kw, target_kw):
    source = small(**{"arch": "basset", **source_kw})
    target = small(**{"arch": "basset", "stage": 2, **target_kw})
    with pytest.raises(ValueError, match="cannot load trunk") as err:
        target.load_trunk(source)
    assert "\n" not in str(err.value)


def test_transfer_needs_stage1_with_config():
    target = small("basset", 2)
    with pytest.raises(ValueError, match="stage 2"):
        target.load_trunk(small("basset", 2))
    with pytest.raises(ValueError, match="config"):
        target.load_trunk(small("basset").state_dict())


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("kwargs", [
    {"stage": 1},
    {"stage": 2, "with_mean": True, "head": "complex", "n_tasks": 5, "freeze_trunk": True},
])
def test_checkpoint_round_trip(tmp_path, kwargs):
    torch.manual_seed(0)
    model = small("resnet", **kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, expr, mean = one_hot(4, 200), torch.randn(4, 7), torch.rand(4)
    args = (x,) if kwargs["stage"] == 1 else (x, expr, mean)
    model.train()
    model(*args).sum().backward()
    opt.step()  # non-trivial BN stats and optimizer state
    path = tmp_path / "model.pt"
    save_model(path, model, epoch=3, metrics={"auprc": 0.5}, optimizer=opt.state_dict())
    assert os.listdir(tmp_path) == ["model.pt"]

    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 3 and raw["config"] == model.config
    loaded, checkpoint = load_model(path)
    assert checkpoint["metrics"] == {"auprc": 0.5}
    assert not loaded.training
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(*args), model(*args))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    if kwargs["stage"] == 2:
        assert loaded.trunk_frozen and not any(p.requires_grad for p in loaded.trunk.parameters())
    opt2 = torch.optim.Adam(loaded.parameters(), lr=1e-3)
    opt2.load_state_dict(checkpoint["optimizer"])
    assert load_model(raw)[0].config == model.config


def test_save_is_atomic_and_rejects_objects(tmp_path):
    path = tmp_path / "model.pt"
    model = small("basset")
    save_model(path, model, epoch=1)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not a tensor or plain"):
        save_model(path, model, epoch=object())
    with pytest.raises(ValueError, match="reserved"):
        save_model(path, model, config={})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.pt"]


class Payload:
    pass


def test_bad_checkpoint_files_raise_one_line_value_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    pickled = tmp_path / "pickled.pt"
    torch.save({"config": {}, "state_dict": {}, "x": Payload()}, pickled)
    wrong = tmp_path / "wrong.pt"
    torch.save({"weights": torch.zeros(2)}, wrong)
    mismatch = tmp_path / "mismatch.pt"
    torch.save({"config": small("basset").config, "state_dict": small("resnet").state_dict()}, mismatch)
    unknown = tmp_path / "unknown.pt"
    torch.save({"config": {"arch": "vgg", "n_tasks": 3}, "state_dict": {}}, unknown)
    for path in (garbage, pickled, wrong, mismatch, unknown, tmp_path / "missing.pt"):
        with pytest.raises(ValueError) as err:
            load_model(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
