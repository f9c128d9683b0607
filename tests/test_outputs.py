"""Output paths are checked before any work starts; outputs are written atomically with the umask read once."""

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from chromtune import atomic
from chromtune.atomic import atomic_path, check_output_file, check_output_folder
from chromtune.cli import main as cli_main
from chromtune.errors import UserError
from conftest import assert_one_line_error, gone_pid, run_command

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
    handler = signal.getsignal(signal.SIGTERM)  # pytest's, or Ray's after an earlier test's ray.init

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



def test_sigterm_during_a_write_is_one_line_exit_143_and_no_temporary_file(tmp_path, capsys, monkeypatch):
    from chromtune.data import dataset

    out = tmp_path / "demo.h5"
    out.write_bytes(b"the previous result")
    original = dataset.write_sequence
    handler = signal.getsignal(signal.SIGTERM)  # pytest's, or Ray's after an earlier test's ray.init

    def terminated(*args, **kwargs):
        assert [p.name for p in tmp_path.glob(f".demo.h5.{atomic.HOST}.{os.getpid()}.*.tmp")]  # being written
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        return original(*args, **kwargs)
    monkeypatch.setattr(dataset, "write_sequence", terminated)
    code, _, err = run_command(cli_main, ["demo", "--out", out], capsys)
    assert code == 143 and err.strip().splitlines() == ["chromtune: stopped by SIGTERM"]
    assert out.read_bytes() == b"the previous result"
    assert os.listdir(tmp_path) == ["demo.h5"]
    assert signal.getsignal(signal.SIGTERM) is handler  # the process's own handling is back


SECOND_SIGNAL = """
import os, signal, sys, time
from chromtune.atomic import atomic_path
from chromtune.errors import run_cli

def main(argv):
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half written")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # a library swallowed the first signal; the user sends another
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    print("not reached")

sys.exit(run_cli(main))
"""


def test_a_second_signal_exits_at_once_and_removes_the_temporary_files(tmp_path):
    result = subprocess.run([sys.executable, "-c", SECOND_SIGNAL, str(tmp_path / "out.txt")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 143 and result.stderr.splitlines() == ["chromtune: stopped by SIGTERM"], result
    assert result.stdout == "" and os.listdir(tmp_path) == []


def test_debris_of_a_stopped_run_is_removed_or_named_by_the_next_write(tmp_path, capsys):
    gone, alive = gone_pid(), os.getppid()
    debris = tmp_path / f".preds.h5.{atomic.HOST}.{gone}.k2v9_x1q.tmp"
    debris.write_bytes(b"x" * 2_000_000)
    other_output = tmp_path / f".newA.bed.{atomic.HOST}.{gone}.a1b2c3d4.tmp"  # another output of that run
    other_output.write_text("chr1\t0\t200\n")
    running = tmp_path / f".preds.h5.{atomic.HOST}.{alive}.zzzzzzzz.tmp"  # a live process is writing it
    elsewhere = tmp_path / f".preds.h5.otherhost.{gone}.abcdefgh.tmp"  # another machine's: cannot tell
    old = tmp_path / ".preds.h5.q7w_e8r9.tmp"  # an older chromtune's name: no owner
    for path in (running, elsewhere, old):
        path.write_text("?")
    capsys.readouterr()
    atomic.write_text(tmp_path / "preds.h5", "new")
    atomic.write_text(tmp_path / "preds.h5", "newer")  # what was named once is not named again
    err = capsys.readouterr().err.splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["preds.h5", running.name, elsewhere.name, old.name])
    assert f"chromtune: removed {debris} (2.0 MB), left by an earlier run that was stopped (process {gone})" in err
    assert any(line.startswith(f"chromtune: removed {other_output}") for line in err)
    named = [line for line in err if "warning" in line]
    assert len(named) == 2 and all(sum(path.name in line for line in named) == 1 for path in (elsewhere, old))
    assert len(err) == 4 and (tmp_path / "preds.h5").read_text() == "newer"
