"""The fold's test evaluation runs as a Ray task (chromtune.sweep.fold.evaluate_remotely) and gives
what the same evaluation gives in this process."""

from types import SimpleNamespace

import numpy as np
import pytest
import ray
import torch

from chromtune.data.dataset import write_dataset
from chromtune.data.shared import release_shared
from chromtune.models import build_model
from chromtune.models.checkpoint import save_model
from chromtune.io.storage import Storage
from chromtune.sweep.fold import evaluate_remotely
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import evaluate_checkpoint
from conftest import private_local_ray, random_dataset


@pytest.fixture(scope="module")
def local_ray():
    yield from private_local_ray(1, "test-evaluate")


def test_test_evaluation_as_a_ray_task_equals_the_local_one(local_ray, tmp_path):
    data = tmp_path / "rand.h5"
    write_dataset(data, random_dataset(n_cells=12, chrom_len=6_000, positive_rate=0.15))
    cfg = TrainConfig(data=str(data), stage=2, init="x", arch="basset", width=0.1, folds=3, threads=1)
    torch.manual_seed(0)
    model = build_model("basset", 2, n_genes=8, with_mean=True, seq_len=400, width=0.1, hidden=16)
    (tmp_path / "selected").mkdir()
    save_model(tmp_path / "selected" / "best.pt", model)
    plan = SimpleNamespace(settings=SimpleNamespace(cpus_per_worker=1, gpus_per_worker=0), storage=Storage(str(tmp_path)))
    try:
        remote = evaluate_remotely(plan, {"config": cfg.to_dict(), "checkpoint": "selected"})
    finally:
        release_shared(str(data))
    local = evaluate_checkpoint(cfg.to_dict(), str(tmp_path / "selected" / "best.pt"))
    assert remote["pairs"] == local["pairs"] and remote["pairs"]["pairs"] > 0
    np.testing.assert_equal(remote["metrics"], local["metrics"])  # nan (an empty fraction bin) equals nan
