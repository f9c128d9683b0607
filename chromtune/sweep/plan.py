"""The sweep's plan: every setting and file validated, and what follows from them, before Ray or MLflow start."""

from __future__ import annotations

import json
import math
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.fs as pafs
import torch

from chromtune.atomic import check_output_folder
from chromtune.errors import UserError
from chromtune.models import ARCHITECTURES
from chromtune.sweep.search_space import SearchSpace, load_search_space
from chromtune.io.storage import Storage
from chromtune.io.files import is_uri
from chromtune.sweep.settings import SAMPLE_SIZES, SweepSettings, flag
from chromtune.train.config import TrainConfig, config_values, data_file
from chromtune.train.precision import resolve_precision
from chromtune.sweep.lease import LEASE_NAME



@dataclass
class SweepPlan:
    """Everything the sweep decided before the first trial."""

    settings: SweepSettings
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
    def n_folds(self) -> int:
        """Folds run (the reference split is one, whatever ``folds`` says)."""
        return len(self.folds)

    @property
    def label(self) -> str:
        """What tells this sweep from another of the same data (``resnet tune+mean``, ``resnet tune+mean bf16
        4/bin``): MLflow run names begin with it, so the UI's run list tells two sweeps apart."""
        s = self.settings
        mean = ("+mean" + ("(loo)" if s.mean_feature == "loo" else "")) if s.with_mean else ""
        bf16 = " bf16" if self.base["precision"] == "bf16" else ""
        grouped = f" {s.pairs_per_bin}/bin" if s.pairs_per_bin > 1 else ""
        return f"{s.arch} {s.paradigm}{mean}{bf16}{grouped}"


def plan_sweep(settings: SweepSettings) -> SweepPlan:
    """Validate every setting and file before Ray or MLflow start."""
    from chromtune.data.folds import plan_folds
    from chromtune.data.sampling import check_pairs_per_bin
    from chromtune.tracking import resolve_tracking_uri
    from chromtune.train.evaluate import validation_lines
    from chromtune.train.task import load_dataset

    s = settings
    if s.arch not in ARCHITECTURES:
        raise UserError(f"--arch {s.arch!r}: unknown architecture; valid names: {', '.join(ARCHITECTURES)}")
    for flag, value in (("--workers-per-trial", s.workers_per_trial), ("--max-concurrent-trials", s.max_concurrent_trials),
                        ("--concurrent-folds", s.concurrent_folds)):
        if value < 0:
            raise UserError(f"{flag} {value}: must be 0 or more")
    if s.cpus_per_worker <= 0:
        raise UserError(f"--cpus-per-worker {s.cpus_per_worker:g}: must be positive")
    if s.gpus_per_worker < 0:
        raise UserError(f"--gpus-per-worker {s.gpus_per_worker:g}: must be 0 or more")
    tracking_uri = resolve_tracking_uri(s.tracking_uri)
    if not is_uri(s.storage):
        check_output_folder(s.storage, "--storage")
    if s.gpus_per_worker and not s.workers_per_trial and s.gpus_per_worker > 1:
        raise UserError("--gpus-per-worker: more than 1 GPU needs --workers-per-trial (one GPU per DDP worker)")
    data = data_file(s.data)
    dataset = load_dataset(data)
    folds = plan_folds(dataset.n_cell_types, s.folds, s.seed, s.split)
    check_pairs_per_bin(s.pairs_per_bin, folds)
    spaces = {1: load_search_space(s.stage1_space), 2: load_search_space(s.stage2_space)}
    if s.smoke_test:
        spaces = {stage: space.shrunk() for stage, space in spaces.items()}
    if not s.early_stopping:  # every grid point trains its whole budget
        spaces = {stage: replace(space, asha=None) for stage, space in spaces.items()}
    mean_tag = "mean" if s.with_mean else "nomean"
    variant = ("-ref" if s.split == "reference" else "") + ("-meanloo" if s.mean_feature == "loo" else "") + \
        (f"-ppb{s.pairs_per_bin}" if s.pairs_per_bin > 1 else "")
    precision = resolve_precision(s.precision, torch.device("cuda" if s.gpus_per_worker else "cpu"))
    key = f"{Path(data).stem}-{s.arch}-{s.paradigm}-{mean_tag}-k{len(folds)}-s{s.seed}{variant}" + \
          ("-bf16" if precision == "bf16" else "") + ("-smoke" if s.smoke_test else "")
    storage = Storage(s.storage).child(key)
    local = Path(storage.root) if not storage.is_uri else Path(tempfile.gettempdir()) / "chromtune-sweeps" / key
    base = config_values(s.data, s.cpus_per_worker, s.smoke_test, valid_cells=max(len(f.valid) for f in folds),
                         test_cells=max(len(f.test) for f in folds), arch=s.arch, folds=len(folds), split=s.split,
                         seed=s.seed, width=s.width, paradigm=s.paradigm, with_mean=s.with_mean,
                         mean_feature=s.mean_feature, eval_every=s.eval_every, valid_bins=s.valid_bins,
                         valid_pairs=s.valid_pairs, test_every=s.test_every, test_max_pairs=s.test_max_pairs,
                         precision=precision, pairs_per_bin=s.pairs_per_bin)
    TrainConfig(**base)  # a bad setting is one line now, not a failed trial later
    stages = [TrainConfig.from_dict({**base, **space.fixed, "stage": stage, "init": "(stage 1)"})
              for stage, space in spaces.items()]
    for line in validation_lines(dataset, folds, stages):  # a fold that cannot validate: one line, now
        print(f"chromtune: warning: {line}", file=sys.stderr, flush=True)
    return SweepPlan(s, data, base, spaces, key, storage, local, tracking_uri,
                     s.experiment or f"chromtune-{Path(data).stem}", dataset.cell_types, folds)


def _trial_slots(plan: SweepPlan) -> float:
    """Trials at once: ``--max-concurrent-trials``, else as many as the cluster (and what its
    autoscaler may add) fits; inf when unbounded."""
    from chromtune.sweep.ray_runtime import cluster_capacity

    s = plan.settings
    if s.max_concurrent_trials:
        return s.max_concurrent_trials
    workers = max(s.workers_per_trial, 1)
    need = {"CPU": s.cpus_per_worker * workers, "GPU": s.gpus_per_worker * workers}
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
    if plan.settings.concurrent_folds:
        return min(plan.settings.concurrent_folds, plan.n_folds)
    per_fold = max(space.num_samples for space in plan.spaces.values())
    slots = _trial_slots(plan)
    return int(max(1, min(plan.n_folds, slots // per_fold if math.isfinite(slots) else plan.n_folds)))


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
    """A new sweep needs an empty place; ``--resume`` needs a sweep to continue, with the settings
    it began with (its :data:`PLAN_FILE`)."""
    exists = holds_sweep(plan)
    if exists and not plan.settings.resume:
        raise UserError(f"--storage: {plan.storage.uri} holds this sweep already; pass --resume to continue it, "
                        f"or choose another --storage or --seed")
    if plan.settings.resume and not exists:
        raise UserError(f"--resume: nothing to resume at {plan.storage.uri}")
    if plan.settings.resume:
        check_resumed_settings(plan)


PLAN_FILE = "plan.json"


def recorded_settings(plan: SweepPlan) -> dict:
    """Every setting that changes the sweep's results (or where they are recorded), by flag, as this
    plan resolved it (a size left unset: the size it takes). Concurrency, resources, --address and
    --storage are not among them: a resumed sweep may change them."""
    s = plan.settings
    values = {flag(name): value for name, value in plan.base.items() if name != "threads"}
    values.update({flag("smoke_test"): s.smoke_test, flag("early_stopping"): s.early_stopping,
                   **{flag(f"stage{stage}_space"): space.content() for stage, space in plan.spaces.items()},
                   "--tracking-uri": plan.tracking_uri, "--experiment": plan.experiment})
    return json.loads(json.dumps(values))  # as plan.json gives them back (lists for tuples)


def write_plan(plan: SweepPlan) -> None:
    """Keep the sweep's result-relevant settings in its storage (atomically), for ``--resume`` to compare."""
    plan.storage.write_text(PLAN_FILE, json.dumps(recorded_settings(plan), indent=1))


def check_resumed_settings(plan: SweepPlan) -> None:
    """``--resume`` continues the sweep that was begun: a setting that changes results and differs
    from the stored one is refused, one line each. A sweep begun before plans were stored cannot
    be compared: it resumes with the given settings, and says so."""
    text = plan.storage.read_text(PLAN_FILE)
    if text is None:
        print(f"note: sweep {plan.key} was begun by an older chromtune that did not store its settings; "
              f"resuming with the given ones, which must be those it began with", flush=True)
        return
    stored, given = json.loads(text), recorded_settings(plan)
    stored.setdefault(flag("precision"), "fp32")  # stored before --precision existed: fp32 then
    stored.setdefault(flag("pairs_per_bin"), 1)  # before --pairs-per-bin: independent pairs
    lines = [f"{name}: stored {_shown(name, stored.get(name), given[name])} -> given "
             f"{_shown(name, given[name], stored.get(name))}" for name in given if stored.get(name) != given[name]]
    if lines:
        raise UserError(f"--resume: sweep {plan.key} began with other settings; resume it with the stored ones, "
                        f"or start a new sweep with the given ones under another --storage (without --resume):", lines)


def _shown(name: str, value, other) -> str:
    """A stored or given setting as a line shows it: a search space by what differs from the other."""
    if isinstance(value, dict) and isinstance(other, dict):
        return json.dumps({k: v for k, v in value.items() if other.get(k) != v}, separators=(",", ":"))
    if value == 0 and name in (flag(size) for size in SAMPLE_SIZES):
        return "all"
    return "(none)" if value is None else str(value)
