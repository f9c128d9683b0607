"""Every sweep flag is checked before Ray or MLflow start: one line, exit 2, nothing created."""

import sqlite3

import pytest
import ray

from chromtune.errors import run_cli
from chromtune.sweep.__main__ import main as sweep_main
from chromtune.tracking import artifact_root, resolve_tracking_uri


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.txt").write_text("not a database\n")
    return tmp_path


@pytest.mark.parametrize("flags,fragment", [
    (["--cpus-per-worker", "0"], "--cpus-per-worker 0"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker -1"),
    (["--tracking-uri", "sqlite:///plain.txt"], "not an SQLite database"),
    (["--tracking-uri", "plain.txt"], "file store"),
    (["--tracking-uri", "sqlite:///sub"], "is a folder"),
    (["--storage", "plain.txt"], "is a file"),
    (["--storage", "plain.txt/results"], "which is a file"),
    (["--data", "missing.h5"], "missing.h5: no such data set file"),
])
def test_bad_sweep_flags_fail_before_ray_and_mlflow(workdir, capsys, flags, fragment):
    (workdir / "sub").mkdir()
    before = sorted(p.name for p in workdir.iterdir())
    code = run_cli(sweep_main, ["--arch", "basset", "--folds", "2", "--smoke-test", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert not ray.is_initialized()
    assert sorted(p.name for p in workdir.iterdir() if p.name != "cache") == [n for n in before if n != "cache"]


def test_sqlite_paths_are_made_absolute_against_the_callers_folder(workdir):
    assert resolve_tracking_uri(None) == f"sqlite:///{workdir / 'mlflow.db'}"
    assert resolve_tracking_uri("sqlite:///runs.db") == f"sqlite:///{workdir / 'runs.db'}"
    sqlite3.connect(workdir / "real.db").execute("create table t (x)").connection.commit()
    assert resolve_tracking_uri(f"sqlite:///{workdir / 'real.db'}") == f"sqlite:///{workdir / 'real.db'}"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.tracking
def test_artifacts_go_beside_the_sqlite_store_not_the_current_folder(tmp_path, monkeypatch):
    from chromtune.tracking import Tracker

    store = tmp_path / "store"
    store.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    assert artifact_root(uri) == (store / "mlartifacts").as_uri()
    tracker = Tracker(uri, "exp", "sweep-key")
    run = tracker.hierarchy_run("k", "sweep", None, {})
    (tmp_path / "note.txt").write_text("x")
    tracker.log_artifacts(run, [tmp_path / "note.txt"])
    assert list((store / "mlartifacts").rglob("note.txt"))
    assert not (elsewhere / "mlruns").exists() and not any(elsewhere.iterdir())
