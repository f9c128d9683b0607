"""Starting or joining Ray, and checking resource requests before anything is scheduled.

A request the cluster can never satisfy (a GPU on a CPU-only cluster, more CPUs than any node
has) would wait forever in Ray; :func:`check_resources` turns it into one line naming the flag.
"""

from __future__ import annotations

import os

import ray

from chromtune.errors import UserError


def start_ray(address: str | None = None) -> None:
    """Join ``address`` (``auto`` or ``host:port``) or start a private local Ray bound to 127.0.0.1."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise UserError(f"--address {address}: cannot connect to a Ray cluster ({str(err).splitlines()[0]})") from None
    else:
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)


def check_resources(workers: int, cpus_per_worker: float, gpus_per_worker: float) -> None:
    """Fail fast unless one trial's workers fit on the cluster's nodes as they are now."""
    if workers < 0:
        raise UserError(f"--workers {workers}: must be 0 (in-process) or more")
    total = ray.cluster_resources()
    if gpus_per_worker > 0 and total.get("GPU", 0) < gpus_per_worker * max(workers, 1):
        raise UserError(
            f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has {total.get('GPU', 0):g} GPUs, "
            f"a trial needs {gpus_per_worker * max(workers, 1):g}"
        )
    if total.get("CPU", 0) < cpus_per_worker * max(workers, 1):
        raise UserError(
            f"--workers {workers} x --cpus-per-worker {cpus_per_worker:g}: the Ray cluster has only "
            f"{total.get('CPU', 0):g} CPUs"
        )
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if workers and not any(n.get("CPU", 0) >= cpus_per_worker and n.get("GPU", 0) >= gpus_per_worker for n in nodes):
        raise UserError(f"--cpus-per-worker {cpus_per_worker:g} / --gpus-per-worker {gpus_per_worker:g}: no node is that large")
