"""``python -m chromtune.compare``: compare finished sweeps from MLflow — table, Wilcoxon tests, figures, report.

    python -m chromtune.compare                          # every finished sweep of the demo's experiment
    python -m chromtune.compare --data data.h5           # the experiment of data.h5: chromtune-data
    python -m chromtune.compare --sweep KEY --sweep KEY  # exactly these sweeps
    python -m chromtune.compare --pair "resnet+mean (tune)" "basset+mean (tune)"

Input is MLflow only (the store and experiment a sweep writes; same defaults). A *model* is one
(architecture, paradigm, mean feature) — one sweep — labelled like ``resnet+mean (tune)``; the two
baselines come from the same fold runs. Only FINISHED fold runs count.

Which sweeps (documented choice):
- ``--sweep KEY`` (repeatable): exactly those; each must have all its folds finished
  (``--allow-partial``: at least one).
- default: every sweep run of the experiment whose folds have all finished (``--allow-partial``:
  at least one). Smoke-test sweeps are left out when any full sweep qualifies, so the two are
  never mixed. Sweeps left out are named on stdout and in the report.
Two selected sweeps of one model, or folds whose test cell types (or baseline values) differ
between sweeps, are one-line errors. ``--allow-partial`` compares on the folds every selected
sweep has finished.

Outputs, in ``--out`` (default ``comparison/<experiment>``), each written atomically, and all
logged as artifacts of a new MLflow run named ``comparison`` (tag ``chromtune.level=comparison``)
in the same experiment, whose tags, params and description link the sweep runs used:

    table.csv           one row per (metric, model or baseline): fold 0..K-1, mean, sd
    tests.csv           one-sided Wilcoxon signed-rank tests of the chosen pairs (n, statistic, p, method, note)
    binned_auprc.csv    test AUPRC per fold and per bin of the fraction of accessible training cell types
    report.md           the tables in Markdown, the tests, the figures, the sweeps used
    paired_folds.png    per-fold paired lines across models (paper Fig. 1D)
    bars.png            mean +- sd test AUPRC / AUROC across models and paradigms (Fig. 1C)
    binned_auprc.png    AUPRC by fraction of accessible training cell types, mean over folds (Fig. 1E)
    pr_curves.png       precision-recall curves of every model and both baselines on one fold

Shape contracts: ``scores`` is long — one row per (row label, fold, metric) with its value; the
table pivots it to (metric, row) x folds. Wilcoxon inputs are two equal-length (n_folds,) vectors
paired by fold.
"""

from chromtune.compare.command import build_parser, main
from chromtune.compare.figures import FIGURES
from chromtune.compare.report import run_compare
from chromtune.compare.runs import METRICS, default_experiment, find_sweeps, select_sweeps
from chromtune.compare.statistics import paired_wilcoxon

__all__ = ["FIGURES", "METRICS", "build_parser", "default_experiment", "find_sweeps", "main", "paired_wilcoxon",
           "run_compare", "select_sweeps"]
