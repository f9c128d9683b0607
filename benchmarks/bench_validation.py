"""The cost of validation that can decide at genome scale: the plan's check and the sample's growth.

Writes hg38-shaped bit-packed labels to a temporary file and maps them as a data set does
(``--bins`` bins x ``--cell-types`` cell types, each cell type positive in a fraction ``--rate`` of
the bins at random, default 1e-4: as rare as real blood ATAC peaks on 200 bp bins). The held-out
blocks are two runs of 1/20 of the bins each (the bin split's default: 20 blocks, 10 % held out);
stage 2 scores bins off the test chromosomes, here every bin. Then it times, in this process:

- ``check``: :func:`chromtune.data.validation.check_held_out`'s two passes (positives of every cell
  type in the held-out blocks, and in every bin);
- ``grow1``: a stage-1 sample of ``--valid-bins`` held-out bins x the training cell types, grown;
- ``grow2``: a stage-2 sample of ceil(``--valid-pairs`` / n_valid) bins x ``--n-valid`` cell types, grown;

with wall and CPU seconds (the machine may be shared) and the peak RSS growth of each step (``ru_maxrss``; the mapped labels are file pages, not counted
as anonymous memory, but ``ru_maxrss`` counts the pages touched). ``--repeats`` runs each step that
many times; the JSON line gives every run's seconds.

    python benchmarks/bench_validation.py [--bins 62000000] [--cell-types 123] [--rate 1e-4]
                                          [--valid-bins 20000] [--valid-pairs 256000] [--n-valid 12]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from chromtune.data.folds import BinRanges, BinSplit, Fold
from chromtune.data.labels import PackedLabels
from chromtune.data.validation import check_held_out, grow_sample, positives


class Labelled:
    """What check_held_out reads of a data set: labels, cell-type names and their number."""

    def __init__(self, labels: PackedLabels):
        self.labels = labels
        self.n_cell_types = labels.n_cells
        self.cell_types = [f"cell{j}" for j in range(labels.n_cells)]


def packed_labels(path: Path, n_bins: int, n_cells: int, rate: float, seed: int) -> PackedLabels:
    """Random positives at ``rate`` per (bin, cell type), written bit-packed to ``path`` and mapped."""
    rng = np.random.default_rng(seed)
    width = -(-n_cells // 8)
    packed = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n_bins, width))
    for cell in range(n_cells):
        rows = np.unique(rng.integers(0, n_bins, rng.binomial(n_bins, rate)))
        packed[rows, cell >> 3] |= np.uint8(0x80 >> (cell & 7))
    packed.flush()
    del packed
    return PackedLabels(np.load(path, mmap_mode="r"), n_cells)


def timed(step) -> tuple[float, float, float, object]:
    """(seconds, CPU seconds, MiB of peak RSS growth, result) of one call."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    result = step()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=62_000_000)
    parser.add_argument("--cell-types", type=int, default=123)
    parser.add_argument("--rate", type=float, default=1e-4)
    parser.add_argument("--valid-bins", type=int, default=20_000)
    parser.add_argument("--valid-pairs", type=int, default=256_000)
    parser.add_argument("--n-valid", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        labels = packed_labels(Path(tmp) / "labels.npy", args.bins, args.cell_types, args.rate, args.seed)
        write_s = time.perf_counter() - start
        block = args.bins // 20
        valid = BinRanges(np.array([3 * block, 11 * block]), np.array([4 * block, 12 * block]))
        every = BinRanges(np.array([0]), np.array([args.bins]))
        split = BinSplit(train=every, valid=valid, fit=every, test=every)
        cells = np.arange(args.cell_types)
        fold = Fold(0, tuple(cells[2 * args.n_valid:].tolist()), tuple(cells[:args.n_valid].tolist()),
                    tuple(cells[args.n_valid:2 * args.n_valid].tolist()))
        data = Labelled(labels)
        rng = np.random.default_rng(args.seed)
        sample1 = np.sort(np.asarray(valid[rng.choice(len(valid), args.valid_bins, replace=False)]))
        sample2 = np.sort(rng.choice(args.bins, math.ceil(args.valid_pairs / args.n_valid), replace=False))
        steps = {"check": lambda: check_held_out(data, [fold], split),
                 "grow1": lambda: grow_sample(labels, sample1, valid, fold.train, np.random.default_rng(1)),
                 "grow2": lambda: grow_sample(labels, sample2, every, fold.valid, np.random.default_rng(1))}
        result = {"bins": args.bins, "cell_types": args.cell_types, "rate": args.rate, "write_s": round(write_s, 1),
                  "held_out_bins": len(valid), "stage1_sample": len(sample1), "stage2_sample": len(sample2),
                  "stage1_lacking": int((positives(labels, sample1, fold.train) == 0).sum()),
                  "stage2_lacking": int((positives(labels, sample2, fold.valid) == 0).sum())}
        for name, step in steps.items():
            runs = [timed(step) for _ in range(args.repeats)]
            result[f"{name}_s"] = [round(run[0], 2) for run in runs]
            result[f"{name}_cpu_s"] = [round(run[1], 2) for run in runs]
            result[f"{name}_rss_mib"] = round(max(run[2] for run in runs), 1)
            if name != "check":
                result[f"{name}_added_bins"] = int(sum(runs[0][3][1].values()))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
