"""``chromtune demo [--out FILE] [--seed S]``: write the embedded demo data set.

    chromtune demo --out demo.h5            # build it (a second or less) and write it atomically
    chromtune demo --out demo.h5 --seed 3   # another draw of the same design
    chromtune demo                          # build or reuse the cached copy and print its path

The cached copy lives in ``$CHROMTUNE_CACHE`` (default ``~/.cache/chromtune``); see
:mod:`chromtune.data.demo` for what the data set holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.data.demo import demo_path, write_demo
from chromtune.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chromtune demo", description="Write the embedded demo data set.")
    parser.add_argument("--out", type=Path, help="output HDF5 file (default: the cached copy, whose path is printed)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the generator (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seed < 0:
        raise UserError(f"--seed: must be a non-negative integer, got {args.seed}")
    if args.out is not None and args.out.is_dir():
        raise UserError(f"--out {args.out}: is a folder, expected a file name")
    try:
        path = write_demo(args.out, args.seed) if args.out is not None else demo_path(seed=args.seed)
    except OSError as err:
        where = f"--out {args.out}" if args.out is not None else "demo cache ($CHROMTUNE_CACHE)"
        raise UserError(f"{where}: cannot write ({err.strerror or err})") from None
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
