"""Cost of imputing many cell types at once: chromtune predict's fast path against the naive loop.

At the paper's size (ResNet trunk, width 1.0, 1000 bp windows, G = 1630 synthetic genes, the
simple stage-2 head with the mean feature) over a few hundred random bins, times:

- ``fast, C=1`` and ``fast, C=N``: :func:`chromtune.predict.scoring.predict_accessibility` (trunk once per
  bin, the head's first Linear split into per-bin and per-cell-type products);
- ``trunk once, whole head per pair``: what the training code's evaluation did before it shared the
  split head (the trunk feature repeated per cell type through the whole head, first Linear over
  4200 + G + 1 inputs included);
- ``naive``: the full model per cell type, ``model(x, expr, mean)``, as a user without chromtune
  would loop. Its cost is exactly linear in the number of cell types (each cell type is an
  independent full pass), so it runs for ``--naive-cells`` of them and is scaled to N; pass
  ``--naive-cells N`` to run all of them.

Each measurement is repeated ``--repeats`` times, interleaved, and the fastest is reported along
with the share of the machine's CPU other processes used during it (the machine is shared).
The fast path is also checked against the naive loop's probabilities for the naive cell types.

    python benchmarks/bench_predict.py --bins 256 --cells 250 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bench_models import cpu_counters, others_share
from chromtune.data.dataset import Dataset
from chromtune.data.encoding import one_hot
from chromtune.models import build_model
from chromtune.predict.scoring import predict_accessibility
from chromtune.train.baselines import mean_accessibility

N_GENES, SEQ_LEN, N_TRAIN = 1630, 1000, 103


def synthetic_dataset(n_bins: int, seed: int) -> Dataset:
    """One random chromosome with `n_bins` bins of 200 bp every 50 bp, 1000 bp windows."""
    rng = np.random.default_rng(seed)
    length = 50 * n_bins + SEQ_LEN
    return Dataset(
        chromosomes=["chr1"], bin_chrom=np.zeros(n_bins, dtype=np.int64),
        bin_start=SEQ_LEN // 2 + 50 * np.arange(n_bins), labels=(rng.random((n_bins, N_TRAIN)) < 0.05).astype(np.uint8),
        cell_types=[f"train{j}" for j in range(N_TRAIN)], expression=rng.random((N_TRAIN, N_GENES), dtype=np.float32),
        genes=[f"TF{g}" for g in range(N_GENES)], bin_size=200, stride=50, context=SEQ_LEN,
        genome={"chr1": rng.integers(0, 4, length, dtype=np.uint8)},
    )


@torch.inference_mode()
def whole_head_per_pair(model, ds, expression, bins, mean, batch_size):
    """Trunk once per bin, then the whole head on every (bin, cell type) pair (the evaluation's former way)."""
    out, expr, c = [], torch.as_tensor(expression), len(expression)
    for start in range(0, len(bins), max(1, batch_size // c)):
        chunk = bins[start:start + max(1, batch_size // c)]
        feat = model.trunk(one_hot(ds.window_codes(chunk)))
        m = torch.as_tensor(mean[chunk]).repeat_interleave(c).view(-1, 1)
        out.append(torch.sigmoid(model.head(feat.repeat_interleave(c, dim=0), expr.repeat(len(chunk), 1), m))
                   .view(len(chunk), c).numpy())
    return np.concatenate(out)


@torch.inference_mode()
def naive(model, ds, expression, bins, mean, batch_size):
    """The full model, trunk included, once per cell type."""
    out = np.empty((len(bins), len(expression)), dtype=np.float32)
    for j, profile in enumerate(expression):
        for start in range(0, len(bins), batch_size):
            chunk = bins[start:start + batch_size]
            expr = torch.as_tensor(profile).expand(len(chunk), -1)
            out[start:start + len(chunk), j] = torch.sigmoid(
                model(one_hot(ds.window_codes(chunk)), expr, torch.as_tensor(mean[chunk]))).numpy()
    return out


def timed(fn) -> tuple[float, float, float, object]:
    """(wall seconds, this process's CPU seconds, other processes' CPU share meanwhile, result)."""
    before, cpu, start = cpu_counters(), time.process_time(), time.perf_counter()
    result = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, others_share(before, cpu_counters()), result


def add_flags(p: argparse.ArgumentParser, repeats: int) -> None:
    """The flags bench_predict and bench_variants share: cell types, the naive loop's share, repeats, threads."""
    p.add_argument("--cells", type=int, default=250, help="new cell types N")
    p.add_argument("--naive-cells", type=int, default=2, help="cell types the naive loop really runs")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)


def paper_model(args, ds: Dataset) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """The paper-sized model (random weights, seeded), `args.cells` random expression profiles and the mean feature."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model("resnet", 2, n_genes=N_GENES, with_mean=True, seq_len=SEQ_LEN, width=1.0).eval()
    expression = np.random.default_rng(args.seed + 1).normal(2.0, 1.0, (args.cells, N_GENES)).astype(np.float32)
    return model, expression, mean_accessibility(ds.labels, np.arange(N_TRAIN))


def fastest(cases: dict, repeats: int, baseline: str, naive_name: str, k: int, cells: int):
    """Run `cases` (name -> function) `repeats` times, interleaved: (rows of (name, wall s, CPU s, others' share)
    of each one's fastest run, the naive loop's row scaled from `k` to `cells` cell types appended; the wall and
    CPU s of `baseline`; each case's last result)."""
    best: dict[str, tuple[float, float, float]] = {}
    results = {}
    for _ in range(repeats):
        for name, fn in cases.items():
            seconds, cpu, share, results[name] = timed(fn)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, cpu, share)
    rows = [(name, *values) for name, values in best.items()]
    if k < cells:
        seconds, cpu, _ = best[naive_name]
        rows.append((f"naive, C={cells} (scaled from C={k})", seconds * cells / k, cpu * cells / k, float("nan")))
    return rows, best[baseline][:2], results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bins", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--skip-whole-head", action="store_true")
    add_flags(p, repeats=3)
    args = p.parse_args(argv)

    ds = synthetic_dataset(args.bins, args.seed)
    model, expression, mean = paper_model(args, ds)
    bins = np.arange(args.bins)
    k = min(args.naive_cells, args.cells)
    naive_name = f"naive (full model per cell type), C={k}"
    cases = {
        "fast, C=1": lambda: predict_accessibility(model, ds, expression[:1], bins, mean, args.batch_size),
        f"fast, C={args.cells}": lambda: predict_accessibility(model, ds, expression, bins, mean, args.batch_size),
        naive_name: lambda: naive(model, ds, expression[:k], bins, mean, args.batch_size),
    }
    if not args.skip_whole_head:
        cases[f"trunk once, whole head per pair, C={args.cells}"] = lambda: whole_head_per_pair(
            model, ds, expression, bins, mean, args.batch_size)
    predict_accessibility(model, ds, expression[:2], bins[:8], mean)  # warm-up
    rows, (one, one_cpu), results = fastest(cases, args.repeats, "fast, C=1", naive_name, k, args.cells)
    error = float(np.abs(results[f"fast, C={args.cells}"][:, :k] - results[naive_name]).max())

    print(f"command: python benchmarks/bench_predict.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"resnet width 1.0, {SEQ_LEN} bp, G={N_GENES}, {args.bins} bins, batch {args.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; fastest of {args.repeats}")
    print("| method | wall s | x fast C=1 (wall) | CPU s | x fast C=1 (CPU) | ms per bin (wall) | other processes' CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, cpu, share in rows:
        other = "" if share != share else f"{share:.0%}"
        print(f"| {name} | {seconds:.2f} | {seconds / one:.2f} | {cpu:.2f} | {cpu / one_cpu:.2f} | "
              f"{1000 * seconds / args.bins:.1f} | {other} |")
    print(f"fast path vs naive loop, max |probability difference| over {args.bins} x {k} pairs: {error:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
