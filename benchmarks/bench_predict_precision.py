"""bf16 against float32 scoring with trained models: a finished sweep's selected stage-2 models scored
on their folds' test cell types in both precisions.

For every fold of the sweep stored in ``--sweep`` (its Tune/Train storage folder, holding
``foldK-stage2.json`` and the selected ``best.pt``): test AUPRC of the model in fp32 and under bf16
autocast (the test evaluation the sweep runs), the max and mean |p bf16 - p fp32| over every test
pair (``chromtune predict``'s fast path) and the CPU seconds of each. Needs a CPU with native bf16.

    python benchmarks/bench_predict_precision.py --sweep ray_results/demo-v2-seed0-resnet-tune-mean-k5-s0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from chromtune.models.checkpoint import load_model
from chromtune.predict.scoring import predict_accessibility
from chromtune.train.config import TrainConfig
from chromtune.train.evaluate import test_bins, test_evaluation
from chromtune.train.precision import cpu_has_native_bf16
from chromtune.train.task import FoldTask


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", required=True, type=Path, help="a finished sweep's storage folder")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if not cpu_has_native_bf16():
        print("this CPU has no native bf16 (AVX512-BF16 or AMX-BF16)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    cpu = torch.device("cpu")
    print(f"command: python benchmarks/bench_predict_precision.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| fold | test AUPRC fp32 | bf16 | difference | max / mean abs(p bf16 - p fp32) | pairs "
          "| CPU s fp32 / bf16 |")
    print("|---|---:|---:|---:|---|---:|---|")
    for choice_file in sorted(args.sweep.glob("fold*-stage2.json")):
        choice = json.loads(choice_file.read_text())
        cfg = TrainConfig.from_dict(choice["config"])
        model, _ = load_model(args.sweep / choice["checkpoint"] / "best.pt")
        task = FoldTask.from_config(cfg)
        auprc = {precision: test_evaluation(model, task, replace(cfg, precision=precision), cpu)
                 ["metrics"]["model"]["auprc"] for precision in ("fp32", "bf16")}
        bins, _ = test_bins(task, cfg)
        expression = task.dataset.expression[np.asarray(task.fold.test)]
        probabilities, seconds = {}, {}
        for precision in ("fp32", "bf16"):
            start = time.process_time()
            probabilities[precision] = predict_accessibility(model, task.dataset, expression, bins, task.mean_access,
                                                             bf16=precision == "bf16")
            seconds[precision] = time.process_time() - start
        delta = np.abs(probabilities["bf16"] - probabilities["fp32"])
        print(f"| {cfg.fold} | {auprc['fp32']:.4f} | {auprc['bf16']:.4f} | {auprc['bf16'] - auprc['fp32']:+.4f} | "
              f"{delta.max():.1e} / {delta.mean():.1e} | {delta.size:,} | "
              f"{seconds['fp32']:.1f} / {seconds['bf16']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
