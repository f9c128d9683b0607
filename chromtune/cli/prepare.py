"""``chromtune prepare``: build a data set file from a FASTA, peak files and an expression table.

The logic lives in :mod:`chromtune.data.prepare` (streaming build) and
:mod:`chromtune.data.dataset` (the HDF5 writer); this module parses flags, checks the output path
before any work and writes the file atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.atomic import check_output_file
from chromtune.cli import command_parser
from chromtune.errors import UserError, run_cli

TRANSFORM_NAMES = ("log1p", "arcsinh", "none")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "prepare",
        "Build a chromtune data set (one HDF5 file) from a genome FASTA, a sample sheet naming one "
        "narrowPeak/BED peak file per cell type, and a TPM expression table. Bins are positive in a cell "
        "type when more than half of them lies in its peaks. Input files are only read, never written.",
        ["chromtune prepare --genome hg38.fa --samples samples.tsv --expression tpm.tsv --out data.h5",
         "chromtune prepare --genome hg38.fa.gz --samples samples.tsv --expression tpm.tsv --tfs tfs.txt \\",
         "    --chroms chr1,chr8 --positives-only --negatives-ratio 3 --assembly hg38 --out data.h5"])
    parser.add_argument("--genome", required=True, metavar="FASTA", help="genome FASTA, plain or gzipped")
    parser.add_argument("--samples", required=True, metavar="TSV",
                        help="sample sheet with columns cell_type and peaks (peak paths relative to the sheet)")
    parser.add_argument("--expression", required=True, metavar="TABLE",
                        help="TPM table (TSV or CSV), genes x cell types or cell types x genes")
    parser.add_argument("--tfs", metavar="FILE", help="keep only these genes (one per line)")
    parser.add_argument("--transform", choices=TRANSFORM_NAMES, default="log1p",
                        help="expression transform; 'none' for a table that is already log-scaled")
    parser.add_argument("--bin-size", type=int, default=200, help="bin length in bp")
    parser.add_argument("--stride", type=int, default=50, help="distance between bin starts in bp")
    parser.add_argument("--context", type=int, default=1000, help="window length around each bin in bp")
    parser.add_argument("--chroms", metavar="LIST",
                        help="comma-separated chromosomes to bin (default: those the peaks use)")
    parser.add_argument("--positives-only", action="store_true",
                        help="keep only bins positive in at least one cell type, plus sampled negatives")
    parser.add_argument("--negatives-ratio", type=float, default=None, metavar="R",
                        help="with --positives-only: R negatives per positive bin (default: 1)")
    parser.add_argument("--max-n-fraction", type=float, default=0.5, metavar="F",
                        help="keep a bin only when at most this fraction of its bin-size core is N "
                             "(assembly gaps)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the negative sampling")
    parser.add_argument("--assembly", default="unknown", metavar="NAME", help="genome assembly name, e.g. hg38")
    parser.add_argument("--out", required=True, metavar="H5", help="data set file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.negatives_ratio is not None and not args.positives_only:
        raise UserError("--negatives-ratio: only meaningful with --positives-only")
    chroms = [c.strip() for c in args.chroms.split(",") if c.strip()] if args.chroms else None
    if args.chroms is not None and not chroms:
        raise UserError(f"--chroms {args.chroms!r}: names no chromosome")
    out = Path(args.out)
    inputs = [args.genome, args.samples, args.expression] + ([args.tfs] if args.tfs else [])
    if out.exists() and any(Path(p).exists() and out.resolve() == Path(p).resolve() for p in inputs):
        raise UserError(f"--out {out}: is one of the input files")
    check_output_file(out, "--out")
    from chromtune.data.prepare import PrepareOptions, prepare_file
    options = PrepareOptions(
        bin_size=args.bin_size, stride=args.stride, context=args.context, chroms=chroms,
        positives_only=args.positives_only,
        negatives_ratio=1.0 if args.negatives_ratio is None else args.negatives_ratio,
        seed=args.seed, transform=args.transform, assembly=args.assembly,
        max_n_fraction=args.max_n_fraction,
    )
    provenance = prepare_file(out, args.genome, args.samples, args.expression, args.tfs, options)
    print(f"wrote {out}: {provenance['n_bins']} bins on {len(provenance['bins_dropped_for_n'])} chromosome(s) x "
          f"{len(provenance['peaks'])} cell types ({provenance['positive_pairs']} positive pairs), "
          f"{provenance['n_genes']} genes")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
