"""A built wheel holds everything the main job needs: the shipped search spaces resolve from it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import chromtune, sys
from pathlib import Path
assert Path(chromtune.__file__).is_relative_to(Path(sys.argv[2])), chromtune.__file__
from chromtune.search_space import load_search_space, shipped_spaces
from chromtune.cli.sweep import build_parser
args = build_parser().parse_args([])
for name in (args.stage1_space, args.stage2_space, *shipped_spaces()):
    load_search_space(name)
print(" ".join(shipped_spaces()))
"""


def test_wheel_ships_the_default_search_spaces(tmp_path):
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("chromtune/", "pyproject.toml", "README.md")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("chromtune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"chromtune/search_spaces/stage1.yaml", "chromtune/search_spaces/stage2.yaml",
            "chromtune/cli/__init__.py"} <= set(names)
    assert not any(n.startswith("search_spaces/") for n in names)
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(unpacked)!r}); "
                          + "exec(sys.argv[1])", PROBE, str(unpacked)],
                         cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert {"stage1", "stage2", "stage2_tpe"} <= set(run.stdout.split())
