"""The install path: declared dependencies cover the imports, README set-up in order, CI fails loudly."""

import ast
import re
import sys
import tomllib
from pathlib import Path

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


def test_ci_fails_on_a_failed_install_and_runs_exactly_pytest():
    script = (ROOT / ".ci" / "run").read_text()
    code = [line.split("#")[0].strip() for line in script.splitlines() if line.split("#")[0].strip()]
    assert "set -euo pipefail" in code
    assert not any(re.search(r"\|\|\s*(echo|true|:)\b", line) for line in code), "an install failure is hidden"
    assert code[-1] == "pytest"
    assert any('pip install "torch==2.13.0"' in line for line in code)
