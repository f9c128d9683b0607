"""``chromtune compare`` (also ``python -m chromtune.compare``): compare finished sweeps.

The work lives in :mod:`chromtune.compare` (its docstring lists the tests and outputs); pandas,
scipy, matplotlib and MLflow are imported only after the flags are parsed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from chromtune.cli import command_parser
from chromtune.compare.names import DEFAULT_TRACKING_URI, METRICS, ROPE


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "compare",
        "Compare the models of finished sweeps from MLflow on the same test cell types: a table per metric, "
        "paired tests for every model against both baselines and every two models (primary: Wilcoxon "
        "signed-rank over test cell types, Holm-adjusted; on the folds: Nadeau-Bengio corrected t and a "
        "Bayesian correlated t with a region of practical equivalence), Friedman + Nemenyi over cell types "
        "with a critical-difference diagram, figures (PNG and SVG) and report.md, all logged to a "
        "'comparison' MLflow run.",
        ["chromtune compare",
         "chromtune compare --data data.h5 --sweep KEY --sweep KEY",
         'chromtune compare --pair "resnet+mean (tune)" "basset+mean (tune)" --rope 0.02'])
    p.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow tracking URI")
    p.add_argument("--experiment", help="MLflow experiment (default: chromtune-<data set name>, as the sweep's)")
    p.add_argument("--data", help="data set file whose default experiment to use (default: the embedded demo)")
    p.add_argument("--sweep", dest="sweeps", action="append", metavar="KEY",
                   help="a sweep key to compare (repeatable; default: every finished sweep, smoke tests only "
                        "when no full sweep has finished)")
    p.add_argument("--allow-partial", action="store_true",
                   help="include sweeps with some folds unfinished; compare on the folds all have finished")
    p.add_argument("--metric", default="auprc", choices=METRICS,
                   help="fold metric of the tests and Fig. 1D (the cell-type test uses per-cell AUPRC, "
                        "or AUROC for the AUROCs)")
    p.add_argument("--pair", dest="pairs", nargs=2, action="append", metavar=("A", "B"),
                   help="compare A with B (model labels, sweep keys or baseline names; repeatable); "
                        "replaces the default pairs")
    p.add_argument("--rope", type=float, default=ROPE,
                   help="region of practical equivalence of the Bayesian test, in the metric's units")
    p.add_argument("--pr-fold", type=int, help="fold of the precision-recall figure (default: the first compared)")
    p.add_argument("--out", help="output folder (default: comparison/<experiment>)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chromtune.compare.report import run_compare, verdict_text
    from chromtune.compare.runs import default_experiment
    from chromtune.tracking import runs_page, ui_command

    experiment = args.experiment or default_experiment(args.data)
    out = Path(args.out or Path("comparison") / experiment)
    result = run_compare(args.tracking_uri, experiment, out, args.sweeps, allow_partial=args.allow_partial,
                         metric=args.metric, pairs=args.pairs, pr_fold=args.pr_fold, rope=args.rope)
    print(verdict_text(result, args.metric))
    print(f"\nwrote {', '.join(p.name for p in result['files'])} to {out}")
    print(f"MLflow run {result['run_id']} (comparison) in experiment {experiment}; view with "
          f"`{ui_command(args.tracking_uri)}`, then open {runs_page(result['experiment_id'])}")
    return 0
