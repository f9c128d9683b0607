"""Genome-wide imputation rate: bins per CPU second (per core) of ``chromtune predict``'s fast path,
float32 against bf16 autocast, and what that makes of hg38.

The paper-sized model of bench_predict (ResNet trunk, width 1.0, 1000 bp windows, G = 1630 genes,
simple head with the mean feature; random weights, seeded) scores ``--bins`` random bins of a
synthetic chromosome in C new cell types, with ``--threads`` torch threads. Each case is repeated
``--repeats`` times, interleaved; the fastest wall time is reported with its CPU seconds. The bf16
probabilities are compared with the float32 ones over the same pairs (max and mean |difference|).
hg38 at the reference layout (200 bp bins every 50 bp) is about 3.1e9 / 50 = 62 M bins; the hours
given are that count divided by the measured bins per CPU second (one core) and by the cores used.

    python benchmarks/bench_imputation.py --bins 256 --cells 1 10 --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bench_predict import paper_model, synthetic_dataset
from chromtune.predict.scoring import predict_accessibility
from chromtune.train.precision import cpu_has_native_bf16

HG38_BINS = 3_100_000_000 // 50


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bins", type=int, default=256)
    p.add_argument("--cells", type=int, nargs="+", default=[1, 10], help="new cell types C, one case each")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]

    ds = synthetic_dataset(args.bins, args.seed)
    model, expression, mean = paper_model(argparse.Namespace(threads=args.threads, seed=args.seed,
                                                             cells=max(args.cells)), ds)
    bins = np.arange(args.bins)
    for precision in precisions:  # warm-up: oneDNN builds its kernels once per shape and format
        predict_accessibility(model, ds, expression[:1], bins[:8], mean, args.batch_size, bf16=precision == "bf16")
    best, results = {}, {}
    for _ in range(args.repeats):
        for c in args.cells:
            for precision in precisions:
                start, cpu = time.perf_counter(), time.process_time()
                results[c, precision] = predict_accessibility(model, ds, expression[:c], bins, mean, args.batch_size,
                                                              bf16=precision == "bf16")
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                if (c, precision) not in best or wall < best[c, precision][0]:
                    best[c, precision] = (wall, cpu)

    print(f"command: python benchmarks/bench_imputation.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"resnet width 1.0, 1000 bp, G=1630, {args.bins} bins, batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); fastest of {args.repeats}")
    print("| cell types | precision | wall s | CPU s | bins per wall s | bins per CPU s | hg38 (62 M bins), "
          f"hours on {args.threads} core(s) | max / mean abs(p bf16 - p fp32) |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for c in args.cells:
        for precision in precisions:
            wall, cpu = best[c, precision]
            diff = ""
            if precision == "bf16":
                delta = np.abs(results[c, "bf16"] - results[c, "fp32"])
                diff = f"{delta.max():.1e} / {delta.mean():.1e}"
            print(f"| {c} | {precision} | {wall:.2f} | {cpu:.2f} | {args.bins / wall:.1f} | {args.bins / cpu:.1f} | "
                  f"{HG38_BINS / (args.bins / wall) / 3600:,.0f} | {diff} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
