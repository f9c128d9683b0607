"""Windows per second from an opened data set into a one-hot float batch, one CPU process.

chromtune: gather (B, L) uint8 codes from the in-memory genome with one strided fancy index, then
one-hot with a broadcast comparison. Reference: np.unpackbits of a bit-packed (B, L, 1) batch,
then conversion to float (what the reference implementation does per batch).

    python benchmarks/bench_windows.py [--context 1000] [--batch-size 256] [--seconds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from chromtune.data.dataset import Dataset, open_dataset, write_dataset
from chromtune.data.encoding import one_hot


def rate(fn, batch_size: int, seconds: float) -> float:
    fn()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        done += batch_size
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--chrom-mb", type=int, default=20, help="genome size in Mb (one chromosome)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    length = args.chrom_mb * 1_000_000
    starts = np.arange(0, length - 200 + 1, 50)
    ds = Dataset(["chr1"], np.zeros(len(starts), np.int64), starts, np.zeros((len(starts), 1), np.uint8), ["c"],
                 np.zeros((1, 1), np.float32), ["g"], 200, 50, args.context,
                 genome={"chr1": rng.integers(0, 5, length, dtype=np.uint8)})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        write_dataset(path, ds)
        ds = open_dataset(path)
    ds.window_codes(np.arange(1))  # build the padded genome view once

    def chromtune_batch():
        bins = rng.integers(0, ds.n_bins, args.batch_size)
        return one_hot(ds.window_codes(bins))

    packed = np.packbits(one_hot(ds.window_codes(rng.integers(0, ds.n_bins, 4096))).permute(0, 2, 1).numpy()
                         .astype(np.uint8), axis=-1)  # (n, L, 1), A,C,G,T in the high 4 bits

    def reference_batch():
        rows = packed[rng.integers(0, len(packed), args.batch_size)]
        onehot = np.unpackbits(rows, axis=-1)[..., :4].astype(np.float32)
        return torch.from_numpy(onehot).permute(0, 2, 1)

    assert torch.equal(chromtune_batch().sum(1).amax(), torch.tensor(1.0))
    ours = rate(chromtune_batch, args.batch_size, args.seconds)
    ref = rate(reference_batch, args.batch_size, args.seconds)
    print(f"| approach | windows/s (context {args.context}, batch {args.batch_size}, 1 thread) |")
    print("|---|---|")
    print(f"| chromtune: strided gather of uint8 codes + broadcast one-hot | {ours:,.0f} |")
    print(f"| reference: unpackbits of a packed (B, L, 1) batch + float | {ref:,.0f} |")


if __name__ == "__main__":
    main()
