"""CPU milliseconds per training step with the trunk's channel counts rounded up to a multiple of M
(issue 22 item 4: do widths that suit oneDNN's 8- and 16-channel blocks run faster at small widths?).

Builds the models as ``build_model`` does, with ``chromtune.models.trunks.scale_channels`` replaced by
round-up-to-M for the run (M = 1 is chromtune as it is), and times forward + loss + backward + Adam on
random one-hot windows, random expression and labels at the demo's sizes (300 bp, 21 training cell
types or 50 genes), this process's CPU time over --steps steps after 3 warm-up steps, median over
--repeats; multiples and precisions alternate within each repeat, so a load that comes and goes hits
all alike. Also prints the trunk's channel counts and parameters, since rounding up adds work.

    python benchmarks/bench_channel_multiple.py [--arch resnet] [--width 0.125] [--multiples 1,8,16]
        [--precisions fp32,bf16] [--steps 10] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from chromtune.models import build_model, count_parameters, trunks
from chromtune.train.precision import autocast, resolve_precision

SEQ_LEN, TASKS, GENES = 300, 21, 50  # the demo: 300-bp windows, 21 training cell types per fold, 50 genes
CASES = ((1, 128), (2, 256))  # (stage, batch): the grids' smallest batches
WARMUP = 3


def rounded_up(multiple: int):
    """scale_channels, then up to a multiple of ``multiple``."""
    original = trunks.scale_channels

    def scale(channels: int, width: float) -> int:
        return multiple * math.ceil(original(channels, width) / multiple)

    return scale


def build(arch: str, stage: int, width: float, multiple: int) -> torch.nn.Module:
    original = trunks.scale_channels
    trunks.scale_channels = rounded_up(multiple)
    try:
        torch.manual_seed(0)
        if stage == 1:
            return build_model(arch, 1, n_tasks=TASKS, seq_len=SEQ_LEN, width=width)
        return build_model(arch, 2, n_genes=GENES, with_mean=True, seq_len=SEQ_LEN, width=width)
    finally:
        trunks.scale_channels = original


def step_ms(model: torch.nn.Module, stage: int, batch: int, bf16: bool, steps: int) -> float:
    """Median CPU ms of one training step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    x = F.one_hot(torch.randint(0, 4, (batch, SEQ_LEN), generator=generator), 4).float().transpose(1, 2).contiguous()
    if stage == 1:
        inputs, y = (x,), (torch.rand(batch, TASKS, generator=generator) < 0.1).float()
    else:
        inputs = (x, torch.randn(batch, GENES, generator=generator), torch.rand(batch, generator=generator))
        y = (torch.rand(batch, generator=generator) < 0.25).float()
    times = []
    for step in range(WARMUP + steps):
        started = time.process_time()
        with autocast(torch.device("cpu"), bf16):
            logits = model(*inputs)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= WARMUP:
            times.append(1000 * (time.process_time() - started))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--multiples", default="1,8,16")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    multiples = [int(m) for m in args.multiples.split(",")]
    precisions = [resolve_precision(name, torch.device("cpu")) for name in args.precisions.split(",")]
    for multiple in multiples:
        trunk = build(args.arch, 1, args.width, multiple).trunk
        convs = [m.out_channels for m in trunk.modules() if isinstance(m, torch.nn.Conv1d)]
        print(f"multiple {multiple}: conv channels {sorted(set(convs))}, trunk parameters "
              f"{count_parameters(trunk):,}", flush=True)
    results = {}
    for _ in range(args.repeats):
        for stage, batch in CASES:
            for multiple in multiples:
                for precision in precisions:
                    model = build(args.arch, stage, args.width, multiple).train()
                    ms = step_ms(model, stage, batch, precision == "bf16", args.steps)
                    results.setdefault((stage, batch, multiple, precision), []).append(ms)
    print(f"\n{args.arch} width {args.width}, {args.threads} thread(s), CPU ms per step, median (range) over "
          f"{args.repeats} repeats")
    print("| stage:batch | multiple | precision | CPU ms/step | against multiple 1 |")
    print("|---|---:|---|---:|---:|")
    for (stage, batch, multiple, precision), values in results.items():
        base = statistics.median(results[(stage, batch, multiples[0], precision)])
        median = statistics.median(values)
        print(f"| {stage}:{batch} | {multiple} | {precision} | {median:.0f} ({min(values):.0f}-{max(values):.0f}) | "
              f"{median / base:.2f} |")


if __name__ == "__main__":
    main()
