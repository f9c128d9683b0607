"""chromtune.compare against a real sqlite MLflow store written here, shaped as the sweep writes it:
sweep runs and FINISHED fold runs with their tags, test metrics and artifacts (metrics.json,
split.tsv, pr_curves.npz) — known fold values, so the table, tests and figures are checkable."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from scipy import stats

from chromtune import compare
from chromtune.cli.compare import main as compare_main
from chromtune.compare import paired_wilcoxon, run_compare
from chromtune.errors import UserError, run_cli

EXPERIMENT = "chromtune-toy"
CELLS = [f"cell{i}" for i in range(15)]
K = 5
# Test AUPRC per fold; the differences of every pair tested by default have distinct sizes (no ties).
MEAN = [0.50, 0.52, 0.47, 0.55, 0.515]
WEIGHTED = [0.51, 0.535, 0.46, 0.57, 0.52]
RESNET = [0.60, 0.66, 0.58, 0.70, 0.62]
BASSET = [0.55, 0.60, 0.59, 0.62, 0.575]
OFFSETS = {"auprc": 0.0, "auroc": 0.28, "auprc_mean_per_cell": -0.02, "auroc_mean_per_cell": 0.26,
           "auprc_specific": -0.2}
NAMES = ("model", "mean_baseline", "weighted_mean_baseline")


def split_of(fold: int, seed: int = 0) -> dict:
    """Three disjoint test cell types per fold; the seed permutes the cell types (another split)."""
    order = list(np.random.default_rng(seed).permutation(CELLS)) if seed else CELLS
    test = order[3 * fold:3 * fold + 3]
    valid = order[(3 * fold + 3) % 15:(3 * fold + 3) % 15 + 3]
    return {"train": [c for c in order if c not in test + valid], "valid": valid, "test": test}


def per_cell(fold: int, name: str, model: list[float], baselines=(MEAN, WEIGHTED)) -> list[float]:
    """Per-test-cell-type AUPRC of the three test cell types of a fold: the fold value, spread."""
    base = dict(zip(NAMES, (model, *baselines)))[name][fold]
    return [round(base + 0.013 * (i - 1) + 0.004 * fold * (name == "model"), 6) for i in range(3)]


def binned(fold: int, name: str) -> list[dict]:
    offset = {"model": 0.2, "mean_baseline": 0.0, "weighted_mean_baseline": 0.05}[name]
    return [{"lo": k / 10, "hi": (k + 1) / 10, "n_pairs": 100 + k, "positive_rate": k / 10,
             "auprc": round(0.3 + offset + 0.01 * fold + 0.02 * k, 6),
             "minority": "accessible" if k < 5 else "inaccessible"} for k in range(10)]


class Store:
    """A sqlite MLflow store in tmp_path holding sweeps as chromtune.sweep/tracking write them."""

    def __init__(self, root, template):
        self.root = root
        shutil.copy(template, root / "mlflow.db")
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())

    def sweep(self, arch: str, model: list[float], paradigm: str = "tune", mean: bool = True, seed: int = 0,
              finished: tuple[int, ...] = tuple(range(K)), smoke: bool = False, baselines=(MEAN, WEIGHTED),
              artifacts: bool = True, precision: str = "fp32", pairs_per_bin: int = 1) -> str:
        key = (f"toy-{arch}-{paradigm}-{'mean' if mean else 'nomean'}-k{K}-s{seed}"
               + (f"-ppb{pairs_per_bin}" if pairs_per_bin > 1 else "")
               + ("-bf16" if precision == "bf16" else "") + ("-smoke" if smoke else ""))
        tags = {"chromtune.key": key, "chromtune.sweep": key, "chromtune.level": "sweep", "arch": arch,
                "paradigm": paradigm, "mean": str(mean)}
        sweep = self.client.create_run(self.exp, run_name=f"sweep {key}", tags=tags).info.run_id
        for name, value in {"folds": K, "seed": seed, "smoke_test": smoke, "data": "/x/toy.h5",
                            "mean_feature": "reference", "precision": precision, "pairs_per_bin": pairs_per_bin}.items():
            self.client.log_param(sweep, name, str(value))
        auprc = dict(zip(NAMES, (model, *baselines)))
        for fold in range(K):
            run = self.client.create_run(self.exp, run_name=f"fold {fold}", tags={
                "chromtune.key": f"{key}/fold{fold}", "chromtune.sweep": key, "chromtune.level": "fold",
                "mlflow.parentRunId": sweep, "arch": arch, "fold": str(fold), "stage": "2", "paradigm": paradigm,
                "mean": str(mean)}).info.run_id
            if fold not in finished:
                continue
            self.client.log_batch(run, metrics=[Metric(f"test_{n}_{m}", auprc[n][fold] + off, 0, 0)
                                                for n in NAMES for m, off in OFFSETS.items()])
            if artifacts:
                self.artifacts(run, fold, seed, model, baselines)
            self.client.set_terminated(run, "FINISHED")
        self.client.set_terminated(sweep, "FINISHED")
        return key

    def artifacts(self, run: str, fold: int, seed: int, model: list[float], baselines) -> None:
        folder = self.root / "out" / run
        folder.mkdir(parents=True)
        split = split_of(fold, seed)
        test = {n: {"auprc": 0.5, "binned": binned(fold, n),
                    "per_cell": {"auprc": per_cell(fold, n, model, baselines), "auroc": [0.9, 0.91, 0.92]}}
                for n in NAMES}
        (folder / "metrics.json").write_text(json.dumps({"split": split, "test": test}))
        (folder / "split.tsv").write_text("cell_type\tindex\tgroup\n" + "".join(
            f"{c}\t{CELLS.index(c)}\t{g}\n" for g in split for c in split[g]))
        recall = np.linspace(1, 0, 20)
        np.savez_compressed(folder / "pr_curves.npz", **{
            f"{n}_{what}": values for n in NAMES
            for what, values in (("recall", recall), ("precision", 0.3 + 0.7 * (1 - recall) ** 2))})
        for name in ("metrics.json", "split.tsv", "pr_curves.npz"):
            self.client.log_artifact(run, str(folder / name))


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """An empty, migrated MLflow sqlite store (creating one costs seconds; copying it, nothing)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, template):
    return Store(tmp_path, template)


@pytest.fixture(scope="module")
def compared(tmp_path_factory, template):
    """Two full sweeps (resnet, basset) and one unfinished (factorized) compared with the defaults."""
    root = tmp_path_factory.mktemp("compare")
    s = Store(root, template)
    keys = [s.sweep("resnet", RESNET), s.sweep("basset", BASSET),
            s.sweep("factorized", RESNET, finished=(0, 1))]
    result = run_compare(s.uri, EXPERIMENT, root / "report")
    return s, keys, result


def _stats(values):
    return float(np.mean(values)), float(np.std(values, ddof=1))


# ---------------------------------------------------------------------------------------------------
# Wilcoxon

@pytest.mark.parametrize("x, y", [
    (RESNET, BASSET),
    (BASSET, RESNET),
    (RESNET, MEAN),
    ([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.05], [0.2, 0.1, 0.3, 0.6, 0.27, 0.5, 0.11]),
])
@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_exact_p_equals_scipy(x, y, alternative):
    got = paired_wilcoxon(x, y, alternative)
    want = stats.wilcoxon(x, y, alternative=alternative, method="exact")
    assert got["method"] == "exact"
    assert got["n"] == len(x)
    assert got["p"] == pytest.approx(want.pvalue, abs=1e-12)
    assert got["statistic"] == pytest.approx(want.statistic)


def test_five_folds_all_better_give_one_over_32_one_sided_and_one_over_16_two_sided():
    got = paired_wilcoxon(RESNET, MEAN, "greater")
    assert got["p"] == pytest.approx(1 / 32)
    assert got["statistic"] == 15
    assert "impossible" not in got["note"]
    two = paired_wilcoxon(RESNET, MEAN)
    assert two["p"] == pytest.approx(1 / 16) and "p < 0.05 impossible with n = 5" in two["note"]


def test_four_pairs_say_p_below_005_impossible():
    got = paired_wilcoxon(RESNET[:4], MEAN[:4], "greater")
    assert got["p"] == pytest.approx(1 / 16)
    assert "p < 0.05 impossible with n = 4" in got["note"]


def test_ties_and_zeros_are_reported_and_match_scipy():
    x, y = [0.5, 0.6, 0.7, 0.8, 0.9, 0.4], [0.4, 0.5, 0.7, 0.6, 0.95, 0.3]  # d: .1 .1 0 .2 -.05 .1
    d = np.asarray(x) - np.asarray(y)
    got = paired_wilcoxon(x, y)
    want = stats.wilcoxon(d, alternative="two-sided", method=stats.PermutationMethod())
    assert got["method"].startswith("exact permutation")
    assert got["p"] == pytest.approx(want.pvalue)
    assert "1 zero difference(s) dropped" in got["note"] and "tied" in got["note"]


def test_many_tied_pairs_use_the_normal_approximation():
    rng = np.random.default_rng(1)
    x = rng.random(20).round(1)
    y = rng.random(20).round(1)
    got = paired_wilcoxon(x, y)
    assert got["method"] == "normal approximation"
    assert got["p"] == pytest.approx(stats.wilcoxon(x - y, method="asymptotic").pvalue)


@pytest.mark.parametrize("x, y", [([0.7], [0.5]), ([0.5, 0.6], [0.5, 0.6]), ([0.5, 0.6], [0.5, 0.4])])
def test_fewer_than_two_differences_skip_the_test(x, y):
    got = paired_wilcoxon(x, y)
    assert np.isnan(got["p"]) and got["method"] == "none"
    assert "no test" in got["note"]


# ---------------------------------------------------------------------------------------------------
# The comparison from a store

def test_table_has_the_fold_values_mean_and_sd(compared):
    _, _, result = compared
    table = result["table"]
    rows = ["mean baseline", "RNA-weighted mean baseline", "basset+mean (tune)", "resnet+mean (tune)"]
    assert list(table.columns) == [f"fold {f}" for f in range(K)] + ["mean", "sd"]
    assert list(table.index) == [(m, r) for m in compare.METRICS for r in rows]
    for row, values in zip(rows, (MEAN, WEIGHTED, BASSET, RESNET)):
        for metric, offset in OFFSETS.items():
            shifted = np.asarray(values) + offset
            np.testing.assert_allclose(table.loc[(metric, row)].iloc[:K], shifted)
            assert (table.loc[(metric, row), "mean"], table.loc[(metric, row), "sd"]) == pytest.approx(_stats(shifted))
    assert result["folds"] == list(range(K))


def test_unfinished_sweep_is_left_out_and_named(compared):
    _, keys, result = compared
    assert result["sweeps"] == [keys[1], keys[0]]  # sorted by architecture
    assert len(result["left_out"]) == 1 and result["left_out"][0].startswith(keys[2])
    assert "2 of 5 folds" in result["left_out"][0]


def _cells(values: list[float], name: str, folds=range(K)) -> np.ndarray:
    return np.concatenate([per_cell(f, name, values) for f in folds])


def _holm(p: list[float]) -> list[float]:
    """Holm's adjustment written out step by step (the check on chromtune's)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_default_tests_are_the_expected_pairs_with_scipy_p(compared):
    _, _, result = compared
    tests = result["tests"]
    resnet, basset = "resnet+mean (tune)", "basset+mean (tune)"
    expected = {(basset, "mean baseline"): (BASSET, "mean_baseline"),
                (basset, "RNA-weighted mean baseline"): (BASSET, "weighted_mean_baseline"),
                (resnet, "mean baseline"): (RESNET, "mean_baseline"),
                (resnet, "RNA-weighted mean baseline"): (RESNET, "weighted_mean_baseline"),
                (basset, resnet): (BASSET, RESNET)}
    assert sorted(zip(tests["a"], tests["b"])) == sorted(expected)
    folds_of = {"mean_baseline": MEAN, "weighted_mean_baseline": WEIGHTED}
    ratio = 3 / 9  # 3 test and 9 training cell types per fold
    for test in tests.itertuples():
        model, other = expected[(test.a, test.b)]
        ca = _cells(model, "model")
        cb = _cells(RESNET, "model") if other is RESNET else _cells(model, other)
        want = stats.wilcoxon(ca, cb, method="exact" if test.cells_method == "exact" else "asymptotic")
        assert test.n_cells == 3 * K and test.cells_p == pytest.approx(want.pvalue)
        assert test.cells_statistic == pytest.approx(want.statistic)
        x, y = np.asarray(model), np.asarray(RESNET if other is RESNET else folds_of[other])
        d = x - y
        t_nb = d.mean() / np.sqrt(d.var(ddof=1) * (1 / K + ratio))
        assert test.nb_t == pytest.approx(t_nb) and test.nb_p == pytest.approx(2 * stats.t.sf(abs(t_nb), K - 1))
        assert test.folds_wilcoxon_p == pytest.approx(stats.wilcoxon(x, y).pvalue)
        assert test.p_a_better + test.p_equivalent + test.p_b_better == pytest.approx(1)
    assert tests["cells_p_holm"].to_list() == pytest.approx(_holm(tests["cells_p"].to_list()))
    assert tests["nb_p_holm"].to_list() == pytest.approx(_holm(tests["nb_p"].to_list()))
    verdicts = dict(zip(zip(tests["a"], tests["b"]), tests["verdict"]))
    assert verdicts[(resnet, "mean baseline")] == f"{resnet} better"  # 15 of 15 cell types, p ~ 6e-5
    assert verdicts[(basset, resnet)] == f"{resnet} better"


def test_friedman_over_cell_types_ranks_every_method(compared):
    _, _, result = compared
    friedman, cells = result["friedman"], result["cells"]
    rows = ["mean baseline", "RNA-weighted mean baseline", "basset+mean (tune)", "resnet+mean (tune)"]
    assert list(cells.columns) == rows and len(cells) == 3 * K
    want = stats.friedmanchisquare(*(cells[r] for r in rows))
    assert (friedman["n"], friedman["k"]) == (3 * K, 4)
    assert friedman["chi2"] == pytest.approx(want.statistic) and friedman["p"] == pytest.approx(want.pvalue)
    assert friedman["mean_ranks"].idxmin() == "resnet+mean (tune)"
    assert friedman["cd"] == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 15)), abs=1e-3)


def test_files_are_written_with_the_right_rows_and_columns(compared):
    s, _, result = compared
    out = s.root / "report"
    figures = {f"{name}.{fmt}" for name in compare.FIGURES for fmt in ("png", "svg")}
    names = {"table.csv", "tests.csv", "per_cell.csv", "binned_auprc.csv", "report.md", *figures}
    assert {p.name for p in result["files"]} == names
    assert {p.name for p in out.iterdir()} == names  # no temporary files left
    for path in result["files"]:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if path.suffix == ".svg":
            assert b"<svg" in path.read_bytes()[:2000]
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == ["metric", "row"] + [f"fold {f}" for f in range(K)] + ["mean", "sd"]
    assert len(table) == 4 * len(compare.METRICS)
    resnet_auprc = table.set_index(["metric", "row"]).loc[("auprc", "resnet+mean (tune)")]
    assert resnet_auprc["mean"] == pytest.approx(np.mean(RESNET))
    tests = pd.read_csv(out / "tests.csv")
    assert len(tests) == 5 and {"cells_p_holm", "nb_p_holm", "p_a_better", "p_equivalent", "p_b_better"} <= set(tests)
    cells = pd.read_csv(out / "per_cell.csv")
    want = {c: v for f in range(K) for c, v in zip(split_of(f)["test"], per_cell(f, "model", RESNET))}
    assert len(cells) == 3 * K
    assert dict(zip(cells["cell_type"], cells["resnet+mean (tune)"])) == pytest.approx(want)
    bins = pd.read_csv(out / "binned_auprc.csv")
    assert len(bins) == 4 * K * 10  # rows x folds x bins
    got = bins[(bins["row"] == "resnet+mean (tune)") & (bins["fold"] == 3)]["auprc"].to_list()
    assert got == pytest.approx([b["auprc"] for b in binned(3, "model")])
    report = (out / "report.md").read_text()
    assert "| resnet+mean (tune) | 0.6000 | 0.6600 | 0.5800 | 0.7000 | 0.6200 |" in report
    assert "resnet+mean (tune) vs RNA-weighted mean baseline" in report
    assert "Primary test: two-sided Wilcoxon signed-rank over test cell types" in report
    assert "n = 15 cell types" in report and "2/2^15 = 6.1e-05" in report
    assert "with 5 folds its smallest two-sided p is 0.0625 (p < 0.05 impossible)" in report
    assert "Holm" in report and "Friedman" in report and "P(equivalent)" in report
    assert all(f"]({name}.png)" in report for name in compare.FIGURES)


def test_comparison_run_is_logged_and_links_the_sweeps(compared):
    s, keys, result = compared
    run = s.client.get_run(result["run_id"])
    sweep_ids = {r.data.tags["chromtune.sweep"]: r.info.run_id for r in
                 s.client.search_runs([s.exp], "tags.`chromtune.level` = 'sweep'")}
    assert run.info.run_name == "comparison" and run.info.status == "FINISHED"
    assert run.data.tags["chromtune.level"] == "comparison"
    assert run.data.tags["chromtune.sweep_runs"] == f"{sweep_ids[keys[1]]},{sweep_ids[keys[0]]}"
    assert sweep_ids[keys[0]] in run.data.tags["mlflow.note.content"]
    assert run.data.params["sweeps"] == f"{keys[1]},{keys[0]}"
    assert {a.path for a in s.client.list_artifacts(result["run_id"])} == {p.name for p in result["files"]}
    assert run.data.metrics["resnet_mean_tune.mean_test_auprc"] == pytest.approx(np.mean(RESNET))
    tests = result["tests"].set_index(["a", "b"])
    pair = ("resnet+mean (tune)", "mean baseline")
    assert run.data.metrics["p_cells_holm.resnet_mean_tune.vs.mean_baseline"] == pytest.approx(
        tests.loc[pair, "cells_p_holm"])
    assert run.data.metrics["prob_a_better.resnet_mean_tune.vs.mean_baseline"] == pytest.approx(
        tests.loc[pair, "p_a_better"])


def test_cli_writes_the_report_and_prints_the_tests(store, tmp_path, capsys):
    store.sweep("resnet", RESNET, smoke=True)
    store.sweep("resnet", BASSET, paradigm="freeze", smoke=True)  # smoke sweeps only: compared
    out = tmp_path / "cmp"
    code = run_cli(compare_main, ["--tracking-uri", store.uri, "--experiment", EXPERIMENT, "--out", str(out),
                                  "--pair", "resnet+mean (freeze)", "resnet+mean (tune)",
                                  "--pair", "resnet+mean (tune)", "resnet+mean (freeze)",  # the same comparison
                                  "--pr-fold", "2", "--rope", "0.05"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "resnet+mean (freeze) vs resnet+mean (tune): resnet+mean (tune) better\n    cell types n=15:" in printed
    verdict = printed.split("\nwrote ")[0]  # the verdict table; the file list and the MLflow line follow
    assert "mean baseline" in verdict and "P(equivalent)" in verdict
    assert max(len(line) for line in verdict.splitlines()) <= 100, verdict
    tests = pd.read_csv(out / "tests.csv")
    assert list(zip(tests["a"], tests["b"])) == [("resnet+mean (freeze)", "resnet+mean (tune)")]
    assert tests["rope"].iloc[0] == 0.05
    assert tests["folds_wilcoxon_p"].iloc[0] == pytest.approx(stats.wilcoxon(BASSET, RESNET).pvalue)
    assert (out / "pr_curves.png").stat().st_size > 0 and (out / "pr_curves.svg").stat().st_size > 0


def test_smoke_sweeps_are_left_out_when_full_ones_exist(store):
    full = store.sweep("resnet", RESNET)
    smoke = store.sweep("basset", BASSET, smoke=True)
    found = compare.find_sweeps(store.client, store.exp)
    assert {k: (s.smoke, s.complete) for k, s in found.items()} == {full: (False, True), smoke: (True, True)}
    chosen, left_out = compare.select_sweeps(found, None, False, EXPERIMENT)
    assert [s.key for s in chosen] == [full]
    assert left_out == [f"{smoke}: smoke test (full sweeps exist)"]
    chosen, _ = compare.select_sweeps(found, [smoke, full], False, EXPERIMENT)  # named: always used
    assert [s.label for s in chosen] == ["basset+mean (tune)", "resnet+mean (tune)"]


def test_sweep_run_without_its_params_is_left_out_or_refused(store):
    full = store.sweep("resnet", RESNET)
    broken = store.client.create_run(store.exp, tags={  # its driver died before logging the params
        "chromtune.sweep": "toy-broken", "chromtune.level": "sweep", "arch": "basset", "paradigm": "tune",
        "mean": "True"}).info.run_id
    found = compare.find_sweeps(store.client, store.exp)
    chosen, left_out = compare.select_sweeps(found, None, False, EXPERIMENT)
    assert [s.key for s in chosen] == [full]
    assert left_out == [f"toy-broken: sweep run {broken} lacks param folds"]
    with pytest.raises(UserError, match="--sweep toy-broken: .* lacks param folds"):
        compare.select_sweeps(found, ["toy-broken"], True, EXPERIMENT)


def test_allow_partial_compares_on_the_common_folds(store, tmp_path):
    store.sweep("resnet", RESNET)
    partial = store.sweep("basset", BASSET, finished=(1, 3, 4))
    result = run_compare(store.uri, EXPERIMENT, tmp_path / "cmp", [partial, store.sweep("factorized", MEAN)],
                         allow_partial=True)
    assert result["folds"] == [1, 3, 4]
    assert list(result["table"].columns) == ["fold 1", "fold 3", "fold 4", "mean", "sd"]
    assert set(result["tests"]["n_cells"]) == {9} and set(result["tests"]["nb_df"]) == {2}


# ---------------------------------------------------------------------------------------------------
# Errors: one line, exit 2, nothing written

def _fails(capsys, argv, out) -> str:
    code = run_cli(compare_main, [*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("chromtune: error: ") and err.count("\n") == 1
    assert not out.exists()
    return err


def test_mismatched_folds_are_one_line_naming_both_sweeps(store, tmp_path, capsys):
    a = store.sweep("resnet", RESNET)
    b = store.sweep("basset", BASSET, seed=7)
    err = _fails(capsys, ["--tracking-uri", store.uri, "--experiment", EXPERIMENT], tmp_path / "cmp")
    assert "fold 0" in err and a in err and b in err and "different cell types" in err


def test_disagreeing_baselines_are_a_mismatch(store, tmp_path, capsys):
    a = store.sweep("resnet", RESNET)
    b = store.sweep("basset", BASSET, baselines=(MEAN[:2] + [0.4] + MEAN[3:], WEIGHTED))
    err = _fails(capsys, ["--tracking-uri", store.uri, "--experiment", EXPERIMENT], tmp_path / "cmp")
    assert "fold 2" in err and a in err and b in err and "mean baseline" in err


def test_unfinished_sweep_named_explicitly_is_an_error(store, tmp_path, capsys):
    key = store.sweep("resnet", RESNET, finished=(0, 1, 2))
    err = _fails(capsys, ["--tracking-uri", store.uri, "--experiment", EXPERIMENT, "--sweep", key], tmp_path / "cmp")
    assert key in err and "3 of 5 folds" in err and "--allow-partial" in err


@pytest.mark.parametrize("case, words", [
    ("unknown sweep", ["--sweep nope", "toy-resnet"]),
    ("no store", ["--tracking-uri", "no such MLflow store"]),
    ("no experiment", ["--experiment elsewhere", EXPERIMENT]),
    ("nothing finished", ["no finished sweep", "0 of 5 folds"]),
    ("same model twice", ["both resnet+mean (tune)"]),
    ("no metrics.json", ["metrics.json"]),
    ("bad pair", ["--pair", "'tabnet'"]),
])
def test_missing_runs_and_bad_flags_are_clear_errors(store, tmp_path, capsys, case, words):
    uri, experiment, extra = store.uri, EXPERIMENT, []
    if case == "nothing finished":
        store.sweep("resnet", RESNET, finished=())
    elif case == "same model twice":  # at one seed (at several seeds: repeats, summarised over the seeds)
        extra = ["--sweep", store.sweep("resnet", RESNET), "--sweep", store.sweep("resnet", BASSET, smoke=True)]
    elif case == "no metrics.json":
        store.sweep("resnet", RESNET, artifacts=False)
    else:
        store.sweep("resnet", RESNET)
    if case == "unknown sweep":
        extra = ["--sweep", "nope"]
    elif case == "no store":
        uri = f"sqlite:///{tmp_path / 'absent.db'}"
    elif case == "no experiment":
        experiment = "elsewhere"
    elif case == "bad pair":
        extra = ["--pair", "tabnet", "resnet+mean (tune)"]
    err = _fails(capsys, ["--tracking-uri", uri, "--experiment", experiment, *extra], tmp_path / "cmp")
    assert all(w in err for w in words), err
    assert not (tmp_path / "absent.db").exists()  # a missing store is never created


def test_a_sweep_whose_mean_held_the_own_label_is_its_own_model(store):
    key = store.sweep("resnet", RESNET)
    assert compare.find_sweeps(store.client, store.exp)[key].label == "resnet+mean (tune)"  # the default, reference
    old = store.client.create_run(store.exp, tags={"chromtune.sweep": "old", "chromtune.level": "sweep",
                                                   "arch": "resnet", "paradigm": "tune", "mean": "True"}).info.run_id
    store.client.log_param(old, "folds", "5")
    store.client.log_param(old, "mean_feature", "loo")  # leave-one-out: a model of its own
    assert compare.find_sweeps(store.client, store.exp)["old"].label == "resnet+mean[loo] (tune)"


def test_default_experiment_follows_the_sweep():
    assert compare.default_experiment("/data/my-cells.h5") == "chromtune-my-cells"
    assert compare.default_experiment(None).startswith("chromtune-demo-v")


def test_sweeps_at_several_seeds_are_summarised_over_seeds(store, tmp_path, capsys):
    """--seeds: one model at seeds 0, 1, 2 is compared at seed 0; seeds.csv gives mean +- sd over the seeds,
    the folds beaten at each, and the Wilcoxon over cell types of the seed-averaged per-cell differences."""
    models = {0: BASSET, 1: RESNET, 2: [0.45, 0.60, 0.44, 0.62, 0.50]}
    keys = [store.sweep("basset", model, seed=seed) for seed, model in models.items()]
    result = run_compare(store.uri, EXPERIMENT, tmp_path / "cmp")
    assert result["sweeps"] == [keys[0]] and len(result["seeds"]) == 1
    row = result["seeds"].iloc[0]
    means = [np.mean(m) for m in models.values()]
    assert row["seeds"] == "0 1 2" and row["model_mean"] == pytest.approx(np.mean(means))
    assert row["model_sd"] == pytest.approx(np.std(means, ddof=1)) and row["mean_baseline_sd"] == pytest.approx(0)
    beaten = [sum(m[f] > MEAN[f] and m[f] > WEIGHTED[f] for f in range(K)) for m in models.values()]
    assert row["folds_beaten"] == " ".join(f"{b}/{K}" for b in beaten) == "5/5 5/5 2/5"
    diffs = {}
    for seed, model in models.items():
        for fold in range(K):
            for cell, m, b in zip(split_of(fold, seed)["test"], per_cell(fold, "model", model),
                                  per_cell(fold, "mean_baseline", model), strict=True):
                diffs.setdefault(cell, []).append(m - b)
    averaged = [np.mean(v) for v in diffs.values()]
    assert len(averaged) == 15 and all(len(v) == 3 for v in diffs.values())
    assert row["vs_mean_baseline_n_cells"] == 15
    assert row["vs_mean_baseline_p"] == pytest.approx(paired_wilcoxon(averaged, np.zeros(15))["p"])
    assert (tmp_path / "cmp" / "seeds.csv").exists() and "## Over seeds" in (tmp_path / "cmp" / "report.md").read_text()
    assert "over seeds 0 1 2" in compare.report.verdict_text(result)


def test_bf16_and_fp32_sweeps_of_one_model_are_compared_as_two_models_each_over_its_seeds(store, tmp_path):
    """issue 22: bf16 becomes the default only after `chromtune compare` of bf16 against fp32 sweeps."""
    bf16_model = [m - 0.01 for m in RESNET]
    fp32 = [store.sweep("resnet", RESNET, seed=seed) for seed in (0, 1)]
    bf16 = [store.sweep("resnet", bf16_model, seed=seed, precision="bf16") for seed in (0, 1)]
    result = run_compare(store.uri, EXPERIMENT, tmp_path / "cmp")
    assert result["sweeps"] == [fp32[0], bf16[0]]
    assert sorted(result["seeds"]["model"]) == ["resnet+mean (tune)", "resnet+mean (tune, bf16)"]
    assert set(result["seeds"]["seeds"]) == {"0 1"}
    tests = result["tests"]
    pair = tests[(tests["a"] == "resnet+mean (tune)") & (tests["b"] == "resnet+mean (tune, bf16)")]
    assert len(pair) == 1
    # and over both seeds, against each other: every cell type 0.01 better in fp32 at each seed
    (row,) = result["seed_pairs"].to_dict("records")
    assert (row["a"], row["b"], row["seeds"]) == ("resnet+mean (tune)", "resnet+mean (tune, bf16)", "0 1")
    assert row["diff"] == pytest.approx(0.01) and row["n_cells"] == 15 and row["n_fold_pairs"] == 2 * K
    assert row["p"] < 1e-3  # 15 differences of one sign (tied in size)
    assert row["p_a_better"] + row["p_equivalent"] + row["p_b_better"] == pytest.approx(1.0)
    assert (tmp_path / "cmp" / "seed_pairs.csv").exists()
    assert "resnet+mean (tune) vs resnet+mean (tune, bf16) over seeds 0 1" in compare.report.verdict_text(result)


def test_sweeps_with_pairs_grouped_by_bin_are_their_own_model(store, tmp_path):
    """issue 22 item 3: the default is chosen by comparing grouped pairs with independent ones over seeds."""
    grouped_model = [m + 0.01 for m in RESNET]
    independent = [store.sweep("resnet", RESNET, seed=seed) for seed in (0, 1)]
    grouped = [store.sweep("resnet", grouped_model, seed=seed, pairs_per_bin=4) for seed in (0, 1)]
    result = run_compare(store.uri, EXPERIMENT, tmp_path / "cmp")
    assert result["sweeps"] == [independent[0], grouped[0]]
    assert sorted(result["seeds"]["model"]) == ["resnet+mean (tune)", "resnet+mean (tune, 4 pairs/bin)"]
    tests = result["tests"]
    assert len(tests[(tests["a"] == "resnet+mean (tune)") & (tests["b"] == "resnet+mean (tune, 4 pairs/bin)")]) == 1
