"""Starting or joining Ray, and checking resource requests before anything is scheduled.

A request the cluster can never satisfy (a GPU on a CPU-only cluster, more CPUs than any node
has) would wait forever in Ray; :func:`check_resources` turns it into one line naming the flag.

The private local Ray listens on loopback only. Ray 2.60 turns ``_node_ip_address="127.0.0.1"``
into the machine's routable address unless its single-machine mode is on (the
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` switch, read once into ``ray_constants.ENABLE_RAY_CLUSTER``
when Ray is imported); with it, GCS, raylet, workers, the driver and the agents bind to 127.0.0.1.
The Prometheus metrics endpoint, which answers anyone who reaches it, is not started
(``enable_metrics_collection`` off), and neither is the dashboard. A test lists the listening
sockets of every process of a running sweep (tests/test_wheel.py).
"""

from __future__ import annotations

import math
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
        _single_machine_mode()
        # "local": a new private instance even when another Ray runs on this machine
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
                 _system_config={"enable_metrics_collection": False})


def _single_machine_mode() -> None:
    """Keep a local Ray's node address on loopback (see the module docstring)."""
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # for Python processes that import Ray afresh
    ray_constants.ENABLE_RAY_CLUSTER = False  # the driver's copy, already read at import


def launchable_node_types() -> list[tuple[dict, float]]:
    """(resources, how many more) of each node type an autoscaler may still add; none without one.

    Read from the cluster config the autoscaler publishes (``ray up`` clusters), through Ray's
    private state API; if that API is absent or changes, no autoscaling is assumed.
    """
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:
        return []
    if config is None:
        return []
    return [(dict(group.resources), math.inf if group.max_count == -1 else group.max_count)
            for group in config.node_group_configs if group.max_count != 0]


def cluster_capacity() -> dict[str, float]:
    """What the cluster has now plus what its autoscaler may add (inf when unbounded)."""
    total = dict(ray.cluster_resources())
    for resources, count in launchable_node_types():
        for name, amount in resources.items():
            total[name] = total.get(name, 0) + amount * count
    return total


def check_resources(workers: int, cpus_per_worker: float, gpus_per_worker: float) -> None:
    """Fail fast unless one trial's workers fit on the cluster's nodes, as they are now or as its
    autoscaler may add them."""
    if workers < 0:
        raise UserError(f"--workers {workers}: must be 0 (in-process) or more")
    total = cluster_capacity()
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
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")] + [r for r, _ in launchable_node_types()]
    if workers and not any(n.get("CPU", 0) >= cpus_per_worker and n.get("GPU", 0) >= gpus_per_worker for n in nodes):
        raise UserError(f"--cpus-per-worker {cpus_per_worker:g} / --gpus-per-worker {gpus_per_worker:g}: no node is that large")


def is_multi_node() -> bool:
    """Several nodes now, or an autoscaler that may add some."""
    return len([n for n in ray.nodes() if n.get("Alive")]) > 1 or bool(launchable_node_types())


def check_shared_storage(storage) -> None:
    """Refuse a plain local folder as storage on a cluster of several nodes (or one that may grow):
    trials on the other nodes would write their checkpoints to disks the driver never sees."""
    if not storage.is_uri and is_multi_node():
        raise UserError(f"--storage {storage.root}: a local folder is not shared by the cluster's nodes; "
                        "give s3://bucket/prefix, gs://bucket/prefix, or file:///path on a filesystem every node mounts")
