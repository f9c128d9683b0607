"""The comparison's statistics against scipy, baycomp and published values (Demsar 2006; Holm 1979)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from baycomp import CorrelatedTTest
from scipy import stats

from chromtune.compare.statistics import (bayes_correlated_t, compare_pairs, corrected_t, friedman_nemenyi, holm,
                                          min_wilcoxon_p, paired_wilcoxon)
from chromtune.compare.figures import cliques

A = np.array([0.60, 0.66, 0.58, 0.70, 0.62])
B = np.array([0.55, 0.60, 0.59, 0.62, 0.575])


# ---------------------------------------------------------------------------------------------------
# Holm

def test_holm_on_known_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan():
    got = holm([0.5, np.nan, 0.3])
    assert got[0] == pytest.approx(0.6) and np.isnan(got[1]) and got[2] == pytest.approx(0.6)
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]).shape == (0,)


# ---------------------------------------------------------------------------------------------------
# Nadeau-Bengio corrected t and the Bayesian correlated t

def test_corrected_t_without_correction_is_the_paired_t_test():
    got = corrected_t(A, B, 0.0)
    want = stats.ttest_rel(A, B)
    assert got["t"] == pytest.approx(want.statistic) and got["p"] == pytest.approx(want.pvalue)
    assert got["df"] == 4


def test_corrected_t_inflates_the_variance_by_one_plus_k_times_the_ratio():
    plain, ratio = stats.ttest_rel(A, B).statistic, 6 / 21
    got = corrected_t(A, B, ratio)
    assert got["t"] == pytest.approx(plain / np.sqrt(1 + len(A) * ratio))
    assert got["p"] == pytest.approx(2 * stats.t.sf(abs(got["t"]), 4))
    assert got["p"] > stats.ttest_rel(A, B).pvalue


@pytest.mark.parametrize("x, y, rope", [(A, B, 0.01), (B, A, 0.01), (A, B, 0.05), (A, A + 0.004, 0.01),
                                        (np.array([0.8, 0.79, 0.83, 0.81, 0.82]),
                                         np.array([0.78, 0.8, 0.8, 0.82, 0.79]), 0.01)])
def test_bayesian_correlated_t_matches_baycomp(x, y, rope):
    """baycomp's CorrelatedTTest assumes K-fold (test/train = 1/(K-1)); its (left, rope, right) are
    P(x better), P(equivalent), P(y better)."""
    want = CorrelatedTTest.probs(x, y, rope=rope, runs=1)
    got = bayes_correlated_t(x, y, 1 / (len(x) - 1), rope)
    assert got == pytest.approx(tuple(float(v) for v in want), abs=1e-9)


def test_bayesian_correlated_t_known_case():
    """Differences with mean 0.05 and sd 0.02 over 5 folds, ratio 1/4: the posterior is Student t(4)
    at 0.05 with scale 0.02 * sqrt(1/5 + 1/4); P(better) = P(T4 > (0.01 - 0.05) / scale)."""
    d = np.array([0.05 - 0.02 * np.sqrt(2), 0.05, 0.05 + 0.02 * np.sqrt(2), 0.05, 0.05])  # sd exactly 0.02
    assert d.std(ddof=1) == pytest.approx(0.02)
    scale = 0.02 * np.sqrt(0.45)
    p_a, p_eq, p_b = bayes_correlated_t(d, np.zeros(5), 0.25, 0.01)
    assert p_a == pytest.approx(stats.t.sf(-0.04 / scale, 4))
    assert p_b == pytest.approx(stats.t.cdf(-0.06 / scale, 4))
    assert p_a + p_eq + p_b == pytest.approx(1)
    assert p_a > 0.95


def test_identical_fold_values_leave_no_doubt_and_no_t():
    assert bayes_correlated_t(A, A, 0.25, 0.01) == (0.0, 1.0, 0.0)
    assert np.isnan(corrected_t(A, A, 0.25)["p"])


# ---------------------------------------------------------------------------------------------------
# Wilcoxon over cell types

@pytest.mark.parametrize("n", [5, 10, 20, 30])
def test_cell_type_wilcoxon_is_scipys_exact_two_sided(n):
    rng = np.random.default_rng(n)
    a, b = rng.random(n), rng.random(n)
    got = paired_wilcoxon(a, b)
    want = stats.wilcoxon(a, b, method="exact")
    assert got["method"] == "exact" and got["p"] == pytest.approx(want.pvalue)


def test_minimum_p_of_the_designs():
    assert min_wilcoxon_p(5, "greater") == pytest.approx(1 / 32)
    assert min_wilcoxon_p(5) == pytest.approx(1 / 16)
    assert min_wilcoxon_p(30) == pytest.approx(2 / 2 ** 30)
    assert paired_wilcoxon(np.arange(10) + 1.0, np.zeros(10))["p"] == pytest.approx(min_wilcoxon_p(10))


# ---------------------------------------------------------------------------------------------------
# Friedman + Nemenyi

def test_nemenyi_critical_values_are_demsars():
    """Demsar (2006) Table 5(a), q_0.05 for k = 2..10, and his worked example: k = 4, N = 14, CD = 1.25."""
    published = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}
    rng = np.random.default_rng(0)
    for k, q in published.items():
        if k < 3:
            continue
        got = friedman_nemenyi(pd.DataFrame(rng.random((14, k))))
        assert got["cd"] == pytest.approx(q * np.sqrt(k * (k + 1) / (6 * 14)), abs=2e-3)
    assert friedman_nemenyi(pd.DataFrame(rng.random((14, 4))))["cd"] == pytest.approx(1.25, abs=5e-3)


def test_friedman_matches_scipy_and_the_rank_formula():
    rng = np.random.default_rng(3)
    values = pd.DataFrame(rng.random((25, 4)) + [0.0, 0.2, 0.4, 0.9], columns=list("abcd"))
    got = friedman_nemenyi(values)
    want = stats.friedmanchisquare(*(values[c] for c in values))
    assert got["chi2"] == pytest.approx(want.statistic) and got["p"] == pytest.approx(want.pvalue)
    n, k, r = 25, 4, got["mean_ranks"].to_numpy()
    assert got["chi2"] == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(r ** 2) - k * (k + 1) ** 2 / 4))  # no ties
    assert got["mean_ranks"].sum() == pytest.approx(k * (k + 1) / 2)
    assert got["mean_ranks"].idxmin() == "d"  # highest values rank first


def test_nemenyi_p_is_below_alpha_exactly_beyond_the_critical_difference():
    rng = np.random.default_rng(5)
    values = pd.DataFrame(rng.random((20, 5)) + np.linspace(0, 0.6, 5), columns=list("abcde"))
    got = friedman_nemenyi(values)
    ranks, p = got["mean_ranks"], got["pairwise_p"]
    for i in ranks.index:
        for j in ranks.index:
            if i != j:
                assert (p.loc[i, j] < 0.05) == (abs(ranks[i] - ranks[j]) > got["cd"])
    assert np.allclose(p.to_numpy(), p.to_numpy().T)


def test_friedman_needs_three_methods():
    with pytest.raises(ValueError, match=">= 3 methods"):
        friedman_nemenyi(pd.DataFrame(np.random.default_rng(0).random((10, 2))))


def test_cliques_join_methods_within_the_critical_difference():
    ranks = pd.Series({"a": 1.0, "b": 1.5, "c": 2.4, "d": 3.6, "e": 3.8})
    assert cliques(ranks, 1.0) == [["a", "b"], ["b", "c"], ["d", "e"]]
    assert cliques(ranks, 5.0) == [["a", "b", "c", "d", "e"]]
    assert cliques(ranks, 0.1) == []


# ---------------------------------------------------------------------------------------------------
# The pairs

def _frames(a_folds, b_folds, a_cells, b_cells):
    folds = [f"fold {k}" for k in range(len(a_folds))]
    index = pd.MultiIndex.from_tuples([("auprc", "A"), ("auprc", "B")], names=["metric", "row"])
    table = pd.DataFrame([a_folds, b_folds], index=index, columns=folds)
    cells = pd.DataFrame([{"row": row, "fold": i % len(folds), "cell_type": f"c{i}", "metric": "auprc", "value": v}
                          for row, values in (("A", a_cells), ("B", b_cells)) for i, v in enumerate(values)])
    return table, cells


def test_compare_pairs_verdicts_follow_the_primary_test():
    rng = np.random.default_rng(1)
    base = rng.random(30) * 0.5
    table, cells = _frames(A, B, base + 0.05 + rng.random(30) * 0.01, base)
    better = compare_pairs(table, cells, [("A", "B"), ("B", "A")], "auprc", 0.25)
    assert list(better["verdict"]) == ["A better", "A better"]
    assert better["cells_p"].iloc[0] == pytest.approx(min_wilcoxon_p(30))
    assert list(better["cells_p_holm"]) == pytest.approx(list(2 * better["cells_p"]))
    assert better["p_a_better"].iloc[0] == pytest.approx(better["p_b_better"].iloc[1])
    table, cells = _frames(A, B, base + rng.normal(0, 0.01, 30), base)
    assert compare_pairs(table, cells, [("A", "B")], "auprc", 0.25)["verdict"].iloc[0] == "no difference shown"


def test_compare_pairs_without_cell_values_says_so():
    table, _ = _frames(A, B, [], [])
    empty = pd.DataFrame(columns=["row", "fold", "cell_type", "metric", "value"])
    got = compare_pairs(table, empty, [("A", "B")], "auprc", 0.25).iloc[0]
    assert got["verdict"] == "no test" and got["n_cells"] == 0 and "no per-cell-type values" in got["note"]
    assert np.isfinite(got["nb_p"])
