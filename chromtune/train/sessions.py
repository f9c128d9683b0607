"""Training-loop sessions that live outside the loop's own module (see chromtune.train.loop)."""

from __future__ import annotations

import os

from pathlib import Path

import torch


class TuneSession:
    """The training loop's session inside a single-process Tune trial (see chromtune.train.loop)."""

    rank, world_size = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def prepare(self, model):
        return model.to(self.device)

    def checkpoint_dir(self):
        from ray import tune

        checkpoint = tune.get_checkpoint()
        return Path(checkpoint.to_directory()) if checkpoint else None

    def report(self, metrics: dict, folder, name: str) -> None:
        import ray
        from ray import tune

        # Where this epoch ran: a trial that a failure restarted shows its new node and process.
        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id(), "worker_pid": os.getpid()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(folder)))
