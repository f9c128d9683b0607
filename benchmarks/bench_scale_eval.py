"""Training epochs, validation and the test evaluation at two genome sizes: which costs stay flat.

For each ``--fractions`` f it writes (in a temporary folder) a synthetic data set shaped like hg38
scaled by f: the 24 chromosomes with hg38's lengths times f, random sequence, bins of 200 bp every
50 bp with 1000-bp windows, ``--cell-types`` cell types each accessible in 1-3 % of the bins,
``--genes`` genes; the reference's fixed split (103 train / 10 validation / 10 test). Then, in
this process, on ``--arch`` at ``--width``:

- a stage-1 and a stage-2 epoch of ``--batches`` fixed batches of ``--batch-size``: wall time, and
  the share outside forward/backward (sampling the batch, gathering windows, one-hot encoding);
- the validation of each stage on its fixed sample (``--valid-bins``, ``--valid-pairs``), beside the
  number of bins / pairs that scoring every held-out pair (the behaviour before the sample) costs;
- the test evaluation (model + both baselines, streamed metrics) on ``--test-bins`` test bins x the
  10 test cell types, per test cell type and in pairs/s, beside ``predict_accessibility`` on the same
  pairs, and at a quarter of the bins to check it is linear in the number of pairs.

    python benchmarks/bench_scale_eval.py [--fractions 0.015625 0.125] [--arch resnet] [--width 0.25]
                                          [--batches 4] [--batch-size 64] [--valid-bins 500]
                                          [--valid-pairs 5000] [--test-bins 500] [--seed 0]

Prints one JSON line per fraction. Times are this process's CPU seconds (``cpu_s``, all its threads),
which a loaded machine inflates far less than wall seconds (``s``), and both are given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chromtune.data.dataset import Dataset, write_dataset
from chromtune.data.encoding import one_hot
from chromtune.data.sampling import Stage1Sampler, Stage2Sampler
from chromtune.models import build_model
from chromtune.predict.scoring import predict_accessibility
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import test_bins, test_evaluation, validation_metrics, validation_sample
from chromtune.train.task import FoldTask

HG38 = [248_956_422, 242_193_529, 198_295_559, 190_214_555, 181_538_259, 170_805_979, 159_345_973, 145_138_636,
        138_394_717, 133_797_422, 135_086_622, 133_275_309, 114_364_328, 107_043_718, 101_991_189, 90_338_345,
        83_257_441, 80_373_285, 58_617_616, 64_444_167, 46_709_983, 50_818_468, 156_040_895, 57_227_415]
NAMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY"]
STRIDE, BIN, CONTEXT = 50, 200, 1000
CPU = torch.device("cpu")


def synthetic(fraction: float, n_cells: int, n_genes: int, seed: int) -> Dataset:
    """hg38's chromosome lengths times `fraction`, random sequence and labels (1-3 % positive per cell type)."""
    rng = np.random.default_rng(seed)
    lengths = [max(CONTEXT + BIN, int(length * fraction)) for length in HG38]
    genome = {name: rng.integers(0, 4, length, dtype=np.uint8) for name, length in zip(NAMES, lengths)}
    starts = [np.arange(CONTEXT // 2, length - CONTEXT // 2 - BIN + 1, STRIDE) for length in lengths]
    n_bins = sum(len(s) for s in starts)
    rate = (rng.uniform(0.01, 0.03, n_cells) * 256).astype(np.uint8)
    labels = np.empty((n_bins, n_cells), dtype=np.uint8)
    for lo in range(0, n_bins, 1 << 20):  # in blocks: a float matrix of the whole would not fit
        block = rng.integers(0, 256, (min(1 << 20, n_bins - lo), n_cells), dtype=np.uint8)
        labels[lo:lo + len(block)] = block < rate
    return Dataset(chromosomes=NAMES, bin_chrom=np.repeat(np.arange(len(NAMES)), [len(s) for s in starts]),
                   bin_start=np.concatenate(starts), labels=labels, cell_types=[f"cell{j:03d}" for j in range(n_cells)],
                   expression=rng.lognormal(1.0, 1.0, (n_cells, n_genes)).astype(np.float32),
                   genes=[f"TF{g}" for g in range(n_genes)], bin_size=BIN, stride=STRIDE, context=CONTEXT,
                   genome=genome)


def epoch(model, task: FoldTask, stage: int, batches: int, batch_size: int, seed: int) -> dict:
    """One training epoch of fixed batches: wall time and the share outside forward/backward."""
    ds, fold = task.dataset, task.fold
    sampler = (Stage1Sampler if stage == 1 else Stage2Sampler)(ds.labels, task.bins.train, fold.train, batch_size,
                                                              seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    data_s = compute_s = 0.0
    wall = time.perf_counter()
    for step in range(batches):
        started = time.process_time()
        batch = sampler.batch(0, step)
        x = one_hot(ds.window_codes(batch[0]), CPU)
        y = torch.as_tensor(batch[-1])
        if stage == 2:
            expr = torch.as_tensor(ds.expression[batch[1]])
            mean = torch.as_tensor(task.mean_access[batch[0]])
        prepared = time.process_time()
        if stage == 1:
            loss = F.binary_cross_entropy_with_logits(model(x), y, reduction="none").sum(1).mean()
        else:
            loss = F.binary_cross_entropy_with_logits(model(x, expr, mean), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        data_s += prepared - started
        compute_s += time.process_time() - prepared
    return {"s": round(time.perf_counter() - wall, 2), "cpu_s": round(data_s + compute_s, 2),
            "outside_forward_backward": round(data_s / (data_s + compute_s), 4),
            "samples_per_cpu_s": round(batches * batch_size / (data_s + compute_s), 1)}


def timed(fn):
    """(wall seconds, CPU seconds, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def measure(fraction: float, args: argparse.Namespace, root: Path) -> dict:
    path = root / f"hg38x{fraction:g}.h5"
    make_s, _, dataset = timed(lambda: synthetic(fraction, args.cell_types, args.genes, args.seed))
    write_s, _, _ = timed(lambda: write_dataset(path, dataset))
    dataset = None  # the measured process holds what opening the file gives it, not this copy
    common = dict(data=str(path), arch=args.arch, width=args.width, split="reference", seed=args.seed,
                  valid_bins=args.valid_bins, valid_pairs=args.valid_pairs, eval_batch_size=256)
    cfg1 = TrainConfig(stage=1, **common)
    cfg2 = TrainConfig(stage=2, init="unused", **common)
    open_s, _, task = timed(lambda: FoldTask.from_config(cfg1))
    fold, bins = task.fold, task.bins
    torch.manual_seed(args.seed)
    stage1 = build_model(args.arch, 1, n_tasks=len(fold.train), seq_len=CONTEXT, width=args.width)
    stage2 = build_model(args.arch, 2, n_genes=task.dataset.n_genes, with_mean=True, seq_len=CONTEXT,
                         width=args.width)
    result = {"fraction": fraction, "bins": task.dataset.n_bins, "cell_types": args.cell_types,
              "make_s": round(make_s, 1), "write_s": round(write_s, 1), "open_and_split_s": round(open_s, 1),
              "arch": args.arch, "width": args.width, "threads": torch.get_num_threads()}
    result["stage1_epoch"] = epoch(stage1, task, 1, args.batches, args.batch_size, args.seed)
    result["stage2_epoch"] = epoch(stage2, task, 2, args.batches, args.batch_size, args.seed)
    for stage, cfg, model in ((1, cfg1, stage1), (2, cfg2, stage2)):
        sample_bins, cells, _ = validation_sample(task, cfg)
        seconds, cpu, _ = timed(lambda: validation_metrics(model, task, cfg, CPU))
        every_pair = (len(bins.valid) * len(fold.train) if stage == 1 else len(bins.fit) * len(fold.valid))
        result[f"stage{stage}_validation"] = {
            "s": round(seconds, 2), "cpu_s": round(cpu, 2), "bins": len(sample_bins),
            "pairs": len(sample_bins) * len(cells), "cpu_ms_per_bin": round(1000 * cpu / len(sample_bins), 2),
            "all_pairs_bins": len(bins.valid) if stage == 1
            else len(bins.fit), "all_pairs": every_pair}
    for share, name in ((1, "test"), (4, "test_quarter")):
        every = max(1, len(bins.test) * share // args.test_bins)
        cfg = replace(cfg2, test_every=every)
        chosen, _ = test_bins(task, cfg)
        seconds, cpu, report = timed(lambda: test_evaluation(stage2, task, cfg, CPU))
        pairs = report["pairs"]["pairs"]
        result[name] = {"bins": len(chosen), "pairs": pairs, "s": round(seconds, 2), "cpu_s": round(cpu, 2),
                        "cpu_s_per_test_cell_type": round(cpu / len(fold.test), 3),
                        "pairs_per_cpu_s": round(pairs / cpu, 1)}
        if share == 1:
            expression = task.dataset.expression[list(fold.test)]
            chosen = np.asarray(chosen)
            seconds, cpu, _ = timed(lambda: predict_accessibility(stage2, task.dataset, expression, chosen,
                                                                  task.mean_access, batch_size=256))
            result["predict"] = {"pairs": pairs, "s": round(seconds, 2), "cpu_s": round(cpu, 2),
                                 "pairs_per_cpu_s": round(pairs / cpu, 1)}
            result["all_test_pairs"] = len(bins.test) * len(fold.test)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fractions", type=float, nargs="+", default=[1 / 64, 1 / 8])
    p.add_argument("--cell-types", type=int, default=123)
    p.add_argument("--genes", type=int, default=1630)
    p.add_argument("--arch", default="resnet")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--valid-bins", type=int, default=500)
    p.add_argument("--valid-pairs", type=int, default=5000)
    p.add_argument("--test-bins", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-eval-") as tmp:
        for fraction in args.fractions:
            print(json.dumps(measure(fraction, args, Path(tmp))), flush=True)
            for leftover in Path(tmp).iterdir():
                leftover.unlink()


if __name__ == "__main__":
    main()
