"""Chromosome-scale real data: prepare, a smoke sweep, predict, timed as a user runs them.

The material is tests/real_case.py's (GRCh37 chrX, its first 70 Mb; REMO blood CREs of nine cell
types lifted from GRCh38; PBMC 68k expression; sources and licences there). Every command runs as
the console script in the output folder, and the machine's load (``/proc/loadavg``) is recorded
before and after each, since the machine may be shared. Reports:

- wall time of building the case, of ``prepare`` (bins, positive pairs) and of
  ``sweep --data --arch basset --folds 2 --smoke-test``, with each stage's wall time (first trial
  start to last trial end, from MLflow's stage runs);
- per fold and stage, the validation sample the trials scored: bins, cell types, positive pairs,
  cell types without a positive and bins added to give one (rebuilt from a trial's stored
  configuration with ``chromtune.train.evaluate.validation_sample``);
- per fold, test AUPRC of the selected model against the mean and RNA-weighted mean baselines
  (the sweep's summary.csv);
- ``predict`` of the RNA-only cell type (PBMC 68k's CD34+) with the sweep's models over a
  ``--predict-mb`` region: bins per second of the whole command and predict's own rate (its closing
  line: scoring and writing, start-up left out), and the time the first implies for hg38 at stride 50
  (6.2e7 bins).

    nice -n 5 python benchmarks/bench_real_data.py --out /tmp/real-bench
    nice -n 5 python benchmarks/bench_real_data.py --out /tmp/real-bench --length 20000000 --stride 200
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from real_case import FULL_LENGTH, build_case  # noqa: E402

HG38_BINS_STRIDE_50 = 6.2e7


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def save(work: Path, report: dict) -> None:
    """The report so far (a step that fails leaves the earlier ones on disk)."""
    (work / "report.json").write_text(json.dumps(report, indent=1) + "\n")


def timed(label: str, args: list, cwd: Path, report: dict) -> str:
    """Run ``chromtune ARGS`` in ``cwd``; record wall time and load; return its output."""
    before, started = load(), time.perf_counter()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "1",
           "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "chromtune.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    (cwd / f"{label}.log").write_text(output)
    report[label] = {"seconds": round(seconds, 1), "load_before": before, "load_after": load()}
    print(f"{label}: {seconds:.1f} s (load {before} -> {load()})", flush=True)
    save(cwd, report)
    if done.returncode != 0:
        raise SystemExit(f"{label} exited {done.returncode}; see {cwd / f'{label}.log'}:\n{output[-3000:]}")
    return output


def stage_times(work: Path) -> list[dict]:
    """Wall time of each stage run of the sweep, from MLflow."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    rows = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], "tags.`chromtune.level` = 'stage'"):
            tags, info = run.data.tags, run.info
            rows.append({"fold": int(tags["fold"]), "stage": int(tags["stage"]),
                         "seconds": round(((info.end_time or info.start_time) - info.start_time) / 1000, 1)})
    return sorted(rows, key=lambda r: (r["fold"], r["stage"]))


def validation_positives(work: Path) -> list[dict]:
    """The validation sample of each fold and stage, rebuilt from one trial's stored configuration."""
    from dataclasses import fields

    from chromtune.train.config import TrainConfig
    from chromtune.train.evaluate import validation_sample
    from chromtune.train.task import FoldTask

    names = {f.name for f in fields(TrainConfig)}
    rows, tasks = [], {}
    for stage_dir in sorted((work / "ray_results").glob("*/fold*-stage*")):
        params = next(iter(sorted(stage_dir.glob("*/params.json"))), None)
        if params is None:
            continue
        stored = json.loads(params.read_text())
        data = stored["data"] if os.path.isabs(stored["data"]) else str(work / stored["data"])
        cfg = TrainConfig(**{k: v for k, v in stored.items() if k in names and k != "data"}, data=data)
        key = (cfg.fold, cfg.stage)
        task = tasks.setdefault(cfg.fold, FoldTask.from_config(cfg))
        bins, cells, added = validation_sample(task, cfg)
        labels = np.asarray(task.dataset.labels[np.ix_(bins, cells)])
        per_cell = labels.sum(axis=0)
        rows.append({"fold": key[0], "stage": key[1], "bins": int(len(bins)), "cell_types": int(len(cells)),
                     "positive_pairs": int(per_cell.sum()), "bins_added_for_positives": int(sum(added.values())),
                     "cell_types_without_positive": int((per_cell == 0).sum())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--length", type=int, default=FULL_LENGTH, help="bases of chrX (default: all 70 Mb)")
    parser.add_argument("--stride", type=int, default=50, help="prepare's --stride (default: 50, its default)")
    parser.add_argument("--predict-mb", type=float, default=2.0, help="length of predict's region in Mb")
    args = parser.parse_args()
    work = args.out.resolve()
    material = work / "material"
    work.mkdir(parents=True, exist_ok=True)
    report = {"cpus": os.cpu_count()}

    before, started = load(), time.perf_counter()
    report["case"] = build_case(material, args.length)
    report["build_case"] = {"seconds": round(time.perf_counter() - started, 1), "load_before": before,
                            "load_after": load()}
    rel = Path("material")
    out = timed("prepare", ["prepare", "--genome", rel / "genome.fa", "--samples", rel / "samples.tsv",
                            "--expression", rel / "expression.tsv", "--stride", args.stride, "--assembly", "GRCh37",
                            "--out", "real.h5"], work, report)
    report["prepare"]["summary"] = out.strip().splitlines()[-1]
    out = timed("sweep", ["sweep", "--data", "real.h5", "--arch", "basset", "--folds", "2", "--smoke-test"], work,
                report)
    report["stages"] = stage_times(work)
    report["validation"] = validation_positives(work)
    summaries = list((work / "mlartifacts").rglob("summary.csv"))
    report["test"] = summaries[0].read_text() if summaries else "no summary.csv found"
    save(work, report)
    sweep_run = re.findall(r"chromtune predict --model (\S+) --expression TPM\.tsv", out)[-1]

    start = 10_000_000
    end = start + int(args.predict_mb * 1e6)
    (work / "region.bed").write_text(f"chrX\t{start}\t{end}\n")
    out = timed("predict", ["predict", "--model", sweep_run, "--expression", rel / "new_expression.tsv",
                            "--regions", "region.bed", "--out", "preds.h5"], work, report)
    own = re.findall(r"([\d.,]+) bins/s", out)  # predict's own rate: scoring and writing, without start-up
    report["predict"]["own_bins_per_second"] = float(own[-1].replace(",", "")) if own else None
    import h5py

    with h5py.File(work / "preds.h5", "r") as f:
        n_bins = f["probabilities"].shape[0]
    rate = n_bins / report["predict"]["seconds"]
    report["predict"].update(bins=int(n_bins), bins_per_second=round(rate, 1),
                             hg38_stride50_hours=round(HG38_BINS_STRIDE_50 / rate / 3600, 1))
    save(work, report)
    print(json.dumps({k: v for k, v in report.items() if k != "case"}, indent=1))


if __name__ == "__main__":
    main()
