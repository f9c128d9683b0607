"""``chromtune interpret``: what a trained model reads in the sequence, and how TF expression drives it.

Needs the optional packages of ``pip install 'chromtune[interpret]'`` (modisco-lite, memelite).

**Model, data, cell types.** ``--model`` and ``--data`` are read as by ``chromtune predict`` (a
stage-2 checkpoint, an epoch's ``RUN/ray/train/epoch_N/best.pt``, its run folder or a sweep's
fold run id; the data set defaults to the model's training data set and must have the model's
gene list). The cell types interpreted are the data set's (all of them, or ``--cells``), with
their stored expression; or, with ``--expression``, the new cell types of that TPM table
(``--cells`` picks among them), transformed as the model's.

**Steps** (C cell types, G genes, W = ``--window`` bp at the bin's centre, default the bin size)

1. *Bins per cell type*: the bins accessible in the cell type and in fewer than 30 % of the data
   set's cell types (cell-type-specific accessibility, where TF-driven motifs are; ubiquitous
   sites such as CTCF's fall out by design), at most ``--max-bins`` of them, drawn with
   ``--seed``. Accessible means labelled 1 for the data set's own cell types, and a predicted
   probability >= 0.5 for new ones (they have no labels). ``--regions BED`` restricts the bins.
2. *Contributions*: gradient x input of the logit with respect to the one-hot window, the cell
   type's expression (and the bin's mean-accessibility feature) held fixed; gradients centred
   over the four bases and averaged over ``--steps`` points on the path from the uniform
   background to the input (integrated gradients; ``--steps 1`` is the gradient at the input,
   which a trained model's saturation leaves weak and noisy: :mod:`chromtune.interpret.attribution`).
3. *TF-MoDISco* (modisco-lite) per cell type on the central W bp of those bins, with seqlet
   windows of 15 bp and flanks of 5 (modisco-lite's 21 and 10 suit 1 kb profiles; TF motifs are
   6-20 bp), metaclusters from 30 seqlets (default 100, more than a few hundred bins give) and
   10 Leiden runs (default 50).
4. *Matching*: each pattern's PPM, trimmed to the positions holding >= 20 % of its peak |CWM|
   (modisco-lite's report uses 30 %, which cut the demo's CEBPB and FOXA2 patterns to 3-4
   bases that match nothing), against the motif database with memelite's Tomtom; q-values
   Benjamini-Hochberg over all pattern x motif comparisons; a pattern *matches* when its best
   q < 0.05. Database: ``--motifs`` (MEME or JASPAR file), by default the demo data set's
   planted motifs. Sequencing-bias motifs in the database (chrombpnet's ``TN5_*`` and
   ``DNASE_*``: the cutting preferences of Tn5 and DNase I) are matched too, but reported apart:
   a pattern that looks most like one is flagged (``best_is_bias``), its best TF motif is still
   given (``best_tf_match``), and it is left out of step 5. A motif's TFs are read from its
   name in the styles of JASPAR, HOCOMOCO and ENCODE/chrombpnet, joins such as
   ``Pou5f1::Sox2`` and ``Bach1+Mafk_MA0591.1`` giving each factor
   (:mod:`chromtune.interpret.motif_names`).
5. *Motif activity* (paper Fig. 3A): the instances of a database TF motif are the seqlets of every
   pattern matched to it (from any cell type), cut to the pattern's trimmed core; at most
   ``--max-instances`` per motif. Positive and negative patterns give separate rows (the latter
   labelled "(negative)"). Activity of motif m in cell type c = the mean over m's
   instances of the summed contribution over the instance, computed with c's expression: how
   much the model credits those very bases for accessibility in c. The same loci in every cell
   type, so activity changes only through expression, as a TF's motif should.
   ``motif_tf_correlation.tsv``: Pearson r across the C cell types between each motif's activity
   and each gene's expression (needs C >= 3).
6. *t-SNE* (paper Fig. 3B, scikit-learn): the cell types embedded by their predicted
   accessibility over up to ``TSNE_BINS`` bins, beside the embedding of their expression (C >= 5).

**Outputs** in ``--out`` (each written atomically)::

    contributions.h5            attrs: model, data, window (W), window_start (its offset in the context), context
                                cell_types (C,) str; cells/<k>/bins (n,) int64 data set bins,
                                cells/<k>/hypothetical (n, 4, W) float32, cells/<k>/contributions (n, W)
    modisco/<cell type>.h5      modisco-lite results (``modisco report`` reads them)
    cell_types.tsv              per cell type: bins, positive and negative patterns, and a note where
                                TF-MoDISco found no pattern or was skipped (too few bins)
    motifs.tsv                  per pattern: cell type, pattern, seqlets, consensus, best match, p, q,
                                matched, best_is_bias, and the best TF motif: best_tf_match, tf_p_value,
                                tf_q_value, tf_matched
    motif_summary.tsv           per matched TF motif: patterns, cell types, instances, its TFs
                                among the genes, and r of its activity with each of them
    motif_activity.tsv          matched motif x cell type
    motif_tf_correlation.tsv    matched motif x gene, Pearson r; motif_tf_correlation.png its heatmap
    tsne.png                    predicted accessibility | expression, side by side

With ``--model RUN_ID`` every output is also logged as an artifact of a new MLflow run named
``interpret`` nested under that run (tag ``chromtune.level=interpret``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from chromtune.atomic import check_output_folder
from chromtune.cli import add_scoring_flags, check_at_least_one, command_parser
from chromtune.errors import UserError, run_cli

DEFAULT_STEPS = 8         # path points of the contribution scores (see chromtune.interpret.attribution)


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "interpret",
        "What a trained stage-2 model reads in the sequence, and how TF expression drives it: contribution "
        "scores per cell type, TF-MoDISco motifs matched to a motif database with Tomtom, each motif's "
        "activity against each TF's expression across cell types, and a t-SNE of the cell types. The steps "
        "and outputs are described below the examples.",
        ["chromtune interpret --model RUN_ID --out interp          # the demo: planted motifs as database",
         "chromtune interpret --model runs/s2 --cells hepatocyte,CD14_monocyte --out interp",
         "chromtune interpret --model runs/s2/best.pt --data data.h5 --motifs JASPAR2024.meme --out interp",
         "chromtune interpret --model runs/s2 --expression new_tpm.tsv --out interp   # RNA-only cell types"])
    p.epilog += "\n\n" + __doc__.split("\n", 2)[2]
    p.add_argument("--model", required=True,
                   help="stage-2 checkpoint file, run folder holding best.pt, or MLflow run id of a sweep's fold run")
    p.add_argument("--data", type=Path, help="data set (default: the model's training data set)")
    p.add_argument("--expression", type=Path,
                   help="TPM table of new cell types to interpret instead of the data set's own")
    p.add_argument("--cells", help="comma-separated cell types to interpret (default: all)")
    p.add_argument("--motifs", type=Path,
                   help="motif database, MEME or JASPAR format (default: the demo data set's planted motifs)")
    p.add_argument("--regions", type=Path, help="BED file: interpret only bins overlapping its regions")
    p.add_argument("--max-bins", type=int, default=500, help="bins per cell type for TF-MoDISco")
    p.add_argument("--max-instances", type=int, default=200,
                   help="instances per matched motif for its activity")
    p.add_argument("--window", type=int, help="bp at the bin's centre given to TF-MoDISco (default: the bin size)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help="gradients averaged on the path from the uniform background to the input (1: plain "
                        "gradient x input at the input)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_scoring_flags(p, 64, "windows per gradient batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the bin and instance draws and of t-SNE")
    return p


def check_args(args: argparse.Namespace) -> None:
    """The range checks that need no data: a bad value is a one-line UserError before anything loads."""
    check_at_least_one(args, "--max-bins", "--max-instances", "--batch-size", "--steps")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be >= 0")
    check_output_folder(args.out, "--out")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    from chromtune.progress import Progress

    with Progress("interpret") as progress:  # open before torch is imported: the first line comes within 5 s
        from chromtune.interpret.pipeline import interpret_cells  # torch, pandas, h5py: once the arguments are sound

        interpret_cells(args.model, args.out, data=args.data, expression=args.expression, cells=args.cells,
                        motifs=args.motifs, regions=args.regions, max_bins=args.max_bins,
                        max_instances=args.max_instances, window=args.window, steps=args.steps, seed=args.seed,
                        tracking_uri=args.tracking_uri, batch_size=args.batch_size, device=args.device,
                        progress=progress)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
