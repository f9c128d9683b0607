"""``chromtune train`` (also ``python -m chromtune.train``): one stage of one fold.

The work lives in :mod:`chromtune.train.runner` (a Ray Train ``TorchTrainer``, or the same loop in
this process with ``--workers 0``); torch and Ray are imported only after the flags are parsed.
Paths (--data, --init, --out) are made absolute against the caller's folder before anything goes
to Ray, whose workers run elsewhere. Stage 2 reads its --init first: the architecture and width
come from it (a conflicting flag is refused), and a stage-1 run of another fold, split, seed or
set of held-out chromosomes is refused before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from chromtune.atomic import check_output_folder
from chromtune.cli import add_evaluation_flags, add_pairs_per_bin_flag, add_precision_flag, command_parser
from chromtune.errors import UserError, handle_stop_signals, run_cli
from chromtune.io.files import absolute
from chromtune.train.config import MEAN_FEATURES, PARADIGMS, STAGE_DEFAULTS, TrainConfig, config_values


ARCH_NAMES = ("basset", "factorized", "resnet")  # chromtune.models.ARCHITECTURES, without importing torch
HEAD_NAMES = ("simple", "complex")  # chromtune.models.HEADS


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "train",
        "Train one stage of one fold and write a run folder (best.pt, metrics.json, split.tsv, "
        "pr_curves.png). Stage 1 trains a multi-task sequence-only model on the fold's training cell types; "
        "stage 2 starts from a stage-1 run and adds TF expression, then scores the fold's test cell types "
        "beside both baselines. Every epoch is checkpointed, so --resume continues exactly.",
        ["chromtune train --stage 1 --arch resnet --fold 0 --out runs/s1",
         "chromtune train --stage 2 --init runs/s1 --paradigm tune --mean --out runs/s2",
         "chromtune train --data data.h5 --stage 1 --workers 2 --test-chroms chr8 --out runs/s1"])
    p.add_argument("--data", help="data set file (default: the embedded demo data set)")
    p.add_argument("--arch", help=f"architecture: {', '.join(ARCH_NAMES)} (default: resnet; stage 2: --init's)")
    p.add_argument("--stage", type=int, default=1, choices=(1, 2), help="training stage")
    p.add_argument("--fold", type=int, default=0, help="fold index, 0 to --folds minus 1")
    p.add_argument("--folds", type=int, default=5, help="number of cell-type folds")
    p.add_argument("--split", default="kfold", choices=("kfold", "reference"),
                   help="seeded K folds, or the reference implementation's fixed split")
    p.add_argument("--init", help="stage 2: the stage-1 run folder (or its best.pt)")
    p.add_argument("--paradigm", default="tune", choices=PARADIGMS, help="stage 2: tune or freeze the trunk")
    p.add_argument("--mean", dest="with_mean", action=argparse.BooleanOptionalAction, default=True,
                   help="stage 2: feed the mean accessibility of the training cell types")
    p.add_argument("--mean-feature", default="reference", choices=MEAN_FEATURES,
                   help="stage 2, training pairs: loo = the mean over the other training cell types, never "
                        "the pair's own label; reference = the mean over all of them, own label included "
                        "(the reference implementation)")
    p.add_argument("--head", default="simple", choices=HEAD_NAMES, help="stage-2 head")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 2e-3 stage 1, 1e-3 stage 2)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: 128 stage 1, 256 stage 2)")
    p.add_argument("--epochs", type=int, default=4, help="epochs")
    p.add_argument("--samples-per-epoch", type=int, default=6400,
                   help="training samples per epoch (the budget: a larger batch takes fewer steps)")
    p.add_argument("--width", type=float, default=None,
                   help="channel multiplier (default: 1.0, 0.125 on the demo data set; stage 2: --init's)")
    p.add_argument("--test-chroms", default="", metavar="LIST",
                   help="comma-separated chromosomes held out of all training and used for the test")
    p.add_argument("--eval-every", type=int, default=None, metavar="K", help="evaluate every K-th bin (default: 1)")
    add_evaluation_flags(p)
    p.add_argument("--evaluate-test", action="store_true",
                   help="stage 2: score the fold's test cell types with the best model (do it once, for the model "
                        "chosen on validation; without it the run states that the test was not scored)")
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP); 0 trains in this process")
    p.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs (and torch threads) per worker")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    add_precision_flag(p)
    add_pairs_per_bin_flag(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the folds, bin split and training")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--address", help="Ray cluster address (default: a private local Ray on 127.0.0.1)")
    p.add_argument("--out", required=True, help="run folder")
    return p


def take_from_init(args: argparse.Namespace) -> None:
    """Stage 2: architecture and width come from the stage-1 checkpoint; a flag that disagrees is refused."""
    from chromtune.train.loop import read_stage1

    config = read_stage1(args.init)["config"]
    if config.get("stage") != 1:
        raise UserError(f"--init {args.init}: a stage-{config.get('stage')} checkpoint; stage 2 starts from stage 1")
    for flag, name in (("--arch", "arch"), ("--width", "width")):
        given = getattr(args, name)
        if given is not None and given != config[name]:
            raise UserError(f"{flag} {given}: --init {args.init} holds a {name} of {config[name]}; "
                            f"leave {flag} out to take it from there")
        setattr(args, name, config[name])


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    arch = args.arch or "resnet"
    if arch not in ARCH_NAMES:
        raise UserError(f"--arch {arch!r}: unknown architecture; valid names: {', '.join(ARCH_NAMES)}")
    defaults = STAGE_DEFAULTS[args.stage]
    return TrainConfig(**config_values(
        args.data, args.cpus_per_worker, arch=arch, stage=args.stage, fold=args.fold, folds=args.folds,
        split=args.split, seed=args.seed, lr=args.lr or defaults["lr"],
        batch_size=args.batch_size or defaults["batch_size"], epochs=args.epochs,
        samples_per_epoch=args.samples_per_epoch, width=args.width, paradigm=args.paradigm,
        with_mean=args.with_mean, mean_feature=args.mean_feature, head=args.head, init=args.init,
        test_chroms=[c for c in args.test_chroms.split(",") if c], eval_every=args.eval_every,
        valid_bins=args.valid_bins, valid_pairs=args.valid_pairs, test_every=args.test_every,
        test_max_pairs=args.test_max_pairs, evaluate_test=args.evaluate_test, precision=args.precision,
        pairs_per_bin=args.pairs_per_bin))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chromtune.progress import Progress

    with Progress(f"train stage {args.stage} fold {args.fold}") as progress:  # on stderr: stdout gets the summary
        metrics = train(args, progress)
        progress.update(phase="finished")
    summary = {"best_valid_auprc": metrics["best_valid_auprc"]}
    if "test" in metrics:
        from chromtune.train.metrics import skipped_text

        summary.update({f"test.{name}.auprc": round(m["auprc"], 4) for name, m in metrics["test"].items()})
        summary["test_pairs"] = metrics["test_pairs"]["pairs"]
        summary["test_cells_skipped"] = metrics["test"]["model"]["n_cells_skipped"]
        skipped = skipped_text(metrics["test"]["model"], metrics["split"]["test"])
        if skipped:
            print(f"chromtune: warning: test: {skipped}", file=sys.stderr)
    elif metrics.get("test_evaluated") is False:
        summary["test"] = metrics["test_note"]
    print(json.dumps(summary))
    return 0


def train(args: argparse.Namespace, progress) -> dict:
    """Check the flags and train (through Ray unless --workers 0); metrics.json's content."""
    import torch
    progress.update(phase="reading the data")
    if args.gpu and not torch.cuda.is_available() and not args.address:
        raise UserError("--gpu: no CUDA GPU is visible on this machine")
    args.init = args.init and absolute(args.init)
    check_output_folder(args.out, "--out")
    out = absolute(args.out)
    if args.stage == 2 and args.init:
        take_from_init(args)
    cfg = config_from_args(args)
    from chromtune.train.runner import run_training

    def start():
        from chromtune.sweep.ray_runtime import check_resources, start_ray

        progress.update(phase="starting Ray")
        start_ray(args.address)
        handle_stop_signals()  # ray.init replaced SIGTERM's handler with an exit that skips cleanup
        check_resources(args.workers, args.cpus_per_worker, 1 if args.gpu else 0)
    return run_training(cfg, out, args.workers, args.gpu, args.cpus_per_worker, args.resume, progress=progress,
                        start=start)


if __name__ == "__main__":
    sys.exit(run_cli(main))
