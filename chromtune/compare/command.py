"""``chromtune compare``: the command's parser and entry point."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from chromtune.compare import __doc__ as DOC
from chromtune.compare.report import run_compare
from chromtune.compare.runs import DEFAULT_TRACKING_URI, METRIC_LABELS, METRICS, default_experiment

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chromtune compare", description=DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow tracking URI (default %(default)s)")
    p.add_argument("--experiment", help="MLflow experiment (default: chromtune-<data set name>, as the sweep's)")
    p.add_argument("--data", help="data set file whose default experiment to use (default: the embedded demo)")
    p.add_argument("--sweep", dest="sweeps", action="append", metavar="KEY",
                   help="a sweep key to compare (repeatable; default: every finished sweep, see above)")
    p.add_argument("--allow-partial", action="store_true",
                   help="include sweeps with some folds unfinished; compare on the folds all have finished")
    p.add_argument("--metric", default="auprc", choices=METRICS,
                   help="metric of the tests and Fig. 1D (default %(default)s)")
    p.add_argument("--pair", dest="pairs", nargs=2, action="append", metavar=("A", "B"),
                   help="test A > B (model labels, sweep keys or baseline names; repeatable); "
                        "replaces the default pairs")
    p.add_argument("--pr-fold", type=int, help="fold of the precision-recall figure (default: the first compared)")
    p.add_argument("--out", help="output folder (default: comparison/<experiment>)")
    return p



def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    experiment = args.experiment or default_experiment(args.data)
    out = Path(args.out or Path("comparison") / experiment)
    result = run_compare(args.tracking_uri, experiment, out, args.sweeps, allow_partial=args.allow_partial,
                         metric=args.metric, pairs=args.pairs, pr_fold=args.pr_fold)
    for note in result["left_out"]:
        print(f"left out {note}")
    summary = result["table"].loc[args.metric, ["mean", "sd"]]
    print(f"{METRIC_LABELS[args.metric]} over folds {', '.join(map(str, result['folds']))}:")
    print(summary.round(4).to_string())
    print("\none-sided Wilcoxon signed-rank tests:")
    for test in result["tests"].itertuples():
        print(f"  {test.hypothesis}: n={test.n} statistic={test.statistic:g} p={test.p:.4g} ({test.method})"
              + (f"; {test.note}" if test.note else ""))
    print(f"\nwrote {', '.join(p.name for p in result['files'])} to {out}")
    print(f"MLflow run {result['run_id']} (comparison) in experiment {experiment}; view with "
          f"`mlflow ui --backend-store-uri {args.tracking_uri}`")
    return 0
