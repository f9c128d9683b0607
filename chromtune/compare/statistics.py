"""The fold table and the paired tests between models and baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from chromtune.compare.names import ALPHA, BASELINES, METRICS, ROPE
from chromtune.compare.runs import Sweep
from chromtune.errors import UserError

EXACT_MAX_N = 50  # scipy's exact null distribution is used up to here (no ties, no zeros)
PERMUTATION_MAX_N = 13  # with ties or zeros: all 2^n sign flips, still exact and deterministic


def row_order(sweeps: list[Sweep]) -> list[str]:
    """Baselines first, then the models in the order of the sweeps (architecture, paradigm, mean)."""
    return list(BASELINES.values()) + [s.label for s in sweeps]


def summary_table(scores: pd.DataFrame, rows: list[str]) -> pd.DataFrame:
    """(metric, row) x [fold 0, ..., fold K-1, mean, sd]; sd is the sample sd over folds (nan for one fold)."""
    table = scores.pivot(index=["metric", "row"], columns="fold", values="value")
    folds = list(table.columns)
    table.columns = [f"fold {f}" for f in folds]
    values = table.to_numpy(dtype=float)
    table["mean"] = values.mean(axis=1)
    table["sd"] = values.std(axis=1, ddof=1) if len(folds) > 1 else np.nan
    order = pd.MultiIndex.from_product([METRICS, rows], names=["metric", "row"])
    return table.reindex(order)


def paired_wilcoxon(a, b, alternative: str = "two-sided") -> dict:
    """Wilcoxon signed-rank test of ``a`` against ``b`` over pairs (equal-length vectors).

    Exact null distribution when there are no ties and no zero differences (n <= 50); with ties
    or zeros an exhaustive sign-flip permutation (n <= 13, still exact), else the normal
    approximation. Zero differences are dropped (Wilcoxon's convention). Fewer than two non-zero
    differences: no test (p is nan). The note says when p < 0.05 cannot be reached.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    nonzero = d[d != 0]  # exact comparisons, as scipy's ranking makes them
    n, n_nonzero = len(d), len(nonzero)
    ties = n_nonzero - len(np.unique(np.abs(nonzero)))
    notes = []
    if n_nonzero < n:
        notes.append(f"{n - n_nonzero} zero difference(s) dropped")
    if ties:
        notes.append(f"{ties} tied |difference|(s)")
    result = {"n": n, "statistic": np.nan, "p": np.nan, "method": "none"}
    if np.isnan(d).any():
        return {**result, "note": "no test: a value is missing"}
    if n_nonzero < 2:
        notes.append(f"no test: {n_nonzero} non-zero difference(s), at least 2 needed")
        return {**result, "note": "; ".join(notes)}
    if min_wilcoxon_p(n_nonzero, alternative) >= 0.05:
        notes.append(f"p < 0.05 impossible with n = {n_nonzero}")
    if not ties and n_nonzero == n and n <= EXACT_MAX_N:
        method, label = "exact", "exact"
    elif n <= PERMUTATION_MAX_N:
        method, label = stats.PermutationMethod(), "exact permutation (ties/zeros)"
    else:
        method, label = "asymptotic", "normal approximation"
    test = stats.wilcoxon(d, alternative=alternative, method=method)
    return {**result, "statistic": float(test.statistic), "p": float(test.pvalue), "method": label,
            "note": "; ".join(notes)}


def seed_averaged_wilcoxon(values: pd.DataFrame, a: str, b: str) -> dict:
    """``a`` against ``b`` over cell types when the cross-validation was repeated over seeds: ``values``
    holds one row per (seed, cell_type) (index levels of those names) and a column per row compared.
    Each cell type's difference is averaged over the seeds first, then the Wilcoxon signed-rank test
    runs over cell types. The seeds' repeats of a cell type share its labels and test bins, so they
    are not independent samples: counting (seed, cell type) pairs as n would shrink p without new
    evidence; averaging keeps n = cell types and lowers the seed noise of each difference."""
    diff = (values[a] - values[b]).groupby(level="cell_type").mean()
    seeds = values.index.get_level_values("seed").nunique()
    return {**paired_wilcoxon(diff.to_numpy(), np.zeros(len(diff))), "n_seeds": int(seeds),
            "mean_diff": float(diff.mean())}


def min_wilcoxon_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest p an exact signed-rank test on n pairs can give: all differences of one sign."""
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) * 0.5 ** n)


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (nan entries stay nan and are not counted)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else np.array([])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def corrected_t(a, b, test_train_ratio: float) -> dict:
    """Nadeau & Bengio's corrected resampled t-test of fold values ``a`` against ``b`` (two-sided).

    The folds' training sets overlap, so the differences are correlated and the plain paired t
    under-estimates the variance: the variance of the mean is taken as (1/K + n_test/n_train) s^2
    instead of s^2/K, with K - 1 degrees of freedom. ``test_train_ratio`` 0 gives the paired t-test.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    k = len(d)
    if k < 2 or np.isnan(d).any():
        return {"t": np.nan, "df": k - 1, "p": np.nan}
    var = d.var(ddof=1) * (1 / k + test_train_ratio)
    if var == 0:
        return {"t": np.nan, "df": k - 1, "p": np.nan}
    t = d.mean() / np.sqrt(var)
    return {"t": float(t), "df": k - 1, "p": float(2 * stats.t.sf(abs(t), k - 1))}


def bayes_correlated_t(a, b, test_train_ratio: float, rope: float = ROPE) -> tuple[float, float, float]:
    """Corani & Benavoli's Bayesian correlated t-test on fold values: (P(a better), P(equivalent),
    P(b better)), equivalence being |mean difference| <= ``rope``.

    The posterior of the mean difference is Student t with K - 1 degrees of freedom, centred on the
    mean difference, with the Nadeau-Bengio-corrected scale of :func:`corrected_t`
    (``baycomp.CorrelatedTTest`` with ratio 1/(K-1), K-fold's). No spread at all: the mass sits at
    the mean difference.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    k = len(d)
    if k < 2 or np.isnan(d).any():
        return (np.nan, np.nan, np.nan)
    mean, scale = d.mean(), np.sqrt(d.var(ddof=1) * (1 / k + test_train_ratio))
    if scale == 0:
        return (float(mean > rope), float(abs(mean) <= rope), float(mean < -rope))
    posterior = stats.t(k - 1, loc=mean, scale=scale)
    p_b = float(posterior.cdf(-rope))
    p_a = float(posterior.sf(rope))
    return (p_a, max(0.0, 1.0 - p_a - p_b), p_b)


def friedman_nemenyi(values: pd.DataFrame, alpha: float = ALPHA) -> dict:
    """Friedman's test over blocks (rows) of k >= 3 methods (columns; higher is better), with
    Nemenyi's post-hoc test (Demsar 2006): mean ranks (1 = best), the critical difference of mean
    ranks at ``alpha``, and the pairwise Nemenyi p-values. Rows with a missing value are dropped."""
    values = values.dropna()
    n, k = values.shape
    if k < 3 or n < 2:
        raise ValueError(f"Friedman's test needs >= 3 methods and >= 2 blocks; got {k} and {n}")
    ranks = pd.DataFrame(stats.rankdata(-values.to_numpy(float), axis=1), index=values.index, columns=values.columns)
    mean_ranks = ranks.mean()
    friedman = stats.friedmanchisquare(*(values[c].to_numpy(float) for c in values.columns))
    se = np.sqrt(k * (k + 1) / (6 * n))
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    gaps = np.abs(mean_ranks.to_numpy()[:, None] - mean_ranks.to_numpy()[None, :]) / se
    pairwise = pd.DataFrame(np.minimum(1.0, stats.studentized_range.sf(gaps * np.sqrt(2), k, np.inf)),
                            index=values.columns, columns=values.columns)
    return {"n": n, "k": k, "chi2": float(friedman.statistic), "p": float(friedman.pvalue),
            "mean_ranks": mean_ranks, "cd": float(q * se), "alpha": alpha, "pairwise_p": pairwise}


def default_pairs(rows: list[str]) -> list[tuple[str, str]]:
    """Every model against both baselines, and every two models (in row order)."""
    models = [r for r in rows if r not in BASELINES.values()]
    pairs = [(m, b) for m in models for b in BASELINES.values()]
    return pairs + [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]


def resolve_pairs(pairs: list[list[str]], sweeps: list[Sweep]) -> list[tuple[str, str]]:
    """``--pair`` names (a row label or a sweep key, case-insensitive) -> row labels; a pair given
    twice (in either order) is compared once."""
    names = {r.lower(): r for r in row_order(sweeps)} | {s.key.lower(): s.label for s in sweeps}
    resolved = {}
    for a, b in pairs:
        for name in (a, b):
            if name.lower() not in names:
                raise UserError(f"--pair {a!r} {b!r}: {name!r} is none of {', '.join(row_order(sweeps))}")
        if names[a.lower()] == names[b.lower()]:
            raise UserError(f"--pair {a!r} {b!r}: a model cannot be tested against itself")
        pair = (names[a.lower()], names[b.lower()])
        resolved.setdefault(frozenset(pair), pair)
    return list(resolved.values())


def cell_metric(metric: str) -> str:
    """The per-cell-type metric behind a fold metric: AUROC for the AUROCs, AUPRC otherwise."""
    return "auroc" if metric.startswith("auroc") else "auprc"


def cell_matrix(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(fold, cell type) x row of one per-cell-type metric: each test cell type once, from its fold."""
    part = cells[cells["metric"] == cell_metric(metric)]
    return part.groupby(["fold", "cell_type", "row"])["value"].first().unstack("row")


TEST_COLUMNS = ["a", "b", "metric", "mean_a", "mean_b", "n_cells", "cells_mean_diff", "cells_statistic", "cells_p",
                "cells_p_holm", "cells_method", "verdict", "n_folds", "folds_mean_diff", "nb_t", "nb_df", "nb_p",
                "nb_p_holm", "p_a_better", "p_equivalent", "p_b_better", "rope", "folds_wilcoxon_p", "note"]


def compare_pairs(table: pd.DataFrame, cells: pd.DataFrame, pairs: list[tuple[str, str]], metric: str,
                  test_train_ratio: float, rope: float = ROPE) -> pd.DataFrame:
    """One row per pair (see ``TEST_COLUMNS``). Primary: the two-sided Wilcoxon signed-rank test over
    test cell types (per-cell-type values, each cell type once), Holm-adjusted across the pairs; on
    the fold values: Nadeau-Bengio's corrected t (Holm-adjusted too), the Bayesian correlated t with
    ``rope``, and the fold-level Wilcoxon of the paper (two-sided here)."""
    folds = [c for c in table.columns if c.startswith("fold ")]
    per_cell = cell_matrix(cells, metric) if len(cells) else pd.DataFrame()
    rows, directions = [], []
    for a, b in pairs:
        x, y = table.loc[(metric, a), folds].to_numpy(float), table.loc[(metric, b), folds].to_numpy(float)
        if a in per_cell and b in per_cell:
            both = per_cell[[a, b]].dropna()
            ca, cb = both[a].to_numpy(float), both[b].to_numpy(float)
        else:
            ca = cb = np.zeros(0)
        cell_test = paired_wilcoxon(ca, cb)
        d = (ca - cb)[ca != cb]
        directions.append(float(np.sum(np.sign(d) * stats.rankdata(np.abs(d)))))  # W+ - W-
        nb = corrected_t(x, y, test_train_ratio)
        p_a, p_eq, p_b = bayes_correlated_t(x, y, test_train_ratio, rope)
        notes = [f"cells: {cell_test['note']}"] if cell_test["note"] else []
        if not len(ca):
            notes.append("no per-cell-type values in the fold runs")
        rows.append({"a": a, "b": b, "metric": metric, "mean_a": x.mean(), "mean_b": y.mean(), "n_cells": len(ca),
                     "cells_mean_diff": float(np.mean(ca - cb)) if len(ca) else np.nan,
                     "cells_statistic": cell_test["statistic"], "cells_p": cell_test["p"],
                     "cells_method": cell_test["method"], "n_folds": len(folds), "folds_mean_diff": float(np.mean(x - y)),
                     "nb_t": nb["t"], "nb_df": nb["df"], "nb_p": nb["p"], "p_a_better": p_a, "p_equivalent": p_eq,
                     "p_b_better": p_b, "rope": rope, "folds_wilcoxon_p": paired_wilcoxon(x, y)["p"],
                     "note": "; ".join(notes)})
    tests = pd.DataFrame(rows, columns=[c for c in TEST_COLUMNS if c not in ("cells_p_holm", "nb_p_holm", "verdict")])
    tests.insert(tests.columns.get_loc("cells_p") + 1, "cells_p_holm", holm(tests["cells_p"]))
    tests.insert(tests.columns.get_loc("nb_p") + 1, "nb_p_holm", holm(tests["nb_p"]))
    tests.insert(tests.columns.get_loc("cells_method") + 1, "verdict",
                 [verdict(a, b, p, w) for a, b, p, w in zip(tests["a"], tests["b"], tests["cells_p_holm"], directions)])
    return tests[TEST_COLUMNS]


def verdict(a: str, b: str, p_holm: float, direction: float) -> str:
    """The primary test's conclusion at ALPHA after Holm's adjustment; ``direction`` is W+ - W-."""
    if not np.isfinite(p_holm):
        return "no test"
    if p_holm >= ALPHA:
        return "no difference shown"
    return f"{a if direction > 0 else b} better"
