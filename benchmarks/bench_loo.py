"""Leave-one-out against the reference's mean feature for stage-2 training pairs, on the demo folds.

For each fold: one stage-1 run, then two stage-2 runs from it that differ only in --mean-feature
(loo / reference): same seed, same batches. Reports each fold's test AUPRC, the mean feature's own
AUPRC on the training pairs (with and without the pair's label), and the comparison's tests between
the two (chromtune.compare.statistics: Wilcoxon over test cell types, corrected and Bayesian t on folds).

    python benchmarks/bench_loo.py --out loo-runs                      # 5 folds, one grid point per stage
    python benchmarks/bench_loo.py --out loo-runs --folds-run 0 1 2    # a subset of the 5 folds
    python benchmarks/bench_loo.py --out loo-runs --from-sweep ray_results/SWEEP_KEY

With --from-sweep, each fold's reference run is the finished sweep's selected stage-2 model (its
hyperparameters chosen on the fold's own validation cell types); the leave-one-out run repeats it with
the same stage-1 checkpoint, hyperparameters and seed, so the two differ only in the mean feature.

Finished runs (metrics.json present) are reused, so an interrupted measurement continues.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from chromtune.compare.statistics import compare_pairs
from chromtune.data.demo import demo_path
from chromtune.train.config import TrainConfig
from chromtune.train.metrics import auprc
from chromtune.train.runner import run_training
from chromtune.train.task import FoldTask

VARIANTS = ("loo", "reference")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data", help="data set (default: the demo)")
    p.add_argument("--arch", default="resnet")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--folds-run", type=int, nargs="+", help="which folds to run (default: all)")
    p.add_argument("--stage1", default="256,0.002,3,15360", help="batch size, lr, epochs, samples per epoch")
    p.add_argument("--stage2", default="256,0.001,3,10240", help="batch size, lr, epochs, samples per epoch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-sweep", help="a finished sweep's storage folder: its selected models are the reference runs")
    return p.parse_args()


def budget(text: str) -> dict:
    batch, lr, epochs, per_epoch = text.split(",")
    return dict(batch_size=int(batch), lr=float(lr), epochs=int(epochs), samples_per_epoch=int(per_epoch))


def train(cfg: TrainConfig, out: Path) -> dict:
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    started = time.time()
    metrics = run_training(cfg, out, workers=0)
    print(f"  {out.name}: {time.time() - started:.0f} s", flush=True)
    return metrics


def feature_auprc(cfg: TrainConfig) -> dict:
    """AUPRC of the mean feature itself as a score of the training pairs: with the own label
    (reference) and leave-one-out."""
    task = FoldTask.from_config(cfg)
    bins, train = task.bins.train, np.asarray(task.fold.train)
    y = task.dataset.labels[np.ix_(bins, train)].astype(np.float64)
    counts = y.sum(1, keepdims=True)
    n = len(train)
    return {"reference": auprc(y, np.broadcast_to(counts / n, y.shape)), "loo": auprc(y, (counts - y) / (n - 1))}


def grid_point_runs(args, fold: int, root: Path) -> dict[str, tuple[TrainConfig, Path]]:
    """Stage 1 at one grid point, then both stage-2 variants from it, at one grid point."""
    common = dict(data=args.data or str(demo_path()), arch=args.arch, width=args.width, folds=args.folds,
                  seed=args.seed, threads=args.threads)
    stage1 = TrainConfig(stage=1, fold=fold, **common, **budget(args.stage1))
    train(stage1, root / f"fold{fold}" / "s1")
    return {variant: (TrainConfig(stage=2, fold=fold, init=str(root / f"fold{fold}" / "s1"), mean_feature=variant,
                                  evaluate_test=True, **common, **budget(args.stage2)),
                      root / f"fold{fold}" / f"s2-{variant}")
            for variant in VARIANTS}


def sweep_runs(sweep: Path, fold: int, root: Path) -> dict[str, tuple[TrainConfig, Path]]:
    """The sweep's selected stage-2 model (the reference feature) and its leave-one-out twin."""
    selected = json.loads((sweep / f"fold{fold}-stage2.json").read_text())
    reference = TrainConfig.from_dict({**selected["config"], "evaluate_test": True})
    if reference.mean_feature != "reference":
        raise SystemExit(f"--from-sweep {sweep}: its stage 2 used --mean-feature {reference.mean_feature}")
    loo = TrainConfig.from_dict({**selected["config"], "mean_feature": "loo", "evaluate_test": True})
    return {"loo": (loo, root / f"fold{fold}" / "s2-loo"), "reference": (reference, sweep / f"fold{fold}-selected")}


def main() -> None:
    args = parse()
    root = Path(args.out)
    rows, cells, ratios = [], [], []
    folds = args.folds_run if args.folds_run is not None else range(args.folds)
    for fold in folds:
        print(f"fold {fold}", flush=True)
        runs = sweep_runs(Path(args.from_sweep), fold, root) if args.from_sweep else grid_point_runs(args, fold, root)
        features = feature_auprc(runs["loo"][0])
        for variant in VARIANTS:
            cfg, out = runs[variant]
            metrics = train(cfg, out)
            test = metrics["test"]["model"]
            rows.append({"fold": fold, "variant": variant, "test_auprc": test["auprc"], "test_auroc": test["auroc"],
                         "test_auprc_specific": test.get("auprc_specific", float("nan")),
                         "test_auprc_mean_per_cell": test["auprc_mean_per_cell"],
                         "best_valid_auprc": metrics["best_valid_auprc"],
                         "feature_auprc_train_pairs": features[variant],
                         "mean_baseline_auprc": metrics["test"]["mean_baseline"]["auprc"]})
            cells += [{"row": variant, "fold": fold, "cell_type": c, "metric": "auprc", "value": v}
                      for c, v in zip(metrics["split"]["test"], test["per_cell"]["auprc"])]
        ratios.append(len(metrics["split"]["test"]) / len(metrics["split"]["train"]))
    frame = pd.DataFrame(rows)
    print("\n" + frame.pivot(index="fold", columns="variant").round(4).to_string())
    table = frame.pivot(index="variant", columns="fold", values="test_auprc")
    table.columns = [f"fold {f}" for f in table.columns]
    table.index = pd.MultiIndex.from_product([["auprc"], table.index], names=["metric", "row"])
    tests = compare_pairs(table, pd.DataFrame(cells), [("loo", "reference")], "auprc", float(np.mean(ratios)))
    print("\n" + tests.T.to_string())
    frame.to_csv(root / "folds.csv", index=False)
    tests.to_csv(root / "tests.csv", index=False)


if __name__ == "__main__":
    main()
