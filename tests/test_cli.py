"""One shape for every command: a fast --help written for users, defaults shown, examples, --version."""

import argparse
import importlib
import json
import subprocess
import sys
import time

import pytest

from chromtune import __version__
from chromtune.cli import COMMANDS, main

HEAVY = ("torch", "ray", "pandas", "mlflow", "optuna", "pyarrow", "h5py", "sklearn", "scipy", "matplotlib")
MOVED = [name for name, (module, _) in COMMANDS.items() if module.startswith("chromtune.cli.")]

PROBE = """
import json, sys
from chromtune.cli import main
try:
    main([sys.argv[1], "--help"])
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))))
"""


@pytest.mark.parametrize("command", MOVED)
def test_help_imports_nothing_heavy(command):
    """What makes --help answer at once on any load: no heavy library is imported to print it."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PROBE, command, *HEAVY], capture_output=True, text=True,
                            timeout=60)
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    out, heavy_line = result.stdout.rsplit("\n", 2)[0], result.stdout.strip().splitlines()[-1]
    assert json.loads(heavy_line) == [], f"chromtune {command} --help imports {heavy_line}"
    assert out.startswith(f"usage: chromtune {command}")
    module = importlib.import_module(COMMANDS[command][0])
    with_defaults = [a for a in module.build_parser()._actions
                     if a.option_strings and a.default is not None and a.default is not False
                     and a.default not in ("", argparse.SUPPRESS)]
    assert out.count("(default: ") >= len(with_defaults), "every default is shown"
    examples = out.split("examples:\n", 1)[1].splitlines()
    assert sum(line.startswith("  chromtune ") for line in examples) >= 2
    assert wall < 10, f"{wall:.1f} s (a generous bound for a loaded machine; about 0.1 s idle)"


def test_all_thin_commands_are_in_the_cli_package():
    assert {"prepare", "import-chromdragonn", "inspect", "demo", "train"} <= set(MOVED)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"chromtune {__version__}"
    console = subprocess.run([sys.executable, "-m", "chromtune.cli", "--version"], capture_output=True, text=True)
    assert console.stdout.strip() == f"chromtune {__version__}"


def test_usage_lists_every_command(capsys):
    assert main([]) == 0
    text = capsys.readouterr().out
    assert all(f"  {name} " in text for name in COMMANDS) and "--version" in text


def test_unknown_command_is_one_line(capsys):
    assert main(["sweeep"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("bad", [["--no-such-flag"], ["--batch-size"]])
def test_argparse_errors_are_one_line(command, bad, capsys):
    """An unknown flag, or a flag without its value, is one `chromtune: error:` line and exit status 2, as
    every other bad input (argparse alone would print its usage block first)."""
    with pytest.raises(SystemExit) as stop:
        main([command, *bad])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.startswith("chromtune: error: ") and err.count("\n") == 1, err
    assert f"see 'chromtune {command} --help'" in err


def test_a_bad_choice_from_the_console_is_one_line():
    result = subprocess.run([sys.executable, "-m", "chromtune.cli", "sweep", "--split", "foo"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("chromtune: error: argument --split: invalid choice: 'foo'") and "reference" in line
    assert line.endswith("; see 'chromtune sweep --help'")


def test_light_name_lists_match_the_registries():
    """The commands list choices without importing torch or pandas; they must agree with the code."""
    from chromtune.cli import prepare, train
    from chromtune.data.prepare import TRANSFORMS
    from chromtune.models import ARCHITECTURES, HEADS
    assert train.ARCH_NAMES == ARCHITECTURES and train.HEAD_NAMES == HEADS
    from chromtune.cli import predict
    from chromtune.io.tracks import INSTALL_HINT
    from chromtune.predict.expression import FILLS
    assert predict.FILL_NAMES == FILLS and predict.INSTALL_HINT == INSTALL_HINT
    assert set(prepare.TRANSFORM_NAMES) == set(TRANSFORMS)


def test_python_m_train_still_works():
    result = subprocess.run([sys.executable, "-m", "chromtune.train", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: chromtune train")
