"""``chromtune sweep`` (also ``python -m chromtune.sweep``): the paper's protocol on Ray Tune + Optuna,
tracked in MLflow.

A thin layer: flags -> :class:`chromtune.sweep.settings.SweepSettings` (one per --arch x --paradigm;
every flag is the field of its name) -> the driver that :func:`chromtune.sweep.sweep` runs too.
torch, Ray, MLflow and pandas are imported only after the flags are parsed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Sequence

from chromtune.cli import add_evaluation_flags, add_pairs_per_bin_flag, add_precision_flag, command_parser
from chromtune.errors import run_cli
from chromtune.sweep.settings import DEFAULTS, SweepSettings, each_sweep
from chromtune.train.config import MEAN_FEATURES, PARADIGMS

ARCH_NAMES = ("basset", "factorized", "resnet")  # chromtune.models.ARCHITECTURES, without importing torch


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "sweep",
        "For every fold: a stage-1 search (Optuna over the stage-1 space) -> the best stage-1 checkpoint -> a "
        "stage-2 search initialised from it -> the best stage-2 trial by validation AUPRC -> one evaluation on "
        "the fold's test cell types beside both baselines. Each (fold, stage) is one Tune experiment under "
        "STORAGE/SWEEP/; every run is logged to MLflow (sweep -> fold -> stage -> trial). Ctrl-C (or SIGTERM) "
        "stops a sweep resumably: running trials keep their last epoch checkpoint, their stage is neither "
        "selected nor marked done, and one line says how to continue (--resume); a second Ctrl-C exits at "
        "once. One driver runs a sweep at a time: a lease in its storage refuses a second one. While it runs, one "
        "status line gives folds and trials done and an estimate of the rest; at its end, a per-fold table, "
        "each fold's selected model (MLflow run id, best.pt) and the commands to run next.",
        ["chromtune sweep --arch resnet --folds 5                 # the embedded demo data set",
         "chromtune sweep --arch basset --folds 5 --smoke-test    # the same path, shrunk (CI)",
         "chromtune sweep --data data.h5 --arch resnet --folds 5 --workers-per-trial 2 --gpus-per-worker 1 "
         "--address auto --storage s3://bucket/chromtune",
         "chromtune sweep --arch resnet --folds 5 --resume        # after Ctrl-C or a killed driver",
         "chromtune sweep --arch basset resnet --paradigm tune freeze  # four sweeps, then compared",
         "mlflow ui                                               # then open the runs"])
    p.add_argument("--arch", nargs="+", default=[DEFAULTS.arch], metavar="ARCH",
                   help=f"architecture(s): {', '.join(ARCH_NAMES)}; several are swept one after another "
                        "and compared at the end")
    p.add_argument("--folds", type=int, default=DEFAULTS.folds,
                   help="cross-validation folds over cell types; every cell type is tested exactly once")
    p.add_argument("--split", default=DEFAULTS.split, choices=("kfold", "reference"),
                   help="seeded K folds, or the reference implementation's fixed split (one fold, 106+ cell types)")
    p.add_argument("--data", help="data set file (default: the embedded demo data set)")
    for stage in (1, 2):
        p.add_argument(f"--stage{stage}-space", default=getattr(DEFAULTS, f"stage{stage}_space"),
                       help="search-space YAML file, or a shipped space's name")
    p.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=DEFAULTS.early_stopping,
                   help="the spaces' scheduler (ASHA) stops weak trials at rungs of the budget; "
                        "--no-early-stopping trains every grid point to the end")
    p.add_argument("--paradigm", nargs="+", default=[DEFAULTS.paradigm], choices=PARADIGMS,
                   help="stage-2 paradigm(s): tune or freeze the trunk; several are compared at the end")
    p.add_argument("--mean", dest="with_mean", action=argparse.BooleanOptionalAction, default=DEFAULTS.with_mean,
                   help="stage 2: feed the mean accessibility of the training cell types")
    p.add_argument("--mean-feature", default=DEFAULTS.mean_feature, choices=MEAN_FEATURES,
                   help="stage-2 training pairs' mean input: loo (never the pair's own label) or reference "
                        "(own label included, as the reference implementation)")
    p.add_argument("--width", type=float, default=None,
                   help="channel multiplier (default 1.0; 0.125 on the demo data set and in a smoke test)")
    p.add_argument("--eval-every", type=int, default=None, metavar="K",
                   help="thin the held-out bins to every K-th (genome-scale data); part of the split, so a "
                        "search space cannot set it (default: 1; 4 in a smoke test)")
    p.add_argument("--workers-per-trial", type=int, default=DEFAULTS.workers_per_trial,
                   help="Ray Train workers per trial (DDP); 0 trains inside the trial's own process")
    p.add_argument("--gpus-per-worker", type=float, default=DEFAULTS.gpus_per_worker, help="GPUs per worker")
    add_precision_flag(p)
    add_pairs_per_bin_flag(p)
    p.add_argument("--cpus-per-worker", type=float, default=DEFAULTS.cpus_per_worker, help="CPUs per worker")
    p.add_argument("--max-concurrent-trials", type=int, default=DEFAULTS.max_concurrent_trials,
                   help="0: as many as the cluster fits")
    p.add_argument("--concurrent-folds", type=int, default=DEFAULTS.concurrent_folds,
                   help="folds at once, each in a process of its own; 0: as many as the cluster fits with room "
                        "for a whole stage each")
    p.add_argument("--address", help="Ray cluster address (default: a private local Ray)")
    p.add_argument("--storage", default=DEFAULTS.storage,
                   help="Tune/Train storage: a folder (one machine), or s3://, gs:// or file:// on a filesystem "
                        "every node mounts (a cluster)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment (default: chromtune-<data set name>)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the folds, the searches and the training")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULTS.seeds), metavar="SEED",
                   help="the whole cross-validation once per seed (instead of --seed): each seed is the sweep that "
                        "--seed SEED runs (its own key, storage and MLflow sweep run); the closing summary gives "
                        "test AUPRC as mean +- sd over the seeds and the folds beaten at each seed")
    add_evaluation_flags(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep after a stop (Ctrl-C, a killed driver, a lost node): exactly the "
                        "planned grid, no finished trial trained again")
    p.add_argument("--force", action="store_true",
                   help="take the sweep over from a driver that looks alive (its lease is fresh); that driver stops")
    p.add_argument("--smoke-test", action="store_true",
                   help="the same path shrunk to a couple of minutes on any data set: two trials per stage of two "
                        "one-batch epochs, width 0.125, every 4th held-out bin, 2,000 stage-1 validation bins, "
                        "about 5,000 bins for stage-2 validation (--valid-pairs: 5,000 x the validation cell "
                        "types) and for the test (--test-max-pairs: 5,000 x the test cell types); a flag given "
                        "explicitly keeps its value")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chromtune.sweep.driver import run_sweeps

    return run_sweeps(settings_from_args(args))[0]


def settings_from_args(args: argparse.Namespace) -> list[SweepSettings]:
    """One SweepSettings per (--arch, --paradigm) from the parsed flags."""
    values = {f.name: getattr(args, f.name) for f in fields(SweepSettings)}
    values["seeds"] = tuple(args.seeds)
    return each_sweep(**values)


if __name__ == "__main__":
    sys.exit(run_cli(main))
