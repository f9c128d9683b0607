"""--precision: bf16 autocast only where the hardware computes bf16 natively, fp32 elsewhere; the
run records the resolved choice. Both paths: this CPU as it is (it trains a step in bf16 where it has
AVX512-BF16 or AMX-BF16) and a CPU without native bf16 (the detection monkeypatched: fp32)."""

import json

import pytest
import torch

from chromtune.cli.train import main as train_main
from chromtune.data.dataset import write_dataset
from chromtune.errors import UserError
from chromtune.train import loop
from chromtune.train.config import TrainConfig
from chromtune.train.precision import cpu_has_native_bf16, resolve_precision
from chromtune.train.runner import run_training
from conftest import assert_one_line_error, random_dataset, run_command

FAST = dict(arch="basset", width=0.125, folds=3, epochs=1, samples_per_epoch=32, batch_size=16, eval_every=4)
CPU = torch.device("cpu")


@pytest.fixture
def no_native_bf16(monkeypatch):
    """A CPU without AVX512-BF16 or AMX-BF16 (where autocast would emulate bf16)."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True, "avx512_bf16": False, "amx_bf16": False})


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rand.h5"
    write_dataset(path, random_dataset(n_cells=12, chrom_len=12_000, positive_rate=0.1))
    return str(path)


@pytest.fixture
def conv_dtypes(monkeypatch):
    """The dtypes the first convolution of the trained model computed in, in training mode."""
    seen, build = [], loop.build_for

    def build_and_watch(cfg, task):
        model = build(cfg, task)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv1d))
        conv.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype) if module.training else None)
        return model

    monkeypatch.setattr(loop, "build_for", build_and_watch)
    return seen


def test_auto_is_fp32_on_a_cpu_without_native_bf16_and_bf16_is_refused(no_native_bf16):
    assert not cpu_has_native_bf16()
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(UserError, match="--precision bf16: this CPU has no native bf16"):
        resolve_precision("bf16", CPU)


def test_auto_is_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": True})
    assert resolve_precision("auto", CPU) == resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"


def test_a_gpu_this_process_cannot_see_is_taken_to_have_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a head node planning GPU trials
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"


def test_a_bad_precision_is_one_line(data_file):
    with pytest.raises(UserError, match="--precision 'fp16': choose auto, fp32, bf16"):
        TrainConfig(data=data_file, precision="fp16")


def test_cpu_without_native_bf16_trains_in_fp32_and_records_it(no_native_bf16, conv_dtypes, data_file, tmp_path):
    metrics = run_training(TrainConfig(data=data_file, precision="auto", **FAST), tmp_path, workers=0)
    assert metrics["config"]["precision"] == "fp32"
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["precision"] == "fp32"
    assert conv_dtypes and set(conv_dtypes) == {torch.float32}


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no AVX512-BF16 or AMX-BF16")
def test_this_cpu_trains_a_step_in_bf16_and_records_it(conv_dtypes, data_file, tmp_path):
    metrics = run_training(TrainConfig(data=data_file, precision="auto", **FAST), tmp_path, workers=0)
    assert metrics["config"]["precision"] == "bf16"
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["precision"] == "bf16"
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    assert 0 < metrics["history"][-1]["train_loss"] < 100 and 0 <= metrics["best_valid_auprc"] <= 1


def test_train_refuses_bf16_on_a_cpu_that_would_emulate_it(no_native_bf16, data_file, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_command(train_main, ["--data", data_file, "--workers", "0", "--precision", "bf16", "--out", out],
                               capsys)
    assert_one_line_error(code, err, "--precision bf16", "no native bf16")
    assert not out.exists()


def test_sweep_refuses_bf16_on_a_cpu_that_would_emulate_it_before_ray(no_native_bf16, tmp_path, monkeypatch, capsys):
    import ray

    from chromtune.sweep.__main__ import main as sweep_main

    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_command(sweep_main, ["--arch", "basset", "--folds", "2", "--smoke-test", "--precision", "bf16"],
                               capsys)
    assert_one_line_error(code, err, "--precision bf16", "no native bf16")
    assert not ray.is_initialized()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


@pytest.mark.parametrize("native", [False, True])
def test_sweep_trials_carry_the_resolved_precision(monkeypatch, tmp_path, native):
    from chromtune.sweep.plan import plan_sweep
    from chromtune.sweep.settings import SweepSettings

    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": native, "amx_bf16": False})
    plan = plan_sweep(SweepSettings(arch="basset", folds=2, smoke_test=True, precision="auto"))
    assert plan.base["precision"] == ("bf16" if native else "fp32")  # every trial's config and MLflow params
    assert plan.key.endswith("-bf16-smoke" if native else "-s0-smoke")  # a bf16 sweep resumes apart from fp32's
