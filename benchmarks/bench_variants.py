"""Variants per second of ``chromtune variants`` for 1 and for N cell types, against the naive way.

At the paper's size (ResNet trunk, width 1.0, 1000 bp windows, bins of 200 bp every 50 bp, G = 1630
synthetic genes, the simple stage-2 head with the mean feature, random weights), for random SNVs on
a random genome (each lies in 20 bin windows, plus the window centred on it: 21 windows, 42 allele
sequences), times:

- ``chromtune, C=1`` and ``chromtune, C=N``: :func:`chromtune.variants.score_blocks`, the command's
  scoring (trunk once per allele and window, both alleles in one batch, the split head);
- ``naive``: the full model, ``model(x, expr, mean)``, once per allele and cell type over the same
  windows, as a user without the split head would loop. Its cost is linear in the number of cell
  types, so it runs for ``--naive-cells`` of them and is scaled to N.

Each measurement is repeated ``--repeats`` times, interleaved, and the fastest is reported with the
share of the machine's CPU that other processes used meanwhile (the machine may be shared). The
naive Δ logit is checked against the command's for the naive cell types.

    python benchmarks/bench_variants.py --variants 8 --cells 250 --repeats 2
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bench_models import cpu_counters, others_share
from bench_predict import N_GENES, N_TRAIN, SEQ_LEN, synthetic_dataset
from chromtune.data.encoding import one_hot
from chromtune.interpret.alleles import WindowIndex
from chromtune.io.vcf import Variants
from chromtune.models import build_model
from chromtune.train.baselines import mean_accessibility
from chromtune.variants import Member, Placed, allele_windows, place_variants, score_blocks


def random_snvs(ds, n: int, seed: int) -> Variants:
    """`n` SNVs at random positions held by 20 bin windows each, REF from the genome."""
    rng = np.random.default_rng(seed)
    sequence = ds.genome["chr1"]
    low, high = int(ds.bin_start[0]) + SEQ_LEN, int(ds.bin_start[-1]) - SEQ_LEN // 2
    pos = np.sort(rng.choice(np.arange(low, high), n, replace=False))
    ref = sequence[pos]
    alt = (ref + rng.integers(1, 4, n)) % 4
    letters = np.asarray(list("ACGT"))
    return Variants(np.full(n, "chr1"), pos + 1, np.asarray([f"v{k}" for k in range(n)]), letters[ref], letters[alt],
                    np.full(n, "snv"), np.arange(n, dtype=np.int64) + 1)


@torch.inference_mode()
def naive(model, ds, placed, expression, mean, batch_size) -> np.ndarray:
    """(V, C) Δ logit of the centred window, the full model run per allele and cell type on every window."""
    windows = allele_windows(ds, WindowIndex(ds), placed.chrom, placed.position, placed.alt_code)
    m_all = mean[windows.mean_bin]
    out = np.empty((len(windows.bin), len(expression)), dtype=np.float32)
    for j, profile in enumerate(expression):
        for lo in range(0, len(windows.bin), batch_size):
            sl = slice(lo, lo + batch_size)
            expr = torch.as_tensor(profile).expand(len(windows.bin[sl]), -1)
            m = torch.as_tensor(m_all[sl])
            out[sl, j] = (model(one_hot(windows.alt[sl]), expr, m) - model(one_hot(windows.ref[sl]), expr, m)).numpy()
    return out[windows.bin < 0]


def chromtune_way(model, ds, placed, expression, mean, batch_size) -> np.ndarray:
    """(V, C) Δ logit of the centred window through the command's scoring."""
    return np.concatenate([measures["delta_logit"] for _, measures, _ in
                           score_blocks([Member(model, {}, mean)], ds, placed, expression, batch_size, "cpu")])


def timed(fn) -> tuple[float, float, float, object]:
    """(wall seconds, this process's CPU seconds, other processes' CPU share meanwhile, result)."""
    before, cpu, start = cpu_counters(), time.process_time(), time.perf_counter()
    result = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, others_share(before, cpu_counters()), result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", type=int, default=8)
    p.add_argument("--cells", type=int, default=250, help="cell types N")
    p.add_argument("--naive-cells", type=int, default=2, help="cell types the naive loop really runs")
    p.add_argument("--batch-size", type=int, default=64, help="windows per trunk pass (both alleles each)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    ds = synthetic_dataset(20 * args.variants + 64, args.seed)
    placed = place_variants(random_snvs(ds, args.variants, args.seed), ds, WindowIndex(ds), True, "bench")
    model = build_model("resnet", 2, n_genes=N_GENES, with_mean=True, seq_len=SEQ_LEN, width=1.0).eval()
    expression = np.random.default_rng(args.seed + 1).normal(2.0, 1.0, (args.cells, N_GENES)).astype(np.float32)
    mean = mean_accessibility(ds.labels, np.arange(N_TRAIN))
    k = min(args.naive_cells, args.cells)
    naive_name = f"naive (full model per allele and cell type), C={k}"
    cases = {
        "chromtune variants, C=1": lambda: chromtune_way(model, ds, placed, expression[:1], mean, args.batch_size),
        f"chromtune variants, C={args.cells}": lambda: chromtune_way(model, ds, placed, expression, mean,
                                                                     args.batch_size),
        naive_name: lambda: naive(model, ds, placed, expression[:k], mean, 2 * args.batch_size),
    }
    first = Placed(placed.variants.subset(slice(0, 1)), placed.chrom[:1], placed.position[:1], placed.alt_code[:1])
    chromtune_way(model, ds, first, expression[:2], mean, 8)  # warm-up
    best: dict[str, tuple[float, float, float]] = {}
    results = {}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            seconds, cpu, share, results[name] = timed(fn)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, cpu, share)
    error = float(np.abs(results[f"chromtune variants, C={args.cells}"][:, :k] - results[naive_name]).max())

    one, one_cpu, _ = best["chromtune variants, C=1"]
    rows = [(name, *values) for name, values in best.items()]
    if k < args.cells:
        seconds, cpu, _ = best[naive_name]
        rows.append((f"naive, C={args.cells} (scaled from C={k})", seconds * args.cells / k, cpu * args.cells / k,
                     float("nan")))
    print(f"command: python benchmarks/bench_variants.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"resnet width 1.0, {SEQ_LEN} bp windows every {ds.stride} bp, G={N_GENES}, {args.variants} SNVs "
          f"({len(placed.position) * 21} windows), batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; fastest of {args.repeats}")
    print("| method | wall s | variants/s | x C=1 (wall) | CPU s | x C=1 (CPU) | other processes' CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, cpu, share in rows:
        other = "" if share != share else f"{share:.0%}"
        print(f"| {name} | {seconds:.2f} | {args.variants / seconds:.3g} | {seconds / one:.2f} | {cpu:.2f} | "
              f"{cpu / one_cpu:.2f} | {other} |")
    print(f"chromtune vs naive, max |delta logit difference| over {args.variants} x {k} pairs: {error:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
