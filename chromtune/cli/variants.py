"""``chromtune variants``: the effect of SNVs on accessibility in any cell type with TF expression.

A model that conditions on TF expression scores a variant in every cell type that has RNA-seq,
not only in those it was trained on: the data set's own cell types (their stored expression) and
the new ones of ``--expression`` (a TPM table as for ``chromtune predict``); ``--cells`` picks
among them (default: all).

**Model and data.** ``--model``: a stage-2 checkpoint, its run folder, a sweep's fold run id, or
a sweep run id: every finished fold's selected model scores, each with its own training cell
types' mean feature, and their probabilities are averaged (a fold ensemble, as in ``chromtune
predict``; Δ logit is then that of the averaged probabilities). ``--data``: the data set whose
genome and bins are used (default: the model's training data set); it must hold a genome (a data
set built by ``chromtune prepare``, or the demo).

**Variants** (VCF, plain or gzipped; columns CHROM, POS, ID, REF, ALT are read, the rest
ignored): every ALT allele of a row is a record. SNVs are scored; indels, multi-base
substitutions and symbolic alleles are counted and skipped. Chromosome names match the data set's
in either style (``chr1`` / ``1``); records on chromosomes the data set lacks are reported once.
REF must match the genome: a mismatch is counted, reported and skipped, or with ``--strict`` an
error naming the line.

**Windows.** Per SNV: the window centred on it (the *centred bin*), and every data set bin whose
window holds it (``context / stride`` of them, e.g. 20 at 1000 bp and a 50-bp stride), each with
the reference and the alternate base. The trunk runs once per allele and window (both alleles in
one batch); the head per cell type through the split head, so 250 cell types cost little more
than one.

**Output** per (variant, cell type), Δ = alternate - reference::

    ref_prob, alt_prob         P(accessible) of the centred bin with each allele
    delta_logit, delta_prob    Δ of the centred bin
    max_abs_delta_logit        the largest |Δ| over the data set bins whose window holds the variant
    max_abs_delta_prob         (0 when none does)
    n_bins                     how many such bins

``--out NAME.tsv`` (or ``.tsv.gz``): one row per (variant, cell type) with the VCF's CHROM, POS,
ID, REF, ALT. ``--out NAME.h5``: ``variants/{chrom,pos,id,ref,alt,line,n_bins}`` (V,),
``cell_types`` (C,), each measure as a (V, C) float32 matrix, and attributes naming the model(s),
data set, VCF and counts. Written atomically.

**Saturation mutagenesis** (``--ism CHROM:START-END``, 1-based and inclusive, at most 10,000 bp,
instead of ``--vcf``): every base of the region is changed to each of the three others, and each
SNV is scored on the window centred on it, as above (its ``delta_logit``), in the chosen cell
types: a matrix for a sequence-logo figure. ``--out NAME.tsv``: one row per (cell type, base)
with ``ref_prob`` and the Δ logit of A, C, G and T (0 for the reference base). ``--out NAME.h5``:
``delta_logit`` and ``delta_prob`` (C, L, 4) in A, C, G, T order, ``ref_prob`` (C, L),
``position`` (L,) 1-based, ``reference`` (L,), ``cell_types`` (C,); attributes ``chrom``,
``start``, ``end`` and the model(s). N bases are NaN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.atomic import check_output_file
from chromtune.cli import add_scoring_flags, check_at_least_one, command_parser
from chromtune.errors import UserError, run_cli

OUTPUT_SUFFIXES = (".tsv", ".tsv.gz", ".h5", ".hdf5")


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "variants",
        "The effect of SNVs on accessibility in any cell type with TF expression: the data set's own cell "
        "types and new ones that have only RNA-seq. Per (variant, cell type): the probability with each "
        "allele, delta logit and delta probability of the bin centred on the variant, and the largest "
        "|delta| over the bins whose window holds it. Details below the examples.",
        ["chromtune variants --model RUN_ID --vcf gwas.vcf.gz --out effects.tsv      # the data set's cell types",
         "chromtune variants --model runs/s2 --vcf snps.vcf --expression new_tpm.tsv --cells my_cells --out e.h5",
         "chromtune variants --model SWEEP_RUN_ID --vcf snps.vcf --data data.h5 --strict --out effects.tsv.gz",
         "chromtune variants --model runs/s2 --ism chr1:10001-10200 --cells hepatocyte --out ism.h5   # logo matrix"])
    p.epilog += "\n\n" + __doc__.split("\n", 2)[2]
    p.add_argument("--model", required=True,
                   help="stage-2 checkpoint file, run folder holding best.pt, or MLflow run id of a sweep or its fold run")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--vcf", type=Path, help="variants, VCF (plain or gzipped)")
    source.add_argument("--ism", metavar="CHROM:START-END",
                        help="saturation mutagenesis of a region (1-based, inclusive): every SNV of every base")
    p.add_argument("--out", required=True, type=Path, help="output file: .tsv, .tsv.gz or .h5")
    p.add_argument("--data", type=Path, help="data set holding the genome (default: the model's training data set)")
    p.add_argument("--expression", type=Path, help="TPM table of new cell types to score besides the data set's own")
    p.add_argument("--cells", help="comma-separated cell types to score (default: all)")
    p.add_argument("--strict", action="store_true", help="a REF allele that does not match the genome is an error")
    add_scoring_flags(p, 64, "windows per trunk pass, each with both alleles")
    return p


def check_args(args: argparse.Namespace) -> None:
    """The checks that need no data: a bad value is a one-line UserError before anything loads."""
    check_at_least_one(args, "--batch-size")
    if not args.out.name.lower().endswith(OUTPUT_SUFFIXES):
        raise UserError(f"--out {args.out}: name it .tsv, .tsv.gz or .h5")
    check_output_file(args.out, "--out")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    from chromtune.progress import Progress

    with Progress("variants") as progress:  # open before torch is imported: the first line comes within 5 s
        from chromtune.variants.run import write_variant_effects  # torch and h5py: once the arguments are sound

        write_variant_effects(args.model, args.out, vcf=args.vcf, ism=args.ism, data=args.data,
                              expression=args.expression, cells=args.cells, strict=args.strict,
                              tracking_uri=args.tracking_uri, batch_size=args.batch_size, device=args.device,
                              progress=progress)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
