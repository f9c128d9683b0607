"""The sweep's plan from settings (keyword arguments or flags): the sizes it resolves on any data set,
the command that repeats it. Real data set files, no Ray or MLflow."""

import numpy as np
import pytest

from chromtune.cli.sweep import build_parser, settings_from_args
from chromtune.data.dataset import write_dataset
from chromtune.io.files import absolute, is_uri
from chromtune.sweep.plan import plan_sweep
from chromtune.sweep.settings import SweepSettings, command_flags, each_sweep
from chromtune.train import evaluate
from chromtune.train.config import SMOKE_BINS, TrainConfig
from chromtune.train.task import FoldTask
from conftest import random_dataset


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def large_file(tmp_path_factory):
    """100,000 bins x 7 cell types: five times the demo's bins, a quarter of a chromosome-scale set."""
    path = tmp_path_factory.mktemp("large") / "large.h5"
    write_dataset(path, random_dataset(n_chroms=2, chrom_len=5_000_000, n_cells=7, positive_rate=0.02))
    return str(path)


def evaluated(plan) -> list[dict]:
    """Per fold: the bins and pairs that stage 1's and stage 2's validation and the test score."""
    out = []
    assert plan.folds
    for fold in range(plan.n_folds):
        cfg = TrainConfig(**{**plan.base, "fold": fold, "stage": 2, "init": "stage1"})
        task = FoldTask.from_config(cfg)
        stage1 = evaluate.validation_sample(task, TrainConfig(**{**plan.base, "fold": fold}))[0]
        stage2, cells, _ = evaluate.validation_sample(task, cfg)
        test = evaluate.test_bins(task, cfg)[0]
        out.append({"stage1": len(stage1), "stage2": len(stage2), "valid_pairs": len(stage2) * len(cells),
                    "test": len(test), "test_pairs": len(test) * len(task.fold.test), "task": task})
    return out


def test_smoke_test_is_small_on_a_large_data_set(workdir, large_file):
    """Off the demo the smoke test shrinks validation and test to about the demo's 2,000 / 5,000 / 5,000 bins."""
    full = evaluated(plan_sweep(SweepSettings(arch="basset", folds=3, data=large_file)))
    smoke = evaluated(plan_sweep(SweepSettings(arch="basset", folds=3, data=large_file, smoke_test=True)))
    for big, small in zip(full, smoke, strict=True):
        assert big["stage1"] > 9_000 and big["test"] > 90_000  # full size: every held-out and test bin
        assert small["stage1"] == 2_000
        fold = small["task"].fold
        assert SMOKE_BINS <= small["stage2"] <= SMOKE_BINS * max(len(fold.valid), 1) and small["stage2"] < big["stage2"]
        assert 0.9 * SMOKE_BINS <= small["test"] <= SMOKE_BINS * 2 and small["test_pairs"] < big["test_pairs"] / 10
    plan = plan_sweep(SweepSettings(arch="basset", folds=3, data=large_file, smoke_test=True, valid_pairs=1000,
                                    valid_bins=0, width=0.5, eval_every=2))
    assert (plan.base["valid_pairs"], plan.base["valid_bins"], plan.base["width"], plan.base["eval_every"]) == \
        (1000, 0, 0.5, 2)  # explicit settings win over the smoke test's


def test_smoke_test_scores_every_held_out_bin_of_the_demo(workdir):
    """On the demo the smoke test's sizes change nothing: its samples are every held-out bin, as before."""
    folds = evaluated(plan_sweep(SweepSettings(arch="basset", folds=2, smoke_test=True)))
    assert len(folds) == 2
    for fold in folds:
        task = fold["task"]
        assert fold["stage1"] == len(task.bins.valid) and fold["stage2"] == len(task.bins.fit)
        assert fold["test"] == len(task.bins.test) == 5_000


def test_keyword_arguments_and_flags_give_the_same_settings(workdir):
    """A sweep called from Python is a command line: its flags parse back to the same settings."""
    sweeps = each_sweep(["basset", "resnet"], "tune", folds=2, smoke_test=True, valid_bins=0, with_mean=False,
                        width=0.5, storage=workdir / "runs")
    assert [s.arch for s in sweeps] == ["basset", "resnet"] and sweeps[0].storage == str(workdir / "runs")
    flags = command_flags(sweeps)
    assert "--no-mean" in flags and flags[flags.index("--valid-bins") + 1] == "all"
    assert settings_from_args(build_parser().parse_args(flags)) == sweeps
    assert command_flags([SweepSettings()]) == []
    with pytest.raises(TypeError, match="smoke"):
        each_sweep(smoke=True)


def test_paths_are_made_absolute_and_uris_kept(workdir):
    assert is_uri("s3://b/p") and is_uri("file:///x") and not is_uri("runs/x.h5")
    assert absolute("runs/x.h5") == str(workdir / "runs" / "x.h5")
    assert absolute("s3://b/p?endpoint_override=h:1") == "s3://b/p?endpoint_override=h:1"
    assert np.char.startswith(absolute("~/x"), "/")


SMOKE = ["--arch", "basset", "--folds", "2", "--smoke-test"]


def begun_sweep(workdir, *flags):
    """A sweep's plan and its stored settings, as a sweep that began with ``flags`` leaves them."""
    from chromtune.sweep.plan import write_plan

    plan = plan_sweep(settings_from_args(build_parser().parse_args([*SMOKE, *flags]))[0])
    write_plan(plan)
    return plan


def test_resume_with_a_changed_result_setting_is_refused(workdir, capsys):
    from chromtune.cli.sweep import main as sweep_main
    from chromtune.errors import run_cli

    plan = begun_sweep(workdir)
    stored = (workdir / "ray_results" / plan.key / "plan.json").read_text()
    code = run_cli(sweep_main, [*SMOKE, "--resume", "--valid-pairs", "1000", "--valid-bins", "all", "--width", "0.5",
                                "--concurrent-folds", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[0].startswith("chromtune: error: --resume: ") and "--storage" in err[0], err
    assert sorted(line.strip() for line in err[1:]) == [
        "--valid-bins: stored 2000 -> given all", "--valid-pairs: stored 40000 -> given 1000",
        "--width: stored 0.125 -> given 0.5"]
    assert sorted(p.name for p in (workdir / "ray_results" / plan.key).iterdir()) == ["plan.json"]  # lease gone
    assert (workdir / "ray_results" / plan.key / "plan.json").read_text() == stored
    assert not (workdir / "mlflow.db").exists()

    code = run_cli(sweep_main, [*SMOKE, "--resume", "--stage2-space", "stage2_tpe"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2 and err[1].strip().startswith("--stage2-space: stored {"), err


def test_resume_may_change_what_changes_no_result(workdir, capsys):
    """Concurrency, resources, the address and another spelling of the same MLflow store may differ;
    the sizes a flag gives explicitly are compared as resolved (the demo's smoke default: 40,000)."""
    from chromtune.sweep.plan import check_storage

    begun_sweep(workdir)
    same = plan_sweep(settings_from_args(build_parser().parse_args(
        [*SMOKE, "--resume", "--max-concurrent-trials", "1", "--concurrent-folds", "2", "--cpus-per-worker", "2",
         "--address", "127.0.0.1:1", "--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}",
         "--valid-pairs", "40000"]))[0])
    check_storage(same)
    assert capsys.readouterr().out == ""


def test_resume_of_a_sweep_without_stored_settings_says_so(workdir, capsys):
    from chromtune.sweep.plan import check_storage

    plan = begun_sweep(workdir)
    folder = workdir / "ray_results" / plan.key
    (folder / "plan.json").unlink()
    (folder / "fold0-stage1.json").write_text("{}")  # what an older chromtune's sweep holds
    check_storage(plan_sweep(settings_from_args(build_parser().parse_args([*SMOKE, "--resume"]))[0]))
    out = capsys.readouterr().out
    assert "older chromtune" in out and plan.key in out


def test_the_resume_command_repeats_the_settings_the_sweep_runs_with():
    from chromtune.sweep.driver import sweep_command

    sweeps = each_sweep("basset", ["tune", "freeze"], folds=2, smoke_test=True, valid_pairs=1000, force=True,
                        max_concurrent_trials=2)
    command = sweep_command(sweeps, resume=True).split()
    assert command[-1] == "--resume" and "--force" not in command
    assert command[command.index("--paradigm") + 1: command.index("--paradigm") + 3] == ["tune", "freeze"]
    flags = command[command.index("--arch"):]  # after "chromtune sweep" or "python -m chromtune.sweep"
    assert settings_from_args(build_parser().parse_args(flags)) == [
        SweepSettings(**{**vars(s), "resume": True, "force": False}) for s in sweeps]


def test_seeds_plan_one_cross_validation_per_seed(workdir):
    """--seeds 0 1 2: one sweep per seed, each the sweep that --seed alone plans (its key, its folds)."""
    sweeps = settings_from_args(build_parser().parse_args([*SMOKE, "--seeds", "0", "1", "2", "--paradigm", "tune",
                                                           "freeze"]))
    assert [(s.paradigm, s.seed) for s in sweeps] == [("tune", 0), ("tune", 1), ("tune", 2), ("freeze", 0),
                                                      ("freeze", 1), ("freeze", 2)]
    plans = [plan_sweep(s) for s in sweeps[:3]]
    alone = plan_sweep(settings_from_args(build_parser().parse_args([*SMOKE, "--seed", "2"]))[0])
    assert [p.key.rsplit("-", 2)[-2] for p in plans] == ["s0", "s1", "s2"]
    assert plans[2].key == alone.key and plans[2].base == alone.base and plans[2].folds == alone.folds
    assert plans[0].folds != plans[1].folds  # the folds are seeded
    flags = command_flags(sweeps)
    assert flags[flags.index("--seeds") + 1:flags.index("--seeds") + 4] == ["0", "1", "2"] and "--seed" not in flags
    assert settings_from_args(build_parser().parse_args(flags)) == sweeps


def summary(model: list[float], mean: list[float], weighted: list[float]):
    from chromtune.sweep.summary import summary_table

    return summary_table([{"fold": f, "model": {"auprc": m, "auroc": 0.5}, "mean_baseline": {"auprc": b, "auroc": 0.5},
                           "weighted_mean_baseline": {"auprc": w, "auroc": 0.5}}
                          for f, (m, b, w) in enumerate(zip(model, mean, weighted, strict=True))])


def test_seeds_summary_gives_mean_and_sd_over_seeds_and_folds_beaten_at_each():
    from chromtune.sweep.summary import seeds_text

    tables = {0: summary([0.8, 0.7], [0.6, 0.6], [0.65, 0.75]),   # fold means 0.75 / 0.6 / 0.7; wins 1
              1: summary([0.7, 0.7], [0.6, 0.6], [0.65, 0.65]),   # 0.7 / 0.6 / 0.65; wins 2
              2: summary([0.6, 0.5], [0.6, 0.6], [0.65, 0.65])}   # 0.55 / 0.6 / 0.65; wins 0
    text = seeds_text("basset tune+mean", tables)
    model = np.array([0.75, 0.7, 0.55])
    assert f"model {model.mean():.4f} +- {model.std(ddof=1):.4f}" in text and "mean 0.6000 +- 0.0000" in text
    assert "over 3 seeds (0, 1, 2)" in text and "seed 0: 1 of 2, seed 1: 2 of 2, seed 2: 0 of 2" in text


def test_seed_averaged_wilcoxon_counts_cell_types_not_repeats():
    import pandas as pd

    from chromtune.compare.statistics import paired_wilcoxon, seed_averaged_wilcoxon

    rng = np.random.default_rng(0)
    cells = [f"cell{c}" for c in range(8)]
    effect = np.linspace(0.01, 0.08, 8)  # a's gain per cell type
    rows = [{"seed": seed, "cell_type": cell, "b": base, "a": base + gain + rng.normal(0, 0.005)}
            for seed in range(3) for cell, gain, base in zip(cells, effect, rng.uniform(0.3, 0.7, 8))]
    values = pd.DataFrame(rows).set_index(["seed", "cell_type"])
    result = seed_averaged_wilcoxon(values, "a", "b")
    assert result["n"] == 8 and result["n_seeds"] == 3 and result["method"] == "exact"
    assert result["p"] == pytest.approx(2 / 2 ** 8)  # every cell type's seed-mean gain is positive
    assert result["mean_diff"] == pytest.approx((values["a"] - values["b"]).mean())
    pooled = paired_wilcoxon(values["a"], values["b"])  # 24 repeats as if independent: a smaller, wrong p
    assert pooled["n"] == 24 and pooled["p"] < result["p"]


def test_the_sweep_summarises_its_seeds_with_those_finished_before(workdir, capsys):
    """A seed finished by an earlier call (--resume) counts with its stored summary.csv."""
    from chromtune.sweep.driver import print_seeds

    plans = [plan_sweep(s) for s in settings_from_args(build_parser().parse_args([*SMOKE, "--seeds", "0", "1"]))]
    plans[1].storage.write_text("summary.csv", summary([0.7, 0.7], [0.6, 0.6], [0.65, 0.65]).to_csv())
    print_seeds(plans, {plans[0].key: summary([0.8, 0.7], [0.6, 0.6], [0.65, 0.75])})
    out = capsys.readouterr().out
    assert "basset tune+mean over 2 seeds (0, 1): mean test AUPRC model 0.7250 +- 0.0354" in out
    assert "seed 0: 1 of 2, seed 1: 2 of 2" in out
    print_seeds(plans[:1], {plans[0].key: summary([0.8, 0.7], [0.6, 0.6], [0.65, 0.75])})
    assert capsys.readouterr().out == ""  # one seed: nothing to summarise


def test_resume_of_several_sweeps_starts_those_the_stop_came_before(workdir, monkeypatch, capsys):
    """`--seeds 0 1` stopped during seed 0: the printed --resume command continues seed 0 and starts
    seed 1 (its storage empty), instead of refusing seed 1 as having nothing to resume."""
    from chromtune.sweep import driver
    from chromtune.sweep.plan import write_plan

    args = build_parser().parse_args([*SMOKE, "--seeds", "0", "1", "--resume"])
    write_plan(plan_sweep(settings_from_args(args)[0]))  # seed 0 had begun: its plan.json is stored
    ran = []

    def record(plan):
        ran.append((plan.settings.seed, plan.settings.resume))
        return summary([0.8, 0.7], [0.6, 0.6], [0.65, 0.75]), ""

    monkeypatch.setattr(driver, "run_sweep", record)
    monkeypatch.setattr(driver, "fold_roles_text", lambda plan: "")
    code, _ = driver.run_sweeps(settings_from_args(args))
    assert code == 0 and ran == [(0, True), (1, False)]
    assert "was not begun before the stop; it starts now" in capsys.readouterr().out


def test_resume_of_several_sweeps_none_begun_is_refused(workdir, capsys):
    from chromtune.cli.sweep import main as sweep_main
    from chromtune.errors import run_cli

    assert run_cli(sweep_main, [*SMOKE, "--seeds", "0", "1", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume: nothing to resume" in err[0]
