"""``chromtune prepare``: build a data set file from a FASTA, peak files and an expression table.

    chromtune prepare --genome hg38.fa --samples samples.tsv --expression tpm.tsv --out data.h5

The logic lives in :mod:`chromtune.data.prepare`; this module parses flags and writes the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.data.dataset import write_dataset
from chromtune.data.prepare import TRANSFORMS, PrepareOptions, prepare_dataset
from chromtune.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chromtune prepare",
        description="Build a chromtune data set (HDF5) from a genome FASTA, one narrowPeak/BED peak file per "
                    "cell type and a TPM expression table. Input files are only read, never written.")
    parser.add_argument("--genome", required=True, metavar="FASTA", help="genome FASTA, plain or gzipped")
    parser.add_argument("--samples", required=True, metavar="TSV",
                        help="sample sheet with columns cell_type and peaks (peak paths relative to the sheet)")
    parser.add_argument("--expression", required=True, metavar="TABLE",
                        help="TPM table (TSV or CSV), genes x cell types or cell types x genes")
    parser.add_argument("--tfs", metavar="FILE", help="keep only these genes (one per line)")
    parser.add_argument("--transform", choices=sorted(TRANSFORMS), default="log1p",
                        help="expression transform (default: log1p)")
    parser.add_argument("--bin-size", type=int, default=200, help="bin length in bp (default: 200)")
    parser.add_argument("--stride", type=int, default=50, help="distance between bin starts (default: 50)")
    parser.add_argument("--context", type=int, default=1000, help="window length around each bin (default: 1000)")
    parser.add_argument("--chroms", metavar="LIST",
                        help="comma-separated chromosomes to bin (default: those the peaks use)")
    parser.add_argument("--positives-only", action="store_true",
                        help="keep only bins positive in >= 1 cell type, plus sampled negatives")
    parser.add_argument("--negatives-ratio", type=float, default=None, metavar="R",
                        help="with --positives-only: R negatives per positive bin (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the negative sampling (default: 0)")
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
    options = PrepareOptions(
        bin_size=args.bin_size, stride=args.stride, context=args.context, chroms=chroms,
        positives_only=args.positives_only,
        negatives_ratio=1.0 if args.negatives_ratio is None else args.negatives_ratio,
        seed=args.seed, transform=args.transform, assembly=args.assembly,
    )
    dataset, provenance = prepare_dataset(args.genome, args.samples, args.expression, args.tfs, options)
    write_dataset(out, dataset, provenance)
    positives = int(dataset.labels.sum())
    print(f"wrote {out}: {dataset.n_bins} bins on {len(dataset.chromosomes)} chromosome(s) x "
          f"{dataset.n_cell_types} cell types ({positives} positive pairs), {dataset.n_genes} genes")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
