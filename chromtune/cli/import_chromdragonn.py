"""``chromtune import-chromdragonn``: import the reference implementation's released data.

``DIR`` holds ``dnase.chr{1..22,X,Y}.packbit.joblib``; the logic lives in
:mod:`chromtune.data.reference`. The input folder is only read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from chromtune.atomic import check_output_file
from chromtune.cli import command_parser
from chromtune.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "import-chromdragonn",
        "Convert ChromDragoNN's released joblib files (bit-packed windows and labels per chromosome, and the "
        "expression matrix) into a chromtune data set, keeping the stored windows and their order. The joblib files "
        "are read with an unpickler that admits only arrays and plain containers.",
        ["chromtune import-chromdragonn --dnase dnase_dir --rna rna_quants.joblib --out data.h5",
         "chromtune import-chromdragonn --dnase dnase_dir --rna rna_quants.joblib --assembly hg19 --out hg19.h5"])
    parser.add_argument("--dnase", required=True, metavar="DIR", help="folder of dnase.chr*.packbit.joblib files")
    parser.add_argument("--rna", required=True, metavar="FILE", help="joblib file with 'rna_quants' (cells x genes)")
    parser.add_argument("--assembly", default="unknown", metavar="NAME", help="genome assembly name to record")
    parser.add_argument("--max-n-fraction", type=float, default=0.5, metavar="F",
                        help="drop a window when more than this fraction of its central bin (200 bp) is N "
                             "(assembly gaps)")
    parser.add_argument("--out", required=True, metavar="H5", help="data set file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_file(args.out, "--out")
    from chromtune.data.dataset import write_dataset
    from chromtune.data.reference import import_chromdragonn
    dataset, provenance = import_chromdragonn(args.dnase, args.rna, assembly=args.assembly,
                                              max_n_fraction=args.max_n_fraction)
    write_dataset(args.out, dataset, provenance)
    print(f"wrote {args.out}: {dataset.n_bins} windows of {dataset.context} bp on {len(dataset.chromosomes)} "
          f"chromosome(s) x {dataset.n_cell_types} cell types, {dataset.n_genes} genes")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
