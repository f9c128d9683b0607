"""Training-loop sessions that live outside the loop's own module (see chromtune.train.loop)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch


@contextlib.contextmanager
def checkpoint_files(checkpoint) -> Iterator[Path | None]:
    """A Ray checkpoint's folder while the block runs (None for no checkpoint). A checkpoint in remote
    storage is downloaded to a temporary folder that is removed afterwards; ``to_directory()`` would
    leave a copy of the model and optimizer in /tmp at every resume."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as folder:
        yield Path(folder)


class TuneSession:
    """The training loop's session inside a single-process Tune trial (see chromtune.train.loop)."""

    rank, world_size = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def prepare(self, model):
        return model.to(self.device)

    def checkpoint_files(self):
        from ray import tune

        return checkpoint_files(tune.get_checkpoint())

    def report(self, metrics: dict, folder, name: str) -> None:
        import ray
        from ray import tune

        # Where this epoch ran: a trial that a failure restarted shows its new node and process.
        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id(), "worker_pid": os.getpid()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(folder)))
