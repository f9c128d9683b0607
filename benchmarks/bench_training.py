"""CPU milliseconds per training step (forward + loss + backward + Adam) of stage 1 and stage 2 per
architecture and precision, the CPU milliseconds of getting a batch (sampling, gathering windows,
one-hot), and the share of a whole epoch's wall time outside the steps (batches, validation,
checkpointing: the loop's ``overhead_fraction``).

The step costs come from the training loop's own batches, model and loss, timed as this process's
CPU time (all of torch's threads), median over --steps steps after 3 warm-up steps: a steadier
figure than wall time on a shared machine. The epoch shares come from the real
loop in this process (FolderSession), two epochs, the second reported; the demo data set's
validation sizes when --data is not given. Precisions alternate within each repeat, so a load that
comes and goes hits both alike.

    python benchmarks/bench_training.py [--archs basset,factorized,resnet] [--width 0.25]
        [--batches 30] [--steps 15] [--threads 1] [--precisions fp32,bf16] [--repeats 3] [--data FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from chromtune.train.config import TrainConfig, size_defaults
from chromtune.train.loop import FolderSession, _Batches, build_for, run_loop
from chromtune.train.precision import resolve_precision
from chromtune.train.task import FoldTask

WARMUP = 3
CPU = torch.device("cpu")


def step_costs(cfg: TrainConfig, steps: int) -> dict:
    """Median CPU ms of getting a batch and of one step (forward, loss, backward, Adam), this process."""
    torch.set_num_threads(cfg.threads)
    task = FoldTask.from_config(cfg)
    model = build_for(cfg, task).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    batches = _Batches(cfg, task, CPU, 0, 1, bf16=resolve_precision(cfg.precision, CPU) == "bf16")
    getting, stepping = [], []
    for step in range(WARMUP + steps):
        started = time.process_time()
        batch = batches.get(0, step)
        got = time.process_time()
        loss = batches.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= WARMUP:
            getting.append(got - started)
            stepping.append(time.process_time() - got)
    return {"cpu_ms_step": 1000 * statistics.median(stepping), "cpu_ms_batch": 1000 * statistics.median(getting)}


def measure(cfg: TrainConfig, folder: Path) -> dict:
    session = FolderSession(folder)
    reported = []
    original = session.report

    def keep(metrics, checkpoint_folder, name):
        original(metrics, checkpoint_folder, name)
        reported.append(metrics)
    session.report = keep
    run_loop(cfg, session)
    last = reported[-1]  # the second epoch: warm caches, no first-call costs
    return {"batch_share": 1 - last["step_time_s"] / last["train_time_s"], "overhead": last["overhead_fraction"],
            "valid_s": last["valid_time_s"]}


def spread(values: list[float], form: str) -> str:
    """The median, and the range over repeats when there are several."""
    median = format(statistics.median(values), form)
    return median if len(values) == 1 else f"{median} ({format(min(values), form)}-{format(max(values), form)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="basset,factorized,resnet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per step-cost measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, auto")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.data:
        data = args.data
    else:
        from chromtune.data.demo import demo_path
        data = str(demo_path())
    sizes = size_defaults(on_demo=not args.data)
    precisions = args.precisions.split(",")
    results: dict[tuple, list[dict]] = {}
    for arch in args.archs.split(","):
        for _ in range(args.repeats):
            for precision in precisions:
                with tempfile.TemporaryDirectory() as tmp:
                    common = dict(data=data, arch=arch, width=args.width, epochs=2, threads=args.threads,
                                  precision=precision, valid_pairs=sizes["valid_pairs"])
                    cfg1 = TrainConfig(stage=1, batch_size=128, samples_per_epoch=args.batches * 128, **common)
                    s1 = {**measure(cfg1, Path(tmp) / "s1"), **step_costs(cfg1, args.steps)}
                    best = next(Path(tmp, "s1").glob("epoch_*/best.pt"))
                    cfg2 = TrainConfig(stage=2, batch_size=256, samples_per_epoch=args.batches * 256, init=str(best),
                                       **common)
                    s2 = {**measure(cfg2, Path(tmp) / "s2"), **step_costs(cfg2, args.steps)}
                results.setdefault((arch, 1, 128, precision), []).append(s1)
                results.setdefault((arch, 2, 256, precision), []).append(s2)
    print(f"width {args.width}, {args.batches} steps per epoch, torch threads {args.threads}, "
          f"median (range) of {args.repeats} repeat(s)")
    print("| arch | stage | batch | precision | CPU ms/step | CPU ms/batch got | getting batches, share of training | "
          "outside steps, share of epoch | validation s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for (arch, stage, batch, precision), runs in results.items():
        column = {key: [run[key] for run in runs] for key in runs[0]}
        print(f"| {arch} | {stage} | {batch} | {precision} | {spread(column['cpu_ms_step'], '.0f')} | "
              f"{spread(column['cpu_ms_batch'], '.1f')} | {spread([100 * v for v in column['batch_share']], '.1f')} % | "
              f"{spread([100 * v for v in column['overhead']], '.1f')} % | {spread(column['valid_s'], '.1f')} |",
              flush=True)


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main()
