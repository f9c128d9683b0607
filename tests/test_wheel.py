"""chromtune installed from its built wheel in a fresh venv: the shipped search spaces resolve, the
smoke sweep runs to its summary from an empty folder, and no process of that running sweep listens
outside loopback (the installation and the sweep are conftest's ``installed_chromtune`` and
``smoke_sweep_run``; test_sweep.py checks the same sweep's run tree)."""

import ipaddress
import subprocess
import zipfile
from pathlib import Path

import pytest

PROBE = """
import chromtune, sys
from pathlib import Path
print(chromtune.__file__)
from chromtune.sweep.search_space import load_search_space, shipped_spaces
from chromtune.cli.sweep import build_parser
args = build_parser().parse_args([])
for name in (args.stage1_space, args.stage2_space, *shipped_spaces()):
    load_search_space(name)
print(" ".join(shipped_spaces()))
"""


def test_wheel_ships_the_default_search_spaces(installed_chromtune, tmp_path):
    names = zipfile.ZipFile(installed_chromtune.wheel).namelist()
    assert {"chromtune/search_spaces/stage1.yaml", "chromtune/search_spaces/stage2.yaml",
            "chromtune/cli/__init__.py"} <= set(names)
    assert not any(n.startswith("search_spaces/") for n in names)
    run = subprocess.run([str(installed_chromtune.python), "-c", PROBE], cwd=tmp_path, env=installed_chromtune.env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    where, spaces = run.stdout.strip().splitlines()[-2:]
    assert Path(where).is_relative_to(installed_chromtune.venv), where  # the wheel's copy, not this checkout
    assert {"stage1", "stage2", "stage2_tpe"} <= set(spaces.split())


def test_console_script_is_the_venvs(installed_chromtune, tmp_path):
    script = installed_chromtune.command()
    assert script.read_text().splitlines()[0] == f"#!{installed_chromtune.python}"
    run = subprocess.run([str(script), "--version"], cwd=tmp_path, env=installed_chromtune.env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "0.1.0" in run.stdout + run.stderr, run.stderr


@pytest.mark.slow
def test_installed_wheel_runs_the_smoke_sweep_to_its_summary(smoke_sweep_run):
    log = smoke_sweep_run.log
    assert "Traceback" not in log, log[-3000:]
    assert "test AUPRC" in log  # the end-of-sweep summary table
    assert (smoke_sweep_run.workdir / "mlflow.db").is_file()
    assert next((smoke_sweep_run.workdir / "ray_results").iterdir()).joinpath("summary.csv").is_file()


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def test_loopback_check():
    assert is_loopback("127.0.0.1") and is_loopback("127.8.0.3") and is_loopback("::ffff:127.0.0.1")
    assert is_loopback("::1")
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "fe80::1%eth0"]))


@pytest.mark.slow
def test_no_process_of_a_running_sweep_listens_outside_loopback(smoke_sweep_run):
    """Sampled every second over the whole sweep: driver, GCS, raylet, agents, workers, trials."""
    run = smoke_sweep_run
    assert run.samples_with_trials >= 1, (run.samples, run.samples_with_trials)
    names = {name for name, _, _ in run.listening}
    assert {"gcs_server", "raylet"} <= names, run.listening
    assert any(name.startswith("ray::ImplicitFunc") for name in names), names  # a trial's worker
    outside = sorted(s for s in run.listening if not is_loopback(s[1]))
    assert outside == [], f"listening outside 127.0.0.0/8: {outside}"
