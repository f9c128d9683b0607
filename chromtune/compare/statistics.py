"""The fold table and the paired tests between models and baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from chromtune.compare.runs import BASELINES, METRICS, Sweep
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


def paired_wilcoxon(a, b) -> dict:
    """One-sided Wilcoxon signed-rank test of ``a > b`` over pairs (equal-length vectors, paired by fold).

    Exact null distribution when there are no ties and no zero differences (n <= 50); with ties
    or zeros an exhaustive sign-flip permutation (n <= 13, still exact), else the normal
    approximation. Zero differences are dropped (Wilcoxon's convention). Fewer than two non-zero
    differences: no test (p is nan). The note says when p < 0.05 cannot be reached (1/2^n >= 0.05).
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
    if 0.5 ** n_nonzero >= 0.05:
        notes.append(f"p < 0.05 impossible with n = {n_nonzero}")
    if not ties and n_nonzero == n and n <= EXACT_MAX_N:
        method, label = "exact", "exact"
    elif n <= PERMUTATION_MAX_N:
        method, label = stats.PermutationMethod(), "exact permutation (ties/zeros)"
    else:
        method, label = "asymptotic", "normal approximation"
    test = stats.wilcoxon(d, alternative="greater", method=method)
    return {**result, "statistic": float(test.statistic), "p": float(test.pvalue), "method": label,
            "note": "; ".join(notes)}


def default_pairs(rows: list[str], means: pd.Series) -> list[tuple[str, str]]:
    """Every model against both baselines, and every model against the best other model (by mean)."""
    models = [r for r in rows if r not in BASELINES.values()]
    pairs = [(m, b) for m in models for b in BASELINES.values()]
    for model in models:
        others = [m for m in models if m != model]
        if others:
            pairs.append((model, max(others, key=lambda m: means[m])))
    return pairs


def resolve_pairs(pairs: list[list[str]], sweeps: list[Sweep]) -> list[tuple[str, str]]:
    """``--pair`` names (a row label or a sweep key, case-insensitive) -> row labels."""
    names = {r.lower(): r for r in row_order(sweeps)} | {s.key.lower(): s.label for s in sweeps}
    resolved = []
    for a, b in pairs:
        for name in (a, b):
            if name.lower() not in names:
                raise UserError(f"--pair {a!r} {b!r}: {name!r} is none of {', '.join(row_order(sweeps))}")
        if names[a.lower()] == names[b.lower()]:
            raise UserError(f"--pair {a!r} {b!r}: a model cannot be tested against itself")
        resolved.append((names[a.lower()], names[b.lower()]))
    return resolved


def wilcoxon_tests(table: pd.DataFrame, pairs: list[tuple[str, str]], metric: str) -> pd.DataFrame:
    """One row per pair: the hypothesis, n, the means, statistic, p, method and note."""
    folds = [c for c in table.columns if c.startswith("fold ")]
    rows = []
    for a, b in pairs:
        x, y = table.loc[(metric, a), folds].to_numpy(float), table.loc[(metric, b), folds].to_numpy(float)
        rows.append({"a": a, "b": b, "hypothesis": f"{a} > {b}", "metric": metric,
                     "mean_a": x.mean(), "mean_b": y.mean(), **paired_wilcoxon(x, y)})
    return pd.DataFrame(rows, columns=["a", "b", "hypothesis", "metric", "mean_a", "mean_b", "n", "statistic",
                                       "p", "method", "note"])
