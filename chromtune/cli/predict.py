"""``chromtune predict``: accessibility of every bin in cell types that have only RNA-seq.

The work is :func:`chromtune.predict.files.predict_files` (:mod:`chromtune.predict` describes the model
sources, gene matching, the output layout and the fast path); torch and h5py are imported only after parsing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.cli import add_precision_flag, command_parser
from chromtune.errors import run_cli

FILL_NAMES = ("median", "zero")  # chromtune.predict.expression.FILLS, without importing torch
INSTALL_HINT = "pip install 'chromtune[interpret]'"


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "predict",
        "Predict the accessibility of every bin (or of the bins in --regions) in new cell types from their TF "
        "expression alone, with a trained stage-2 model. Genes are matched to the model's by name and the "
        "model's expression transform is applied. Writes float16 probabilities (bins x cell types) to one "
        "HDF5 file, and optionally one BED and one bigWig file per cell type. A progress line on stderr counts "
        "the bins; Ctrl-C or SIGTERM stops it in one line (exit 130 / 143) and leaves no partial file.",
        ["chromtune predict --model RUN_ID --expression new_tpm.tsv --out preds.h5",
         "chromtune predict --model runs/s2 --expression new.tsv --regions enhancers.bed --fill-missing median \\",
         "    --bed beds --bigwig tracks --out preds.h5"])
    p.add_argument("--model", required=True,
                   help="stage-2 checkpoint file, run folder holding best.pt, MLflow run id of a sweep's fold run (its "
                        "selected model), or the run id of a sweep: every finished fold's model, probabilities averaged")
    p.add_argument("--expression", required=True, type=Path,
                   help="TPM table of the new cell types (genes x cell types or cell types x genes)")
    p.add_argument("--data", type=Path, help="data set whose bins to predict (default: the model's training data set)")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    p.add_argument("--regions", type=Path, help="BED file: predict only the bins overlapping its regions")
    p.add_argument("--bed", type=Path, help="folder for one BED file of predicted accessible bins per cell type")
    p.add_argument("--bigwig", type=Path, help=f"folder for one bigWig track per cell type (needs {INSTALL_HINT})")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="probability at which a bin enters the BED files (each cell type's count is printed)")
    p.add_argument("--fill-missing", choices=FILL_NAMES,
                   help="fill genes missing from --expression with the training median or 0 TPM (default: error)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for a run id (default: sqlite:///mlflow.db)")
    p.add_argument("--batch-size", type=int, default=512, help="bins per trunk pass")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="'auto': cuda when available")
    add_precision_flag(p, "The output's header records the choice; BENCHMARKS.md gives bf16's speed-up and its "
                          "difference from fp32")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chromtune.progress import Progress

    with Progress("predict") as progress:  # open before torch is imported: the first line comes within 5 s
        from chromtune.predict.files import predict_files

        predict_files(args.model, args.expression, args.out, data=args.data, regions=args.regions, bed=args.bed,
                      bigwig=args.bigwig, threshold=args.threshold, fill_missing=args.fill_missing,
                      tracking_uri=args.tracking_uri, batch_size=args.batch_size, device=args.device,
                      precision=args.precision, progress=progress)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
