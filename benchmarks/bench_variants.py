"""Variants per second of ``chromtune variants`` for 1 and for N cell types, against the naive way.

At the paper's size (ResNet trunk, width 1.0, 1000 bp windows, bins of 200 bp every 50 bp, G = 1630
synthetic genes, the simple stage-2 head with the mean feature, random weights), for random SNVs on
a random genome (each lies in 20 bin windows, plus the window centred on it: 21 windows, 42 allele
sequences), times:

- ``chromtune, C=1`` and ``chromtune, C=N``: :func:`chromtune.variants.effects.score_blocks`, the command's
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

import numpy as np
import torch

from bench_predict import N_GENES, SEQ_LEN, add_flags, fastest, paper_model, synthetic_dataset
from chromtune.data.encoding import one_hot
from chromtune.data.alleles import WindowIndex
from chromtune.io.vcf import Variants
from chromtune.predict.scoring import Member
from chromtune.variants.effects import Placed, allele_windows, place_variants, score_blocks


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64, help="windows per trunk pass (both alleles each)")
    add_flags(p, repeats=2)
    args = p.parse_args(argv)

    ds = synthetic_dataset(20 * args.variants + 64, args.seed)
    placed = place_variants(random_snvs(ds, args.variants, args.seed), ds, WindowIndex(ds), True, "bench")
    model, expression, mean = paper_model(args, ds)
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
    rows, (one, one_cpu), results = fastest(cases, args.repeats, "chromtune variants, C=1", naive_name, k,
                                            args.cells)
    error = float(np.abs(results[f"chromtune variants, C={args.cells}"][:, :k] - results[naive_name]).max())

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
