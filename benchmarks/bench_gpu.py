"""Training throughput of the three trunks on a CUDA GPU, and a smoke sweep with one GPU per worker.

For each architecture (stage-1 model, width 1.0, 1000 bp, T = 103 tasks) and each precision —
float32, bf16 autocast, and both again under ``torch.compile`` — times forward + BCE + backward +
Adam steps after warm-up (the GPU synchronised around each timed block) and reports training
samples/s. ``torch.compile`` is reported beside eager mode and counts as a win only when faster;
chromtune's training loop stays eager until such a figure says otherwise. Then it runs
``python -m chromtune.sweep --arch resnet --folds 2 --smoke-test --workers-per-trial 1
--gpus-per-worker 1`` in a temporary folder and reports its wall time and exit status.

On a machine without a CUDA GPU it prints one line saying so and exits 0, so it is safe anywhere
(it is never part of the tests).

    python benchmarks/bench_gpu.py [--batch-size 256] [--steps 20] [--no-compile] [--no-sweep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn

from chromtune.models import ARCHITECTURES, build_model

N_TASKS, SEQ_LEN = 103, 1000
PRECISIONS = ("float32", "bf16")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per (arch, precision)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    p.add_argument("--archs", default=",".join(ARCHITECTURES), help="comma-separated names")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    p.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the smoke sweep")
    args = p.parse_args(argv)
    args.archs = args.archs.split(",")
    unknown = [a for a in args.archs if a not in ARCHITECTURES]
    if unknown:
        p.error(f"--archs: unknown name {unknown[0]!r}; valid names: {', '.join(ARCHITECTURES)}")
    if args.batch_size < 2 or args.steps < 1 or args.warmup < 1:
        p.error("need --batch-size >= 2, --steps >= 1, --warmup >= 1")
    return args


def samples_per_s(arch: str, precision: str, compiled: bool, args: argparse.Namespace) -> float:
    """Training samples/s of one stage-1 model on the GPU."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(arch, n_tasks=N_TASKS, seq_len=SEQ_LEN).to(device).train()
    step_model = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    x = nn.functional.one_hot(torch.randint(0, 4, (args.batch_size, SEQ_LEN), device=device), 4)
    x = x.permute(0, 2, 1).float().contiguous()
    y = (torch.rand(args.batch_size, N_TASKS, device=device) < 0.05).float()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = step_model(x)
        nn.functional.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").sum(1).mean().backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    return args.batch_size * args.steps / (time.perf_counter() - start)


def smoke_sweep() -> tuple[int, float]:
    """The sweep's smoke test with one GPU per Ray Train worker: (exit status, wall seconds)."""
    command = [sys.executable, "-m", "chromtune.sweep", "--arch", "resnet", "--folds", "2", "--smoke-test",
               "--workers-per-trial", "1", "--gpus-per-worker", "1"]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        status = subprocess.call(command, cwd=folder)
        return status, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not torch.cuda.is_available():
        print("no GPU: torch sees no CUDA device on this machine, so there is nothing to measure")
        return 0
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0)
    print(f"{name}, torch {torch.__version__}, batch {args.batch_size}, {SEQ_LEN} bp, T = {N_TASKS}, "
          f"{args.steps} timed steps after {args.warmup} warm-up\n")
    modes = [(p, False) for p in PRECISIONS] + ([(p, True) for p in PRECISIONS] if args.compile else [])
    print("| arch | " + " | ".join(f"{p}{' compiled' if c else ''} samples/s" for p, c in modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for arch in args.archs:
        rates = [samples_per_s(arch, precision, compiled, args) for precision, compiled in modes]
        print(f"| {arch} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)
        if args.compile:
            gains = [rates[i + len(PRECISIONS)] / rates[i] for i in range(len(PRECISIONS))]
            verdict = ", ".join(f"{p} x{g:.2f}" for p, g in zip(PRECISIONS, gains))
            print(f"  torch.compile vs eager: {verdict} ({'faster' if min(gains) > 1 else 'not faster everywhere'})",
                  flush=True)
    if args.sweep:
        status, seconds = smoke_sweep()
        print(f"\nsmoke sweep (--workers-per-trial 1 --gpus-per-worker 1): exit {status}, {seconds:.0f} s wall")
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
