"""``chromtune demo``: write the embedded demo data set.

The cached copy lives in ``$CHROMTUNE_CACHE`` (default ``~/.cache/chromtune``); see
:mod:`chromtune.data.demo` for what the data set holds and how it is generated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.atomic import check_output_file
from chromtune.cli import command_parser
from chromtune.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "demo",
        "Write the embedded demo data set: a laptop-sized synthetic genome in which nine real JASPAR motifs "
        "open chromatin in the thirty cell types that express their TFs. It builds in about a second and "
        "needs no download. Without --out, the cached copy is built or reused and its path printed.",
        ["chromtune demo --out demo.h5",
         "chromtune demo --out demo-seed3.h5 --seed 3   # another draw of the same design"])
    parser.add_argument("--out", type=Path, help="output HDF5 file (default: the cached copy, whose path is printed)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the generator")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seed < 0:
        raise UserError(f"--seed: must be a non-negative integer, got {args.seed}")
    if args.out is not None:
        check_output_file(args.out, "--out")
    from chromtune.data.demo import demo_path, write_demo
    try:
        path = write_demo(args.out, args.seed) if args.out is not None else demo_path(seed=args.seed)
    except OSError as err:
        where = f"--out {args.out}" if args.out is not None else "demo cache ($CHROMTUNE_CACHE)"
        raise UserError(f"{where}: cannot write ({err.strerror or err})") from None
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
