"""Samples per second of stage-1 and stage-2 epochs per architecture, and the fraction of epoch
time spent outside forward/backward/step (data, metrics, validation, checkpointing).

Runs the real training loop in this process (FolderSession) on the demo data set or --data.

    python benchmarks/bench_training.py [--archs basset,factorized,resnet] [--width 0.25]
        [--batches 30] [--threads 2] [--data FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from chromtune.train.config import TrainConfig
from chromtune.train.loop import FolderSession, run_loop


def measure(cfg: TrainConfig, folder: Path) -> dict:
    session = FolderSession(folder)
    reported = []
    original = session.report

    def keep(metrics, checkpoint_folder, name):
        started = time.perf_counter()
        original(metrics, checkpoint_folder, name)
        reported.append({**metrics, "report_s": time.perf_counter() - started})
    session.report = keep
    run_loop(cfg, session)
    last = reported[-1]  # the second epoch: warm caches, no first-call costs
    return {"samples_per_s": last["samples_per_s"], "overhead": last["overhead_fraction"],
            "valid_s": last["valid_time_s"], "train_s": last["train_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="basset,factorized,resnet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.data:
        data = args.data
    else:
        from chromtune.data.demo import demo_path
        data = str(demo_path())
    print(f"| arch | stage | batch | samples/s | outside fwd/bwd/step | validation s | torch threads {args.threads} |")
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            common = dict(data=data, arch=arch, width=args.width, epochs=2, threads=args.threads)
            s1 = measure(TrainConfig(stage=1, batch_size=128, samples_per_epoch=args.batches * 128, **common), Path(tmp) / "s1")
            best = next(Path(tmp, "s1").glob("epoch_*/best.pt"))
            s2 = measure(TrainConfig(stage=2, batch_size=256, samples_per_epoch=args.batches * 256,
                                      init=str(best), **common), Path(tmp) / "s2")
        for stage, batch, m in ((1, 128, s1), (2, 256, s2)):
            print(f"| {arch} | {stage} | {batch} | {m['samples_per_s']:,.0f} | {m['overhead']:.1%} | {m['valid_s']:.1f} | |",
                  flush=True)


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main()
