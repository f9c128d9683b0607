"""Training-step throughput of the stage-1 models on this machine's CPU.

For each architecture (1000 bp, T = 103 tasks) and layout, times forward + backward + Adam
steps after warm-up and reports samples/s and achieved FLOP/s as a fraction of this machine's
dense float32 matmul FLOP/s (n x n matmuls, measured in the same run). A training step counts
as 3x the forward FLOPs, which are counted by ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and linear layers; 2 FLOPs per multiply-add).

Layouts: ``conv1d`` (chromtune's models: Conv1d on (N, 4, L)); ``conv2d`` (the reference
code's layout: the same network with Conv2d (k, 1) kernels on (N, 4, L, 1)); ``conv2d-cl``
(that, in channels_last memory format).

On a shared machine other processes distort timings, so each step is timed separately along
with the share of the machine's CPU that other processes used meanwhile (from /proc/stat).
A step is "quiet" when that share is below 5 %. Steps run until `--steps` quiet ones are
collected or `--max-seconds` pass; the table reports the fastest quiet step (the fastest step
of all, marked "*", if none was quiet) and how many steps were quiet. The matmul reference is
likewise the fastest of many matmuls, measured before and after every model.

    python benchmarks/bench_models.py --batch-size 64 --steps 3
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from chromtune.models import ARCHITECTURES, build_model

LAYOUTS = ("conv1d", "conv2d", "conv2d-cl")
N_TASKS, SEQ_LEN = 103, 1000
QUIET = 0.05  # a step is quiet when other processes used less than this share of the CPU


def cpu_counters() -> tuple[int, int, int] | None:
    """(all CPU jiffies, busy jiffies, this process's jiffies), or None without /proc."""
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:9]]  # user .. steal
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(cpu), sum(cpu) - cpu[3] - cpu[4], int(own[11]) + int(own[12])


def others_share(before, after) -> float:
    """Share of the machine's CPU used by other processes between two `cpu_counters()`."""
    if before is None or after is None:
        return 0.0
    total, busy, own = (a - b for a, b in zip(after, before))
    return max(0.0, (busy - own) / total) if total else 0.0


def matmul_flops(n: int, reps: int) -> float:
    """Best float32 FLOP/s of an n x n matmul over `reps` tries."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def to_conv2d(module: nn.Module) -> nn.Module:
    """Replace, in place, every Conv1d / BatchNorm1d / MaxPool1d by its (k, 1) 2-D twin."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv1d):
            new = nn.Conv2d(child.in_channels, child.out_channels, (child.kernel_size[0], 1),
                            padding=(child.padding[0], 0))
            with torch.no_grad():
                new.weight.copy_(child.weight.unsqueeze(-1))
                new.bias.copy_(child.bias)
        elif isinstance(child, nn.BatchNorm1d):
            new = nn.BatchNorm2d(child.num_features)
            new.load_state_dict(child.state_dict())
        elif isinstance(child, nn.MaxPool1d):
            new = nn.MaxPool2d((child.kernel_size, 1))
        else:
            new = to_conv2d(child)
        setattr(module, name, new)
    return module


class Conv2dModel(nn.Module):
    """A stage-1 model in the reference layout: input (N, 4, L, 1)."""

    def __init__(self, model: nn.Module, channels_last: bool):
        super().__init__()
        self.layers = to_conv2d(copy.deepcopy(model.trunk.layers))
        self.head = model.head
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(-1).contiguous(memory_format=self.memory_format)
        return self.head(self.layers(x).flatten(1))


def make_model(arch: str, layout: str) -> nn.Module:
    """The stage-1 model in `layout`; a 2-D twin is checked against the Conv1d original."""
    model = build_model(arch, n_tasks=N_TASKS, seq_len=SEQ_LEN)
    if layout == "conv1d":
        return model
    twin = Conv2dModel(model, channels_last=layout == "conv2d-cl")
    x = one_hot_batch(2)
    with torch.no_grad():
        torch.testing.assert_close(twin.eval()(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    return twin


def one_hot_batch(batch: int) -> torch.Tensor:
    idx = torch.randint(0, 4, (batch, SEQ_LEN))
    return nn.functional.one_hot(idx, 4).permute(0, 2, 1).float().contiguous()


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def time_training(model: nn.Module, x: torch.Tensor, warmup: int, steps: int,
                  max_seconds: float) -> tuple[float, int, int]:
    """Time forward + backward + Adam steps: (best seconds, quiet steps, all steps)."""
    y = (torch.rand(x.shape[0], N_TASKS) < 0.05).float()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    model.train()
    quiet, noisy = [], []
    deadline = None
    for i in itertools.count():
        before, start = cpu_counters(), time.perf_counter()
        opt.zero_grad(set_to_none=True)
        (loss_fn(model(x), y) / x.shape[0]).backward()
        opt.step()
        seconds = time.perf_counter() - start
        if i < warmup:
            continue
        deadline = deadline or time.perf_counter() + max_seconds
        (quiet if others_share(before, cpu_counters()) < QUIET else noisy).append(seconds)
        if len(quiet) >= steps or time.perf_counter() > deadline:
            break
    return min(quiet or noisy), len(quiet), len(quiet) + len(noisy)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="quiet timed steps wanted per model")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    p.add_argument("--max-seconds", type=float, default=30.0, help="timing budget per model")
    p.add_argument("--archs", default=",".join(ARCHITECTURES), help="comma-separated names")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated: " + ", ".join(LAYOUTS))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--matmul-size", type=int, default=2048)
    args = p.parse_args(argv)
    args.archs, args.layouts = args.archs.split(","), args.layouts.split(",")
    for flag, names, valid in (("--archs", args.archs, ARCHITECTURES), ("--layouts", args.layouts, LAYOUTS)):
        unknown = [n for n in names if n not in valid]
        if unknown:
            p.error(f"{flag}: unknown name {unknown[0]!r}; valid names: {', '.join(valid)}")
    if args.batch_size < 2 or args.steps < 1 or args.warmup < 0 or args.max_seconds <= 0:
        p.error("need --batch-size >= 2, --steps >= 1, --warmup >= 0, --max-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = matmul_flops(args.matmul_size, reps=20)
    x = one_hot_batch(args.batch_size)
    rows = []
    for arch in args.archs:
        for layout in args.layouts:
            model = make_model(arch, layout)
            fwd = forward_flops(model, x) / len(x)
            trunk = (forward_flops(model.trunk, x) if layout == "conv1d"
                     else forward_flops(model.layers, x[..., None]))
            seconds, n_quiet, n_all = time_training(model, x, args.warmup, args.steps, args.max_seconds)
            peak = max(peak, matmul_flops(args.matmul_size, reps=20))
            rows.append((arch, layout, trunk / len(x), fwd, seconds, n_quiet, n_all))
            print(f"{arch} {layout}: {seconds:.3f} s/step", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{SEQ_LEN} bp, T = {N_TASKS}; float32 {args.matmul_size}x{args.matmul_size} matmul: "
          f"{peak / 1e9:.1f} GFLOP/s (best of the run).\n")
    print("| arch | layout | trunk fwd GFLOP/seq | model fwd GFLOP/seq | step s | samples/s "
          "| GFLOP/s (3x fwd) | % of matmul | quiet steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arch, layout, trunk, fwd, seconds, n_quiet, n_all in rows:
        flops = 3 * fwd * args.batch_size / seconds
        mark = "" if n_quiet else "*"
        print(f"| {arch} | {layout} | {trunk / 1e9:.3f} | {fwd / 1e9:.3f} | {seconds:.3f}{mark} "
              f"| {args.batch_size / seconds:.1f} | {flops / 1e9:.1f} | {flops / peak:.0%} "
              f"| {n_quiet}/{n_all} |")


if __name__ == "__main__":
    main()
