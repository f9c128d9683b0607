"""The install path: declared dependencies cover the imports, README set-up in order, CI fails loudly."""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "yaml": "pyyaml", "pyBigWig": "pybigwig", "modiscolite": "modisco-lite",
                "memelite": "memelite"}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + project["optional-dependencies"]["interpret"]
    return {re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0].lower() for spec in names}


def imported() -> set[str]:
    names = set()
    for path in (ROOT / "chromtune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "chromtune"}


def test_every_imported_library_is_declared():
    missing = {DISTRIBUTION.get(n, n).lower() for n in imported()} - declared()
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_ranges_match_what_the_code_needs():
    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert re.search(r"ray\[[^\]]*\]>=2\.60,<2\.61", deps), "a tested Ray range (private APIs are used)"
    assert "scipy>=1.15" in deps and "joblib" in deps and "tabulate" in deps and "pydantic" in deps


def test_readme_setup_is_in_order():
    text = (ROOT / "README.md").read_text()
    setup = re.search(r"^## Set-up\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    lines = [line for block in re.findall(r"```bash\n(.*?)```", setup, re.S) for line in block.splitlines()]
    venv = next(i for i, line in enumerate(lines) if "-m venv" in line)
    torch = next(i for i, line in enumerate(lines) if "torch" in line and "download.pytorch.org/whl/cpu" in line)
    project = next(i for i, line in enumerate(lines) if 'pip install -e ".[dev]"' in line)
    assert venv < torch < project
    assert re.search(r"Python 3\.1\d or newer", setup)


def code_lines(path: Path) -> list[str]:
    """The script's lines without comments and blank lines."""
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def test_ci_fails_on_a_failed_install_and_runs_exactly_pytest():
    code = code_lines(ROOT / ".ci" / "run")
    assert "set -euo pipefail" in code
    assert not any(re.search(r"\|\|\s*(echo|true|:)\b", line) for line in code), "an install failure is hidden"
    assert code[-1] == "pytest"
    assert "scripts/install.sh python" in code


def test_install_script_pins_torch_before_the_project_and_fails_loudly():
    code = code_lines(ROOT / "scripts" / "install.sh")
    assert "set -euo pipefail" in code
    assert not any(re.search(r"\|\|\s*(echo|true|:)\b", line) for line in code), "an install failure is hidden"
    torch_lines = [i for i, line in enumerate(code) if 'install "$torch"' in line]
    project = next(i for i, line in enumerate(code) if 'pip install -e ".[dev]"' in line)
    upgrade = next(i for i, line in enumerate(code) if "install --upgrade pip" in line)
    assert len(torch_lines) == 3 and upgrade < min(torch_lines) and max(torch_lines) < project
    assert 'torch="torch==2.13.0"' in code and 'cpu_index="https://download.pytorch.org/whl/cpu"' in code
    assert any('--index-url "$cpu_index"' in code[i] for i in torch_lines)  # the CPU build where reachable


def dry_run(*arguments: str) -> list[str]:
    """What `make` would run (its dry run, -n: nothing is installed)."""
    env = {**os.environ, "MAKEFLAGS": ""}
    run = subprocess.run(["make", "-n", *arguments],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_sets_up_the_venv_then_runs_the_main_job_or_the_tests():
    run = dry_run("-B", "run", "VENV=/tmp/v")  # -B: as from a fresh clone
    assert run[:3] == ["test -x /tmp/v/bin/python || python3 -m venv /tmp/v", "scripts/install.sh /tmp/v/bin/python",
                       "touch /tmp/v/.chromtune-installed"]
    assert run[3:] == ["/tmp/v/bin/python -m chromtune.sweep --arch resnet --folds 5 "]
    test = dry_run("-B", "test", "VENV=/tmp/v", "PYTEST_ARGS=tests/test_cli.py -q")
    assert test[:3] == run[:3] and test[3:] == ["/tmp/v/bin/pytest tests/test_cli.py -q"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_skips_the_set_up_while_its_stamp_is_current(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stamp = venv / ".chromtune-installed"
    stamp.touch()
    newest = max((ROOT / "pyproject.toml").stat().st_mtime, (ROOT / "scripts" / "install.sh").stat().st_mtime)
    os.utime(stamp, (newest + 10, newest + 10))
    assert dry_run("test", f"VENV={venv}") == [f"{venv}/bin/pytest "]
    os.utime(stamp, (newest - 10, newest - 10))  # pyproject.toml changed since: set up again
    assert f"scripts/install.sh {venv}/bin/python" in dry_run("test", f"VENV={venv}")


def test_the_wheel_lists_every_package_and_the_top_level_search_spaces():
    """pyproject lists the packages (a find cannot see search_spaces/, mapped to chromtune.search_spaces):
    a package folder left off the list would be missing from the wheel."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "chromtune").rglob("__init__.py")}
    assert folders and set(tool["packages"]) == folders | {"chromtune.search_spaces"}
    assert tool["package-dir"] == {"chromtune.search_spaces": "search_spaces"}
    assert sorted(p.name for p in (ROOT / "search_spaces").glob("*.yaml")) == ["stage1.yaml", "stage2.yaml",
                                                                            "stage2_tpe.yaml"]
    assert not (ROOT / "chromtune" / "search_spaces").exists()  # one source


def test_shipped_spaces_load_from_the_source_tree_on_pythonpath(tmp_path):
    code = ("from chromtune.sweep.search_space import SHIPPED, load_search_space, shipped_spaces; "
            "[load_search_space(n) for n in shipped_spaces()]; print(SHIPPED)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()) == ROOT / "search_spaces"
