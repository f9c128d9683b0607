"""What validation costs in a finished sweep's trials, and what validating only at ASHA's rungs and
the last epoch would have cost and selected, replayed from the trials' logged histories.

From the MLflow store of finished sweeps (every stage run and its trial runs): each trial's per-epoch
``train_time_s``, ``valid_time_s`` and ``valid_auprc`` with the time each epoch's result reached
the driver. For every stage, Ray 2.60's ASHA bracket (rungs at grace_period x reduction_factor^k up
to the budget; a trial arriving at a rung stops below the (1 - 1/rf) quantile of the values recorded
there before it; metric ``best_valid_auprc``) is replayed in arrival order, then the sweep's
selection (trials at the full budget, highest ``best_valid_auprc``), twice: with the best over every
epoch (which must reproduce the sweep's own choice) and with the best over the validated epochs only.
The search spaces are the shipped defaults (``--stage1-space`` / ``--stage2-space`` to change).

    python benchmarks/bench_validation_rungs.py --tracking-uri sqlite:///mlflow.db --experiment chromtune-demo-v2-seed0
"""

from __future__ import annotations

import argparse
import collections
import math
import sys

import numpy as np
from mlflow.tracking import MlflowClient

from chromtune.sweep.search_space import load_search_space


def rungs(space) -> tuple[list[int], int, float]:
    """(ASHA's milestones, the budget in epochs, the reduction factor) of a search space."""
    asha, budget = space.asha or {}, int(space.fixed["epochs"])
    grace, rf = int(asha.get("grace_period", 1)), float(asha.get("reduction_factor", 4))
    return sorted({int(grace * rf ** k) for k in range(32) if grace * rf ** k <= budget}), budget, rf


def replay(histories: dict, milestones: list[int], budget: int, rf: float, validated: set[int]):
    """(selected trial, its best epoch) when only `validated` epochs are scored; `histories`:
    trial -> [(epoch, valid_auprc, arrival time)]."""
    recorded = {m: {} for m in milestones}
    stopped, best = set(), {}
    for _, trial, epoch, auprc in sorted((ts, t, ep, a) for t, h in histories.items() for ep, a, ts in h):
        if trial in stopped:
            continue
        if epoch in validated and (trial not in best or auprc > best[trial][0]):
            best[trial] = (auprc, epoch)
        value = best.get(trial, (-math.inf, 0))[0]
        for milestone in reversed(milestones):
            if epoch < milestone or trial in recorded[milestone]:
                continue
            earlier = list(recorded[milestone].values())
            if earlier and epoch < budget and value < np.nanpercentile(earlier, (1 - 1 / rf) * 100):
                stopped.add(trial)
            recorded[milestone][trial] = value
            break
    full = [t for t in histories if t not in stopped and max(ep for ep, _, _ in histories[t]) == budget]
    chosen = max(full, key=lambda t: best[t][0])
    return chosen, best[chosen][1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    p.add_argument("--experiment", required=True)
    p.add_argument("--stage1-space", default="stage1.yaml")
    p.add_argument("--stage2-space", default="stage2.yaml")
    args = p.parse_args(argv)
    spaces = {"1": rungs(load_search_space(args.stage1_space)), "2": rungs(load_search_space(args.stage2_space))}
    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=50_000)
    trials = collections.defaultdict(list)
    for run in runs:
        if run.data.tags.get("chromtune.level") == "trial":
            trials[run.data.tags.get("mlflow.parentRunId")].append(run)
    stages = sorted((r for r in runs if r.data.tags.get("chromtune.level") == "stage" and r.info.status == "FINISHED"),
                    key=lambda r: (r.data.tags["chromtune.sweep"], int(r.data.tags["fold"]), r.data.tags["stage"]))
    seconds = collections.defaultdict(lambda: np.zeros(3))  # stage -> train, valid every epoch, valid at rungs
    shares = collections.defaultdict(list)
    counts = collections.Counter()
    print("| sweep | fold | stage | selected (every epoch: point, epoch) | rungs only | same |")
    print("|---|---:|---:|---|---|---|")
    for stage_run in stages:
        stage = stage_run.data.tags["stage"]
        milestones, budget, rf = spaces[stage]
        validated = set(milestones) | {budget}
        histories, points = {}, {}
        for trial in trials[stage_run.info.run_id]:
            history = {k: sorted(client.get_metric_history(trial.info.run_id, k), key=lambda m: m.step)
                       for k in ("epoch", "valid_auprc", "train_time_s", "valid_time_s")}
            histories[trial.info.run_id] = [(int(e.value), a.value, a.timestamp)
                                            for e, a in zip(history["epoch"], history["valid_auprc"])]
            points[trial.info.run_id] = f"batch {trial.data.params.get('batch_size')}, lr {trial.data.params.get('lr')}"
            train = sum(m.value for m in history["train_time_s"])
            valid = sum(m.value for m in history["valid_time_s"])
            at_rungs = sum(v.value for e, v in zip(history["epoch"], history["valid_time_s"])
                           if int(e.value) in validated)
            seconds[stage] += (train, valid, at_rungs)
            shares[stage].append(valid / (train + valid))
        every = replay(histories, milestones, budget, rf, set(range(1, budget + 1)))
        only = replay(histories, milestones, budget, rf, validated)
        actual = f"batch {stage_run.data.tags.get('selected.batch_size')}, lr {stage_run.data.tags.get('selected.lr')}"
        counts["stages"] += 1
        counts["replayed"] += points[every[0]] == actual
        counts["point"] += every[0] == only[0]
        counts["epoch"] += every == only
        print(f"| {stage_run.data.tags['chromtune.sweep']} | {stage_run.data.tags['fold']} | {stage} | "
              f"{points[every[0]]}, epoch {every[1]} | {points[only[0]]}, epoch {only[1]} | "
              f"{'yes' if every == only else 'point' if every[0] == only[0] else 'no'} |")
    print(f"\n{counts['stages']} stages: the replay with every epoch reproduces the sweep's selection in "
          f"{counts['replayed']}; validating at rungs only selects the same point in {counts['point']}, "
          f"the same point and epoch in {counts['epoch']}")
    for stage, (train, valid, at_rungs) in sorted(seconds.items()):
        print(f"stage {stage}: validation {valid / (train + valid):.1%} of trial time (median trial "
              f"{np.median(shares[stage]):.1%}); at rungs and the last epoch only {at_rungs / (train + at_rungs):.1%}, "
              f"the stage's trial time x{(train + at_rungs) / (train + valid):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
