"""``chromtune compare``: compare finished sweeps from MLflow — tables, paired tests, figures, report.

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
between sweeps, are one-line errors — except one model's sweeps at several seeds (``chromtune
sweep --seeds``): the tables and tests compare it at its first seed, and seeds.csv (with a section
of report.md) gives its test AUPRC as mean +- sd over the seeds, the folds it beats both baselines
on at each, and its test against each baseline over (seed, cell type): each cell type's difference
averaged over the seeds, then the Wilcoxon signed-rank test over cell types (a cell type's repeats
are not independent samples, so they are not counted as n). ``--allow-partial`` compares on the
folds every selected sweep has finished.

Tests (pairs: every model against both baselines and every two models; ``--pair`` replaces them):
- primary: two-sided Wilcoxon signed-rank over the test cell types (per-cell-type values, each
  cell type once, from the fold that held it out), Holm-adjusted across the pairs;
- on the K fold values: Nadeau & Bengio's corrected resampled t-test (Holm-adjusted), the Bayesian
  correlated t-test with a region of practical equivalence (``--rope``, default 0.01) giving
  P(A better), P(equivalent), P(B better), and the paper's fold-level Wilcoxon for reference;
- with three or more methods (baselines included): Friedman over the test cell types, Nemenyi's
  post-hoc test and a critical-difference diagram.

Outputs, in ``--out`` (default ``comparison/<experiment>``), each written atomically, and all
logged as artifacts of a new MLflow run named ``comparison`` (tag ``chromtune.level=comparison``)
in the same experiment, whose tags, params and description link the sweep runs used:

    table.csv                 one row per (metric, model or baseline): fold 0..K-1, mean, sd
    tests.csv                 one row per pair: the tests above (columns: statistics.TEST_COLUMNS)
    per_cell.csv              per-test-cell-type value of every model and baseline (fold, cell type)
    binned_auprc.csv          test AUPRC per fold and per bin of the fraction of accessible training cell types
    seeds.csv                 with sweeps at several seeds: one row per model (see above)
    seed_pairs.csv            with two models at the same seeds: one row per pair, tested over those seeds
    report.md                 the tables, the tests with the primary one named and why, n, the smallest
                              p each design allows, the figures, the sweeps used
    paired_folds.png/.svg     per-fold paired lines across models (paper Fig. 1D)
    bars.png/.svg             mean +- sd test AUPRC / AUROC, bars from 0 (Fig. 1C)
    binned_auprc.png/.svg     AUPRC by fraction of accessible training cell types, mean over folds,
                              with the test pairs per bin (Fig. 1E)
    pr_curves.png/.svg        precision-recall curves of every model and both baselines on one fold
    critical_difference.png/.svg  mean ranks over test cell types, Nemenyi's critical difference

Shape contracts: ``scores`` is long — one row per (row label, fold, metric) with its value; the
table pivots it to (metric, row) x folds; per-cell values are long (row, fold, cell_type, metric,
value) and pivot to (fold, cell type) x row.
"""

import importlib

_EXPORTS = {"FIGURES": "figures", "run_compare": "report",
            "METRICS": "names", "default_experiment": "runs", "find_sweeps": "runs", "select_sweeps": "runs",
            "paired_wilcoxon": "statistics"}


def __getattr__(name: str):
    """The package's public names, imported on first use (``chromtune compare --help`` stays light)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chromtune.compare' has no attribute {name!r}")
    return getattr(importlib.import_module(f"chromtune.compare.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
