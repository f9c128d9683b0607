"""How long ``chromtune X --help`` takes for every command, interpreter start included (goal: < 1 s).

    python benchmarks/bench_cli.py [--repeats 5]

Each command runs as a user runs it, in a fresh interpreter (``python -m chromtune.cli X --help``,
what the ``chromtune`` console script does), ``--repeats`` times; the table gives the median wall
time and the median CPU time (user + system of the child, which load on the machine inflates
less than wall time), beside a bare interpreter start (``python -c pass``) for scale.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from chromtune.cli import COMMANDS  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # this checkout


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``argv``; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    args = parser.parse_args()
    cases = {"python -c pass": [sys.executable, "-c", "pass"],
             "chromtune --help": [sys.executable, "-m", "chromtune.cli", "--help"]}
    cases.update({f"chromtune {name} --help": [sys.executable, "-m", "chromtune.cli", name, "--help"]
                  for name in COMMANDS})
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'command':<40} {'wall s':>8} {'CPU s':>8}   (median of {args.repeats})")
    worst = 0.0
    for label, argv in cases.items():
        runs = [timed(argv) for _ in range(args.repeats)]
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        if label != "python -c pass":
            worst = max(worst, wall)
        print(f"{label:<40} {wall:8.3f} {cpu:8.3f}")
    print(f"slowest --help: {worst:.3f} s wall (goal < 1 s); load average at end: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
