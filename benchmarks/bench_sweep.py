"""Wall time of a sweep, and per-trial overhead: time in Ray/Tune/Train outside the training loop
(trial run duration minus the training and validation time its epochs report), as a fraction.
Per stage, the compute the trials used: CPU seconds (``epoch_cpu_s``, which a shared machine
distorts less than wall time), training samples, trials stopped early, and the samples the same
trials would have trained without early stopping.

Runs ``python -m chromtune.sweep ARGS`` in a fresh working folder (own MLflow store and storage),
then reads the trial runs back from MLflow.

    python benchmarks/bench_sweep.py -- --arch resnet --folds 5
    python benchmarks/bench_sweep.py -- --arch basset --folds 2 --smoke-test --workers-per-trial 1
    python benchmarks/bench_sweep.py --existing FOLDER   # a sweep already run in FOLDER: its trials only
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient


def fail(message: str) -> None:
    print(f"bench_sweep: error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_args", nargs=argparse.REMAINDER, help="arguments after -- go to the sweep")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    parser.add_argument("--existing", help="read the trials of a sweep already run in this folder; run nothing")
    args = parser.parse_args()
    sweep_args = [a for a in args.sweep_args if a != "--"]
    if args.existing:
        workdir = Path(args.existing)
        if not (workdir / "mlflow.db").is_file():
            fail(f"--existing {workdir}: no mlflow.db there (run the sweep in that folder first)")
    else:
        workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-sweep-"))
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "chromtune.sweep", *sweep_args], cwd=workdir,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"sweep failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        wall = time.perf_counter() - started
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=50_000,
                              filter_string="tags.`chromtune.level` = 'trial' and attributes.status = 'FINISHED'")
    if not runs:
        fail(f"{workdir / 'mlflow.db'}: no finished trial runs")
    fractions, durations, by_stage, compute = [], [], {}, {}
    for run in runs:
        duration = (run.info.end_time - run.info.start_time) / 1000
        inside = sum(m.value for key in ("train_time_s", "valid_time_s")
                     for m in client.get_metric_history(run.info.run_id, key))
        fractions.append(1 - inside / duration)
        durations.append(duration)
        stage = run.data.tags.get("stage")
        by_stage.setdefault(stage, []).append(duration)
        epochs = len(client.get_metric_history(run.info.run_id, "epoch"))
        samples = int(run.data.params.get("samples_per_epoch", 0))
        cpu = sum(m.value for m in client.get_metric_history(run.info.run_id, "epoch_cpu_s"))
        totals = compute.setdefault(stage, [0, 0, 0.0, 0, 0])  # trials, stopped, CPU s, samples, full-budget samples
        totals[0] += 1
        totals[1] += run.data.tags.get("chromtune.stopped_early") == "true"
        totals[2] += cpu
        totals[3] += epochs * samples
        totals[4] += int(run.data.params.get("epochs", epochs)) * samples
    print(f"sweep: {' '.join(sweep_args) or workdir}")
    if not args.existing:
        print(f"wall time: {wall:.0f} s ({wall / 60:.1f} min)")
    print(f"trials: {len(runs)}")
    print(f"trial duration: median {statistics.median(durations):.1f} s "
          f"(stage 1 {statistics.median(by_stage.get('1', [0])):.1f} s, stage 2 {statistics.median(by_stage.get('2', [0])):.1f} s)")
    print(f"per-trial overhead outside training and validation: median {statistics.median(fractions):.1%}, "
          f"mean {statistics.mean(fractions):.1%}")
    for stage, (trials, stopped, cpu, samples, full) in sorted(compute.items()):
        print(f"stage {stage}: {trials} trials, {stopped} stopped early; {cpu:.0f} CPU s; {samples:,} training samples "
              f"of the {full:,} they would have trained without early stopping ({samples / max(full, 1):.0%})")
    if not args.existing:
        summary = done.stdout.find(": test metrics on the held-out cell types")
        print(done.stdout[done.stdout.rfind("\n", 0, summary) + 1:])


if __name__ == "__main__":
    main()
