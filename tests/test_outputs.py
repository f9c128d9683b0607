"""Output paths are checked before any work starts; outputs are written atomically with the umask read once."""

import os
import stat
import threading

import pytest

from chromtune import atomic
from chromtune.atomic import atomic_path, check_output_file, check_output_folder
from chromtune.cli import main as cli_main
from chromtune.errors import UserError
from conftest import assert_one_line_error, run_command

MISSING_INPUTS = ["--genome", "nope.fa", "--samples", "nope.tsv", "--expression", "nope.tsv"]


def bad_outputs(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"folder": (str(tmp_path), "is a folder"),
            "under a file": (str(a_file / "data.h5"), "which is a file"),
            "system folder": ("/proc/chromtune-test/data.h5", "cannot write in /proc")}


@pytest.mark.parametrize("case", ["folder", "under a file", "system folder"])
@pytest.mark.parametrize("command", ["prepare", "import-chromdragonn", "demo", "predict"])
def test_bad_out_is_refused_before_any_input_is_read(tmp_path, capsys, command, case):
    out, fragment = bad_outputs(tmp_path)[case]
    inputs = {"prepare": MISSING_INPUTS, "import-chromdragonn": ["--dnase", "nope", "--rna", "nope.joblib"],
              "demo": [], "predict": ["--model", "nope", "--expression", "nope.tsv"]}[command]
    code, _, err = run_command(cli_main, [command, *inputs, "--out", out], capsys)
    assert_one_line_error(code, err, "--out", fragment)


def test_output_folder_checks(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, expected a folder"):
        check_output_folder(tmp_path / "f", "--out")
    with pytest.raises(UserError, match="which is a file"):
        check_output_folder(tmp_path / "f" / "run", "--out")
    check_output_folder(tmp_path / "new" / "run", "--out")
    check_output_file(tmp_path / "new" / "x.h5", "--out")
    assert not (tmp_path / "new").exists(), "a check creates nothing"
    assert os.listdir(tmp_path) == ["f"], "the probe file is removed"


def test_atomic_write_never_changes_the_umask(tmp_path, monkeypatch):
    """The umask is read once; setting it to 0 around each write raced with the fold threads."""
    calls = []
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or 0o022)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    assert calls == []
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~atomic.UMASK


def test_umask_matches_the_process(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    assert atomic.UMASK == mask


def test_concurrent_atomic_writes(tmp_path):
    def write(i):
        atomic.write_text(tmp_path / f"{i}.txt", str(i))
    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.txt" for i in range(16))


def test_ctrl_c_swallowed_during_a_write_leaves_out_untouched(tmp_path, capsys, monkeypatch):
    """An interrupt that a library swallows mid-write used to let the command finish: exit 0 and
    --out replaced. Now: exit 130, one line, the old file as it was, no temporary file left."""
    import signal
    import time

    from chromtune.data import dataset

    out = tmp_path / "demo.h5"
    out.write_bytes(b"the previous result")
    original = dataset.write_sequence

    def swallowing(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        return original(*args, **kwargs)
    monkeypatch.setattr(dataset, "write_sequence", swallowing)
    code, _, err = run_command(cli_main, ["demo", "--out", out], capsys)
    assert code == 130 and err.strip().splitlines() == ["chromtune: interrupted"]
    assert out.read_bytes() == b"the previous result"
    assert os.listdir(tmp_path) == ["demo.h5"]


def test_ctrl_c_handler_is_restored(capsys):
    import signal

    before = signal.getsignal(signal.SIGINT)
    assert cli_main(["--version"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
