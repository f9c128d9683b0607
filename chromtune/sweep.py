"""``python -m chromtune.sweep``: the paper's protocol on Ray Tune + Optuna, tracked in MLflow.

For every fold: a stage-1 search (Optuna over the stage-1 space) -> the best stage-1 checkpoint
by its validation metric -> a stage-2 search initialised from it -> the best stage-2 trial by
validation AUPRC -> one evaluation on the fold's test cell types, beside both baselines on the
same pairs. Each (fold, stage) is one Tune experiment under STORAGE/SWEEP/ (STORAGE: a folder, or an
s3:// / gs:// / file:// location every node of a cluster reaches); a finished one leaves
``foldK-stageS.json``, so ``--resume`` skips it, and an unfinished one is restored from Tune's
experiment state (finished trials are not rerun, unfinished ones continue from their checkpoints).

Examples:
  python -m chromtune.sweep --arch resnet --folds 5              # the embedded demo data set
  python -m chromtune.sweep --arch basset --folds 5 --smoke-test # the same path, shrunk (CI)
  python -m chromtune.sweep --data data.h5 --arch resnet --folds 5 --workers-per-trial 2 \\
      --gpus-per-worker 1 --address auto --storage s3://bucket/chromtune
  python -m chromtune.sweep --arch resnet --folds 5 --resume     # after the driver died
  python -m chromtune.sweep --arch basset resnet --paradigm tune freeze  # four sweeps, then compared
  mlflow ui                                                       # then open the runs
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow.fs as pafs
import torch

from chromtune.atomic import write_text
from chromtune.errors import UserError, run_cli
from chromtune.models import ARCHITECTURES
from chromtune.search_space import SearchSpace, load_search_space
from chromtune.storage import Storage, fetch
from chromtune.train.config import PARADIGMS, TrainConfig

SPACES = Path(__file__).resolve().parent / "search_spaces"
RESULT_NAMES = ("model", "mean_baseline", "weighted_mean_baseline")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chromtune sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["resnet"],
                   help=f"architecture(s): {', '.join(ARCHITECTURES)}; several are swept one after another "
                        "and compared at the end")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--data", help="data set file (default: the embedded demo data set)")
    p.add_argument("--stage1-space", default=str(SPACES / "stage1.yaml"))
    p.add_argument("--stage2-space", default=str(SPACES / "stage2.yaml"))
    p.add_argument("--paradigm", nargs="+", default=["tune"], choices=PARADIGMS,
                   help="stage-2 paradigm(s): tune or freeze the trunk; several are compared at the end")
    p.add_argument("--mean", dest="with_mean", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--width", type=float, default=None, help="channel multiplier (default 1.0; demo 0.25)")
    p.add_argument("--workers-per-trial", type=int, default=0,
                   help="Ray Train workers per trial (DDP); 0 trains inside the trial's own process")
    p.add_argument("--gpus-per-worker", type=float, default=0)
    p.add_argument("--cpus-per-worker", type=float, default=1)
    p.add_argument("--max-concurrent-trials", type=int, default=0, help="0: as many as the cluster fits")
    p.add_argument("--concurrent-folds", type=int, default=0,
                   help="folds at once; 0: as many as the cluster fits with room for a whole stage each")
    p.add_argument("--address", help="Ray cluster address (default: a private local Ray)")
    p.add_argument("--storage", default="ray_results", help="Tune/Train storage: a folder (one machine), or s3://, gs:// or file:// on a "
                   "filesystem every node mounts (a cluster)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment (default: chromtune-<data set name>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the sweep whose driver died")
    p.add_argument("--smoke-test", action="store_true", help="the same path shrunk to a couple of minutes")
    return p


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


def plan_sweep(args: argparse.Namespace) -> SweepPlan:
    """Validate every flag and file before Ray or MLflow start."""
    from chromtune.data.folds import make_folds
    from chromtune.train.task import load_dataset

    if args.arch not in ARCHITECTURES:
        raise UserError(f"--arch {args.arch!r}: unknown architecture; valid names: {', '.join(ARCHITECTURES)}")
    for flag, value in (("--workers-per-trial", args.workers_per_trial), ("--max-concurrent-trials", args.max_concurrent_trials),
                        ("--concurrent-folds", args.concurrent_folds)):
        if value < 0:
            raise UserError(f"{flag} {value}: must be 0 or more")
    if args.gpus_per_worker and not args.workers_per_trial and args.gpus_per_worker > 1:
        raise UserError("--gpus-per-worker: more than 1 GPU needs --workers-per-trial (one GPU per DDP worker)")
    if args.data:
        data = str(Path(args.data).resolve())
    else:
        from chromtune.data.demo import demo_path
        data = str(demo_path())
    dataset = load_dataset(data)
    make_folds(dataset.n_cell_types, args.folds, args.seed)
    spaces = {1: load_search_space(args.stage1_space), 2: load_search_space(args.stage2_space)}
    if args.smoke_test:
        spaces = {stage: space.shrunk() for stage, space in spaces.items()}
    width = args.width or (1.0 if args.data else 0.25)
    mean_tag = "mean" if args.with_mean else "nomean"
    key = f"{Path(data).stem}-{args.arch}-{args.paradigm}-{mean_tag}-k{args.folds}-s{args.seed}" + \
          ("-smoke" if args.smoke_test else "")
    storage = Storage(args.storage).child(key)
    local = Path(storage.root) if not storage.is_uri else Path(tempfile.gettempdir()) / "chromtune-sweeps" / key
    base = dict(data=data, arch=args.arch, folds=args.folds, seed=args.seed, width=width, paradigm=args.paradigm,
                with_mean=args.with_mean, threads=max(1, int(args.cpus_per_worker)))
    return SweepPlan(args, data, base, spaces, key, storage, local, args.tracking_uri or "sqlite:///mlflow.db",
                     args.experiment or f"chromtune-{Path(data).stem}", dataset.cell_types)


def sweep_trial(config: dict) -> None:
    """A Tune function trainable: one TrainConfig, trained in this process or by a TorchTrainer."""
    from ray import tune

    from chromtune.train.loop import run_loop
    from chromtune.train.runner import latest_checkpoint, make_trainer

    cfg = TrainConfig.from_dict(config)
    workers = config["runtime_workers"]
    if workers == 0:
        run_loop(cfg, TuneSession(torch.device("cuda") if config["runtime_gpus"] else torch.device("cpu")))
        return
    from ray.tune.integration.ray_train import TuneReportCallback

    # Train's checkpoints stay in Train's storage (TuneReportCallback forwards their path as the
    # metric ``checkpoint_path``), so a restarted trial resumes from its Train run's latest one.
    name = f"train-{tune.get_context().get_trial_id()}"
    resume = latest_checkpoint(Storage(config["runtime_storage"]), name)
    trainer = make_trainer(cfg, config["runtime_storage"], workers, bool(config["runtime_gpus"]),
                           config["runtime_cpus"], max_failures=config["runtime_max_failures"], resume=resume,
                           name=name, callbacks=[TuneReportCallback()])
    trainer.fit()


class TuneSession:
    """The training loop's session inside a single-process Tune trial (see chromtune.train.loop)."""

    rank, world_size = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def prepare(self, model):
        return model.to(self.device)

    def checkpoint_dir(self):
        from ray import tune

        checkpoint = tune.get_checkpoint()
        return Path(checkpoint.to_directory()) if checkpoint else None

    def report(self, metrics: dict, folder, name: str) -> None:
        import ray
        from ray import tune

        metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(folder)))


def _trial_slots(plan: SweepPlan) -> float:
    """Trials at once: ``--max-concurrent-trials``, else as many as the cluster (and what its
    autoscaler may add) fits; inf when unbounded."""
    from chromtune.ray_runtime import cluster_capacity

    args = plan.args
    if args.max_concurrent_trials:
        return args.max_concurrent_trials
    workers = max(args.workers_per_trial, 1)
    need = {"CPU": args.cpus_per_worker * workers, "GPU": args.gpus_per_worker * workers}
    capacity = cluster_capacity()
    return max(1, min(capacity.get(name, 0) // amount for name, amount in need.items() if amount > 0))


def _concurrency(plan: SweepPlan, trials: int) -> int:
    """Trials at once in one (fold, stage): the slots, never more than the stage has."""
    return int(min(_trial_slots(plan), trials))


def concurrent_folds(plan: SweepPlan) -> int:
    """Folds run at once: ``--concurrent-folds``, else as many as leave every one of them room for
    a whole stage's trials (so a fold never waits behind another's stage)."""
    args = plan.args
    if args.concurrent_folds:
        return min(args.concurrent_folds, args.folds)
    per_fold = max(space.num_samples for space in plan.spaces.values())
    return int(max(1, min(args.folds, _trial_slots(plan) // per_fold)))


def run_stage(plan: SweepPlan, tracker, fold: int, stage: int, parent_run: str, init: str | None) -> dict:
    """One (fold, stage) Tune experiment; returns the selected trial (config, metric, and its checkpoint
    folder's name in the sweep's storage)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from chromtune.tracking import TrialLogger

    args, space = plan.args, plan.spaces[stage]
    name = f"fold{fold}-stage{stage}"
    done = plan.storage.read_text(f"{name}.json")
    if done is not None:
        return json.loads(done)
    label = f"fold {fold} stage {stage}"
    tags = {"chromtune.level": "stage", "arch": args.arch, "fold": fold, "stage": stage,
            "paradigm": args.paradigm, "mean": args.with_mean}
    stage_run = tracker.hierarchy_run(f"{plan.key}/{name}", label, parent_run, tags,
                                      {"sampler": space.sampler, "num_samples": space.num_samples, **space.fixed})
    param_space = {**plan.base, **space.fixed, "stage": stage, "fold": fold, "init": init,
                   "runtime_workers": args.workers_per_trial, "runtime_gpus": args.gpus_per_worker,
                   "runtime_cpus": args.cpus_per_worker, "runtime_max_failures": 2,
                   "runtime_storage": plan.storage.uri_of()}
    # A trial that drives a TorchTrainer only waits on it; its workers request the real resources.
    resources = ({"CPU": args.cpus_per_worker, "GPU": args.gpus_per_worker} if args.workers_per_trial == 0
                 else {"CPU": 0.01})
    trainable = tune.with_resources(sweep_trial, resources)
    logger = TrialLogger(plan.tracking_uri, plan.experiment, plan.key, stage_run,
                         {k: v for k, v in tags.items() if k != "chromtune.level"}, list(space.params), label,
                         space.num_samples)
    path = plan.storage.uri_of(name)
    if tune_state_saved(plan.storage, name):
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=param_space)
    else:
        if plan.storage.exists(name):  # begun by a driver that died before Tune saved any state
            plan.storage.fs.delete_dir(plan.storage.path(name))
        scheduler = (ASHAScheduler(time_attr="epoch", max_t=param_space.get("epochs", 4), **space.asha)
                     if space.asha else None)
        searcher = OptunaSearch(space.distributions(), metric="valid_auprc", mode="max",
                                sampler=space.optuna_sampler(args.seed + 100 * fold + stage))
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=space.num_samples,
                                        max_concurrent_trials=_concurrency(plan, space.num_samples), reuse_actors=False),
            run_config=tune.RunConfig(name=name, storage_path=plan.storage.uri_of(), verbose=0, callbacks=[logger],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      failure_config=tune.FailureConfig(max_failures=2)),
        )
    results = tuner.fit()
    recorded = logger.record_unlogged(results)
    if recorded:
        print(f"[{label}] {recorded} finished trial(s) had no FINISHED MLflow run; recorded from Tune's results",
              flush=True)
    finished = [r for r in results if r.error is None and _has_checkpoint(r)]
    if not finished:
        raise RuntimeError(f"{label}: every trial failed; see {path}")
    best = max(finished, key=lambda r: r.metrics.get("best_valid_auprc", float("-inf")))
    selected = f"{name}-selected"
    source_fs, source = _checkpoint_location(best, plan.storage)
    plan.storage.fs.create_dir(plan.storage.path(selected), recursive=True)
    pafs.copy_files(source, plan.storage.path(selected), source_filesystem=source_fs,
                    destination_filesystem=plan.storage.fs)
    choice = {"config": {k: v for k, v in best.config.items() if not k.startswith("runtime_")},
              "params": {k: best.config[k] for k in space.params}, "best_valid_auprc": best.metrics["best_valid_auprc"],
              "checkpoint": selected, "trials": len(results)}
    tracker.log_metrics(stage_run, {"best_valid_auprc": choice["best_valid_auprc"]})
    tracker.set_tags(stage_run, {f"selected.{k}": v for k, v in choice["params"].items()})
    tracker.finish(stage_run)
    print(f"[{label}] selected {choice['params']} valid_auprc={choice['best_valid_auprc']:.4f}", flush=True)
    plan.storage.write_text(f"{name}.json", json.dumps(choice, indent=1))
    return choice


def tune_state_saved(storage: Storage, name: str) -> bool:
    """Tune saved experiment ``name``'s state, so it can resume it. ``Tuner.can_restore`` asks only for
    tuner.pkl, which a driver killed as the experiment began leaves alone; restoring that resumes
    nothing and runs a partial search."""
    found = storage.fs.get_file_info(pafs.FileSelector(storage.path(name), allow_not_found=True))
    return any(info.base_name.startswith("experiment_state-") for info in found)


def _has_checkpoint(result) -> bool:
    return result.checkpoint is not None or bool((result.metrics or {}).get("checkpoint_path"))


def _checkpoint_location(result, storage: Storage):
    """A trial's last epoch checkpoint as (filesystem, path): Tune's own (in-process trials) or
    Train's, whose path TuneReportCallback forwards in the storage's filesystem (TorchTrainer trials)."""
    if result.checkpoint is not None:
        return result.checkpoint.filesystem, result.checkpoint.path
    return storage.fs, result.metrics["checkpoint_path"]


def evaluate_fold(plan: SweepPlan, tracker, fold: int, fold_run: str, stage2: dict) -> dict:
    """The one test evaluation of the selected stage-2 model, logged to the fold's run."""
    from chromtune.models.checkpoint import load_model
    from chromtune.train.runner import finish_run

    done = plan.storage.read_text(f"fold{fold}-test.json")
    if done is not None:
        return json.loads(done)
    out = plan.local / f"fold{fold}-selected"
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig.from_dict(stage2["config"])
    metrics = finish_run(cfg, fetch(plan.storage.uri_of(stage2["checkpoint"])), out)
    if plan.storage.is_uri:
        plan.storage.put_folder(out, out.name)
    test = metrics["test"]
    flat = {f"test_{name}_{m}": test[name][m] for name in RESULT_NAMES
            for m in ("auprc", "auroc", "auprc_mean_per_cell", "auroc_mean_per_cell")}
    tracker.log_metrics(fold_run, flat)
    tracker.log_params(fold_run, {f"selected.{k}": v for k, v in stage2["params"].items()})
    tracker.log_artifacts(fold_run, [out / name for name in
                                     ("metrics.json", "split.tsv", "pr_curves.png", "pr_curves.npz", "best.pt")])
    model, _ = load_model(out / "best.pt")
    tracker.log_model(fold_run, FlatInputModel(model), FlatInputModel.example(model))
    tracker.finish(fold_run)
    result = {"fold": fold, **{name: {"auprc": test[name]["auprc"], "auroc": test[name]["auroc"]}
                               for name in RESULT_NAMES}}
    plan.storage.write_text(f"fold{fold}-test.json", json.dumps(result, indent=1))
    return result


class FlatInputModel(torch.nn.Module):
    """The stage-2 model behind one (N, 4*L + G [+ 1]) float input, for MLflow's pyfunc serving:
    the flattened one-hot window, then the G expression values, then the mean accessibility."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.seq_len, self.n_genes = model.config["seq_len"], model.config["n_genes"]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        cut = 4 * self.seq_len
        x = inputs[:, :cut].reshape(-1, 4, self.seq_len)
        expr = inputs[:, cut:cut + self.n_genes]
        mean = inputs[:, cut + self.n_genes] if self.model.config["with_mean"] else None
        return torch.sigmoid(self.model(x, expr, mean))

    @staticmethod
    def example(model):
        width = 4 * model.config["seq_len"] + model.config["n_genes"] + int(model.config["with_mean"])
        return torch.zeros(2, width).numpy()


def summary_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for result in results:
        row = {"fold": result["fold"]}
        for name in RESULT_NAMES:
            row[f"{name} AUPRC"] = round(result[name]["auprc"], 4)
            row[f"{name} AUROC"] = round(result[name]["auroc"], 4)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("fold")
    table.loc["mean"] = table.mean().round(4)
    return table


def share_data_file(plan: SweepPlan) -> str:
    """Copy the data set file into the sweep's storage once, so every node can fetch it; its URI."""
    target = f"data/{Path(plan.data).name}"
    if plan.storage.fs.get_file_info(plan.storage.path(target)).size != os.path.getsize(plan.data):
        plan.storage.fs.create_dir(plan.storage.path("data"), recursive=True)
        pafs.copy_files(plan.data, plan.storage.path(target), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=plan.storage.fs)
    return plan.storage.uri_of(target)


def _serialise_tune_registry() -> None:
    """Let Tuners start in several threads: Tune's trainable registry (one dict per process, which
    every ``Tuner.fit`` writes and flushes) is not thread-safe in Ray 2.60, so guard it by a lock."""
    from ray.tune import registry

    if getattr(registry._Registry, "_chromtune_lock", None):
        return
    lock = threading.RLock()
    for name in ("register", "flush_values"):
        method = getattr(registry._Registry, name)
        setattr(registry._Registry, name, functools.wraps(method)(
            lambda self, *a, _method=method, **k: _locked(lock, _method, self, *a, **k)))
    registry._Registry._chromtune_lock = lock


def _locked(lock, method, *args, **kwargs):
    with lock:
        return method(*args, **kwargs)


def run_fold(plan: SweepPlan, fold: int, sweep_run: str) -> dict:
    """One fold: stage-1 search, stage-2 search from its best checkpoint, the test evaluation.
    Folds may run in threads at once (Tune runs in non-main threads); each has its own MLflow client."""
    from chromtune.tracking import Tracker

    args = plan.args
    tracker = Tracker(plan.tracking_uri, plan.experiment, plan.key)
    fold_tags = {"chromtune.level": "fold", "arch": args.arch, "fold": fold, "stage": 2,
                 "paradigm": args.paradigm, "mean": args.with_mean}
    fold_run = tracker.hierarchy_run(f"{plan.key}/fold{fold}", f"fold {fold}", sweep_run, fold_tags)
    stage1 = run_stage(plan, tracker, fold, 1, fold_run, None)
    stage2 = run_stage(plan, tracker, fold, 2, fold_run, plan.storage.uri_of(stage1["checkpoint"], "best.pt"))
    result = evaluate_fold(plan, tracker, fold, fold_run, stage2)
    print(f"[fold {fold}] test AUPRC model {result['model']['auprc']:.4f} | mean baseline "
          f"{result['mean_baseline']['auprc']:.4f} | RNA-weighted {result['weighted_mean_baseline']['auprc']:.4f}",
          flush=True)
    return result


def check_storage(plan: SweepPlan) -> None:
    """A new sweep needs an empty place; ``--resume`` needs a sweep to continue."""
    exists = not plan.storage.is_empty()
    if exists and not plan.args.resume:
        raise UserError(f"--storage: {plan.storage.uri} holds this sweep already; pass --resume to continue it, "
                        f"or choose another --storage or --seed")
    if plan.args.resume and not exists:
        raise UserError(f"--resume: nothing to resume at {plan.storage.uri}")


def run_sweep(plan: SweepPlan) -> pd.DataFrame:
    from chromtune.data.shared import release_shared
    from chromtune.ray_runtime import check_resources, check_shared_storage, is_multi_node, start_ray
    from chromtune.tracking import Tracker

    args = plan.args
    check_storage(plan)
    start_ray(args.address)
    check_resources(args.workers_per_trial, args.cpus_per_worker, args.gpus_per_worker)
    check_shared_storage(plan.storage)
    plan.storage.fs.create_dir(plan.storage.root, recursive=True)
    plan.local.mkdir(parents=True, exist_ok=True)
    if plan.storage.is_uri and is_multi_node():
        plan.base["data"] = share_data_file(plan)
    tracker = Tracker(plan.tracking_uri, plan.experiment, plan.key)
    if args.resume:
        killed = tracker.kill_orphans()
        print(f"resuming {plan.key}: {killed} orphaned trial run(s) marked KILLED", flush=True)
    tags = {"chromtune.level": "sweep", "arch": args.arch, "paradigm": args.paradigm, "mean": args.with_mean}
    sweep_run = tracker.hierarchy_run(plan.key, f"sweep {plan.key}", None, tags,
                                      {**{k: v for k, v in plan.base.items() if k != "data"}, "data": plan.data,
                                       "stage1_space": args.stage1_space, "stage2_space": args.stage2_space,
                                       "smoke_test": args.smoke_test})
    started = time.time()
    at_once = concurrent_folds(plan)
    if at_once == 1:
        results = [run_fold(plan, fold, sweep_run) for fold in range(args.folds)]
    else:
        print(f"{at_once} folds at a time", flush=True)
        _serialise_tune_registry()
        with ThreadPoolExecutor(at_once, thread_name_prefix="fold") as pool:
            results = list(pool.map(lambda fold: run_fold(plan, fold, sweep_run), range(args.folds)))
    table = summary_table(results)
    summary = {"summary.csv": table.to_csv(),
               "summary.md": table.to_markdown() if _has_tabulate() else table.to_string()}
    for name, text in summary.items():
        write_text(plan.local / name, text)
        if plan.storage.is_uri:
            plan.storage.write_text(name, text)
    tracker.log_artifacts(sweep_run, [plan.local / name for name in summary])
    tracker.log_metrics(sweep_run, {"wall_time_s": time.time() - started,
                                    **{f"mean_test_{n}_auprc": table.loc["mean", f"{n} AUPRC"] for n in RESULT_NAMES}})
    tracker.finish(sweep_run)
    release_shared(plan.base["data"])
    return table


def _has_tabulate() -> bool:
    """pandas' to_markdown needs the optional package tabulate."""
    return importlib.util.find_spec("tabulate") is not None


def quiet_libraries() -> None:
    """Concise progress: our own lines, not Tune's tables, Optuna's study notes or sync warnings."""
    import logging

    import optuna

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    plans = [plan_sweep(argparse.Namespace(**{**vars(args), "arch": arch, "paradigm": paradigm}))
             for arch in dict.fromkeys(args.arch) for paradigm in dict.fromkeys(args.paradigm)]
    for plan in plans:
        check_storage(plan)
    for plan in plans:
        print(f"sweep {plan.key}: {args.folds} folds x 2 stages, {plan.spaces[1].num_samples} + "
              f"{plan.spaces[2].num_samples} trials per fold; storage {plan.storage.uri}; MLflow {plan.tracking_uri} "
              f"experiment {plan.experiment}", flush=True)
        table = run_sweep(plan)
        print(f"\n{plan.key}: test AUPRC / AUROC on held-out cell types (model and baselines on the same pairs):")
        print(table.to_string())
    if len(plans) > 1:
        from chromtune.compare import run_compare

        report = run_compare(plans[0].tracking_uri, plans[0].experiment, Path("comparison") / plans[0].experiment,
                             sweeps=[plan.key for plan in plans])
        print(f"\ncomparison of {len(plans)} sweeps: {', '.join(str(f) for f in report['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
