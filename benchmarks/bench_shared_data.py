"""Node memory with 1 and 4 concurrent trials reading one data set: shared (the node's one copy in
Ray's object store, chromtune.data.shared) against private (each process opens the file).

    python benchmarks/bench_shared_data.py [--genome-mb 200] [--bins 1000000] [--cells 100]

Each "trial" is a Ray actor that loads the data set as training does (chromtune.train.task
load_dataset, which shares inside Ray workers) or privately (open_dataset), gathers windows of
random bins and keeps everything alive; then the script reads every process's memory from
/proc/<pid>/smaps_rollup: Pss counts shared pages once across the processes that map them, so
the sum over the trials, the holder actor and the raylet (which maps the object store) is the
node's memory for the data set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import random_dataset  # noqa: E402

from chromtune.data.dataset import write_dataset  # noqa: E402

MIB = 2**20


def smaps(pid: int) -> dict[str, int]:
    """Pss and private bytes of one process."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, amount = line.split(":", 1)
        values[name] = int(amount.split()[0]) * 1024
    return {"pss": values["Pss"], "private": values["Private_Clean"] + values["Private_Dirty"]}


@ray.remote(num_cpus=0)
class Trial:
    def load(self, path: str, shared: bool) -> int:
        from chromtune.data.dataset import open_dataset
        from chromtune.train.task import load_dataset

        self.dataset = load_dataset(path) if shared else open_dataset(path)
        rng = np.random.default_rng(0)
        self.dataset.window_codes(rng.integers(0, self.dataset.n_bins, 4096))
        return os.getpid()


def raylet_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _name(int(p)) == "raylet"]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def measure(path: str, trials: int, shared: bool) -> dict:
    ray.init(address="local", num_cpus=4, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             object_store_memory=4 * 2**30)
    try:
        actors = [Trial.remote() for _ in range(trials)]
        started = time.perf_counter()
        pids = ray.get([a.load.remote(path, shared) for a in actors])
        seconds = time.perf_counter() - started
        holders = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("chromtune-data-")]
        holder_pids = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                       if _name(pid).startswith("ray::DatasetHold")]
        mem = [smaps(pid) for pid in pids]
        extra = [smaps(pid) for pid in holder_pids + raylet_pids()]
        return {"trials": trials, "mode": "shared" if shared else "private", "load_s": seconds,
                "holders": len(holders),
                "trial_private_mib": sum(m["private"] for m in mem) / trials / MIB,
                "node_pss_mib": (sum(m["pss"] for m in mem) + sum(m["pss"] for m in extra)) / MIB}
    finally:
        ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genome-mb", type=float, default=200)
    p.add_argument("--bins", type=int, default=1_000_000)
    p.add_argument("--cells", type=int, default=100)
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory() as tmp:
        n_chroms = 4
        chrom_len = int(args.genome_mb * 1e6 / n_chroms)
        stride = max(1, int(args.genome_mb * 1e6 / args.bins))
        ds = random_dataset(n_chroms=n_chroms, chrom_len=chrom_len, n_cells=args.cells, n_genes=50, stride=stride)
        path = os.path.join(tmp, "bench.h5")
        write_dataset(path, ds)
        size = (sum(len(g) for g in ds.genome.values()) + ds.labels.nbytes) / MIB
        print(f"data set: {args.genome_mb:g} Mb genome, {ds.n_bins:,} bins x {args.cells} cell types "
              f"({size:.0f} MiB of genome + labels in memory)")
        print(f"{'mode':8} {'trials':>6} {'load s':>7} {'private MiB/trial':>18} {'node Pss MiB':>13}")
        for shared in (True, False):
            for trials in (1, 4):
                r = measure(path, trials, shared)
                print(f"{r['mode']:8} {r['trials']:>6} {r['load_s']:>7.1f} {r['trial_private_mib']:>18.0f} "
                      f"{r['node_pss_mib']:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
