"""What the data set file's digests cost: hashing while writing, and verifying (``chromtune inspect``).

    python benchmarks/bench_checksums.py [--genome-mb 256] [--stride 50] [--cells 123]

Builds a genome-backed data set of ``--genome-mb`` MB of random codes, a bin every ``--stride`` bp
and random bit-packed labels, writes it with :func:`write_dataset` (which hashes every block it
writes), then, in a fresh process, opens it (no hashing) and verifies every digest
(:func:`verify_digests`, 8 MiB blocks), each in a fresh process. It reports the file size, the write time and the share of
it spent hashing (SHA-256, the digest stored, and BLAKE2b timed over the same bytes), and the verification's time,
throughput and peak-memory growth. The file is in the page cache when verified (just written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from chromtune.data.dataset import Dataset, write_dataset  # noqa: E402
from chromtune.data.labels import PackedLabels  # noqa: E402

MB = 10**6

STEP = """
import json, sys, time
from chromtune.data.checksums import verify_digests
from chromtune.data.dataset import open_dataset

def status(key):
    return int(next(line for line in open("/proc/self/status") if line.startswith(key + ":")).split()[1])

open("/proc/self/clear_refs", "w").write("5")  # peak RSS := RSS now, past the imports (Linux)
before = status("VmRSS")
t = time.perf_counter()
result = open_dataset(sys.argv[2]).n_bins if sys.argv[1] == "open" else len(verify_digests(sys.argv[2]))
wall = time.perf_counter() - t
print(json.dumps({"s": wall, "result": result, "peak_growth_mib": (status("VmHWM") - before) / 1024}))
"""


def step(kind: str, path: Path) -> dict:
    """Open or verify ``path`` in a fresh process: seconds, result and peak-RSS growth past the imports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", STEP, kind, str(path)], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(genome_mb: int, stride: int, n_cells: int) -> Dataset:
    rng = np.random.default_rng(0)
    chromosomes = [f"chr{i + 1}" for i in range(4)]
    length = genome_mb * MB // len(chromosomes)
    genome = {c: rng.integers(0, 4, length, dtype=np.uint8) for c in chromosomes}
    starts = np.arange(0, length - 200 + 1, stride, dtype=np.int64)
    n = len(starts) * len(chromosomes)
    packed = rng.integers(0, 256, (n, -(-n_cells // 8)), dtype=np.uint8)
    packed[:, -1] &= np.uint8((0xFF << ((-n_cells) % 8)) & 0xFF)
    return Dataset(chromosomes=chromosomes, bin_chrom=np.repeat(np.arange(4, dtype=np.int32), len(starts)),
                   bin_start=np.tile(starts, 4), labels=PackedLabels(packed, n_cells),
                   cell_types=[f"cell{j}" for j in range(n_cells)],
                   expression=rng.random((n_cells, 1630)).astype(np.float32),
                   genes=[f"TF{g}" for g in range(1630)], bin_size=200, stride=stride, context=1000, genome=genome)


def hash_seconds(arrays, algorithm) -> float:
    start = time.perf_counter()
    for array in arrays:
        hasher = algorithm()
        flat = array.reshape(-1)
        for s in range(0, len(flat), 8 << 20):
            hasher.update(flat[s:s + (8 << 20)])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome-mb", type=int, default=256)
    parser.add_argument("--stride", type=int, default=50)
    parser.add_argument("--cells", type=int, default=123)
    args = parser.parse_args()
    ds = build(args.genome_mb, args.stride, args.cells)
    arrays = [*ds.genome.values(), ds.bin_chrom, ds.bin_start, ds.labels.packed, ds.expression]
    payload = sum(a.nbytes for a in arrays)
    blake = hash_seconds(arrays, lambda: hashlib.blake2b(digest_size=32))
    sha = hash_seconds(arrays, hashlib.sha256)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.h5"
        start = time.perf_counter()
        write_dataset(path, ds)
        write_s = time.perf_counter() - start
        size = path.stat().st_size
        opened, verified = step("open", path), step("verify", path)
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"data set: {ds.n_bins:,} bins x {args.cells} cell types, {args.genome_mb} MB genome; "
          f"file {size / MB:.0f} MB, {payload / MB:.0f} MB of array bytes")
    print(f"hashing the arrays in memory: BLAKE2b-256 {blake:.2f} s ({payload / MB / blake:.0f} MB/s), "
          f"SHA-256 {sha:.2f} s ({payload / MB / sha:.0f} MB/s)")
    print(f"write_dataset (hashing as it writes): {write_s:.2f} s, of which hashing ~{sha / write_s:.0%}")
    print(f"open_dataset (validates, never hashes): {opened['s']:.2f} s; "
          f"peak RSS grew {opened['peak_growth_mib']:.0f} MiB (file pages mapped while validating)")
    print(f"verify_digests: {verified['result']} datasets in {verified['s']:.2f} s "
          f"({size / MB / verified['s']:.0f} MB/s); peak RSS grew {verified['peak_growth_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
