"""The sweep's plan: every flag and file validated, and what follows from them, before Ray or MLflow start."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.fs as pafs

from chromtune.atomic import check_output_folder
from chromtune.errors import UserError
from chromtune.models import ARCHITECTURES
from chromtune.sweep.search_space import SearchSpace, load_search_space
from chromtune.io.storage import Storage
from chromtune.train.config import TrainConfig, size_defaults
from chromtune.sweep.lease import LEASE_NAME



@dataclass
class SweepPlan:
    """Everything the sweep decided before the first trial."""

    args: argparse.Namespace
    data: str
    base: dict
    spaces: dict[int, SearchSpace]
    key: str
    storage: Storage
    local: Path
    tracking_uri: str
    experiment: str
    cell_types: list[str]
    folds: list = field(default_factory=list)  # chromtune.data.folds.Fold, one per fold run

    @property
    def label(self) -> str:
        """What tells this sweep from another of the same data (``resnet tune+mean``): MLflow run
        names begin with it, so the UI's run list tells two sweeps apart."""
        a = self.args
        mean = ("+mean" + ("(loo)" if a.mean_feature == "loo" else "")) if a.with_mean else ""
        return f"{a.arch} {a.paradigm}{mean}"


def plan_sweep(args: argparse.Namespace) -> SweepPlan:
    """Validate every flag and file before Ray or MLflow start."""
    from chromtune.data.folds import plan_folds
    from chromtune.data.validation import check_held_out
    from chromtune.tracking import resolve_tracking_uri
    from chromtune.train.task import bin_split, load_dataset

    if args.arch not in ARCHITECTURES:
        raise UserError(f"--arch {args.arch!r}: unknown architecture; valid names: {', '.join(ARCHITECTURES)}")
    for flag, value in (("--workers-per-trial", args.workers_per_trial), ("--max-concurrent-trials", args.max_concurrent_trials),
                        ("--concurrent-folds", args.concurrent_folds)):
        if value < 0:
            raise UserError(f"{flag} {value}: must be 0 or more")
    if args.cpus_per_worker <= 0:
        raise UserError(f"--cpus-per-worker {args.cpus_per_worker:g}: must be positive")
    if args.gpus_per_worker < 0:
        raise UserError(f"--gpus-per-worker {args.gpus_per_worker:g}: must be 0 or more")
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    if "://" not in args.storage:
        check_output_folder(args.storage, "--storage")
    if args.gpus_per_worker and not args.workers_per_trial and args.gpus_per_worker > 1:
        raise UserError("--gpus-per-worker: more than 1 GPU needs --workers-per-trial (one GPU per DDP worker)")
    if args.data:
        data = str(Path(args.data).resolve())
    else:
        from chromtune.data.demo import demo_path
        data = str(demo_path())
    dataset = load_dataset(data)
    folds = plan_folds(dataset.n_cell_types, args.folds, args.seed, args.split)
    args.folds = len(folds)  # the reference split is one fold
    spaces = {1: load_search_space(args.stage1_space), 2: load_search_space(args.stage2_space)}
    if args.smoke_test:
        spaces = {stage: space.shrunk() for stage, space in spaces.items()}
    if not args.early_stopping:  # every grid point trains its whole budget
        spaces = {stage: replace(space, asha=None) for stage, space in spaces.items()}
    sizes = size_defaults(on_demo=not args.data)
    mean_tag = "mean" if args.with_mean else "nomean"
    variant = ("-ref" if args.split == "reference" else "") + ("-meanloo" if args.mean_feature == "loo" else "")
    key = f"{Path(data).stem}-{args.arch}-{args.paradigm}-{mean_tag}-k{args.folds}-s{args.seed}{variant}" + \
          ("-smoke" if args.smoke_test else "")
    storage = Storage(args.storage).child(key)
    local = Path(storage.root) if not storage.is_uri else Path(tempfile.gettempdir()) / "chromtune-sweeps" / key
    base = dict(data=data, arch=args.arch, folds=args.folds, split=args.split, seed=args.seed,
                width=args.width or sizes["width"], paradigm=args.paradigm, with_mean=args.with_mean, mean_feature=args.mean_feature,
                threads=max(1, int(args.cpus_per_worker)), eval_every=args.eval_every, valid_bins=args.valid_bins,
                valid_pairs=sizes["valid_pairs"] if args.valid_pairs is None else args.valid_pairs,
                test_every=args.test_every, test_max_pairs=args.test_max_pairs)
    cfg = TrainConfig(**base)  # a bad setting is one line now, not a failed trial later
    for line in check_held_out(dataset, folds, bin_split(cfg, dataset)):  # a fold that cannot validate: now
        print(f"chromtune: warning: {line}", file=sys.stderr, flush=True)
    return SweepPlan(args, data, base, spaces, key, storage, local, tracking_uri,
                     args.experiment or f"chromtune-{Path(data).stem}", dataset.cell_types, folds)


def _trial_slots(plan: SweepPlan) -> float:
    """Trials at once: ``--max-concurrent-trials``, else as many as the cluster (and what its
    autoscaler may add) fits; inf when unbounded."""
    from chromtune.sweep.ray_runtime import cluster_capacity

    args = plan.args
    if args.max_concurrent_trials:
        return args.max_concurrent_trials
    workers = max(args.workers_per_trial, 1)
    need = {"CPU": args.cpus_per_worker * workers, "GPU": args.gpus_per_worker * workers}
    capacity = cluster_capacity()
    fits = [capacity.get(name, 0) // amount if math.isfinite(capacity.get(name, 0)) else math.inf
            for name, amount in need.items() if amount > 0]  # inf // n is nan, not inf
    return max(1, min(fits))


def concurrency(plan: SweepPlan, trials: int) -> int:
    """Trials at once in one (fold, stage): the slots, never more than the stage has."""
    return int(min(_trial_slots(plan), trials))


def concurrent_folds(plan: SweepPlan) -> int:
    """Folds run at once: ``--concurrent-folds``, else as many as leave every one of them room for
    a whole stage's trials (so a fold never waits behind another's stage)."""
    args = plan.args
    if args.concurrent_folds:
        return min(args.concurrent_folds, args.folds)
    per_fold = max(space.num_samples for space in plan.spaces.values())
    slots = _trial_slots(plan)
    return int(max(1, min(args.folds, slots // per_fold if math.isfinite(slots) else args.folds)))


DONE_MARKER = "done.json"


def holds_sweep(plan: SweepPlan) -> bool:
    """Whether the sweep's storage holds anything of it besides a driver's lease."""
    if not plan.storage.exists():
        return False
    found = plan.storage.fs.get_file_info(pafs.FileSelector(plan.storage.root, recursive=False))
    return any(info.base_name != LEASE_NAME for info in found)


def is_finished(plan: SweepPlan) -> bool:
    """The sweep ran to its end (its last step writes DONE_MARKER)."""
    return plan.storage.exists(DONE_MARKER)


def check_storage(plan: SweepPlan) -> None:
    """A new sweep needs an empty place; ``--resume`` needs a sweep to continue."""
    exists = holds_sweep(plan)
    if exists and not plan.args.resume:
        raise UserError(f"--storage: {plan.storage.uri} holds this sweep already; pass --resume to continue it, "
                        f"or choose another --storage or --seed")
    if plan.args.resume and not exists:
        raise UserError(f"--resume: nothing to resume at {plan.storage.uri}")
