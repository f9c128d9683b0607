"""Write outputs under a temporary name in the target folder, then rename into place.

A failed or interrupted write never leaves a half-written file and never damages the file that
was there before. :func:`check_output_file` and :func:`check_output_folder` refuse an output path
that cannot be written before any work starts.

A temporary file is named ``.<name>.<host>.<pid>.<random>.tmp``, so what a killed process left
behind can be told from what a running one is writing. Ctrl-C and SIGTERM unwind the command
(:func:`chromtune.errors.run_cli`), and the write's ``finally`` removes its file; a second signal
exits at once after removing every temporary file still open (:func:`remove_open_temporaries`).
What a SIGKILL or a power cut leaves is found by the next write into the same folder
(:func:`clear_debris`): removed when it is this host's and its process is gone, named otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from chromtune import errors
from chromtune.errors import UserError, interrupt_count


def _read_umask() -> int:
    """The process umask, read without changing it where the OS allows (no race with other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import: setting it around each write races with the fold threads


HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[a-z0-9_]+\.tmp")
_OLD_TEMPORARY = r"[a-z0-9_]{8}\.tmp"  # mkstemp's part of an earlier chromtune's names: no owner
_open: set[Path] = set()  # temporary files being written by this process
_named: set[Path] = set()  # debris already reported by this process
_lock = threading.RLock()  # re-entered by a signal handler that interrupts a holder in this thread


def remove_open_temporaries() -> None:
    """Remove every temporary file this process is writing (before an exit that skips ``finally``)."""
    with _lock:
        for path in list(_open):
            path.unlink(missing_ok=True)


errors.exit_hooks.append(remove_open_temporaries)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        return "?"


def clear_debris(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files in ``folder`` of writes whose process is gone from this host; name
    on stderr, once, the temporary files of ``name`` that may be debris but cannot be told so (another
    host's, or of an older chromtune). Returns the files removed."""
    removed, unsure = [], []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        found = _TEMPORARY.fullmatch(entry.name)
        if found and found["host"] == HOST and int(found["pid"]) != os.getpid() and not _alive(int(found["pid"])):
            size = _size(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
                print(f"chromtune: removed {path} ({size}), left by an earlier run that was stopped "
                      f"(process {found['pid']})", file=sys.stderr, flush=True)
        elif (name is not None and entry.name.startswith(f".{name}.") and path not in _named
              and (found and found["name"] == name and found["host"] != HOST
                   or not found and re.fullmatch(_OLD_TEMPORARY, entry.name[len(name) + 2:]))):
            unsure.append(path)
    for path in unsure:
        _named.add(path)
        print(f"chromtune: warning: {path} ({_size(path)}) looks left by an earlier run that was stopped; "
              "remove it if no chromtune is writing there", file=sys.stderr, flush=True)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    target = Path(path)
    interrupts = interrupt_count()
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target.parent, target.name)
    with _lock:  # registered before it exists: a second signal never misses it
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{HOST}.{os.getpid()}.", suffix=".tmp",
                                   dir=target.parent)
        tmp_path = Path(tmp)
        _open.add(tmp_path)
    try:
        os.close(fd)
        os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        yield tmp_path
        if interrupt_count() > interrupts:  # a stop signal arrived during the write, even if something swallowed it
            raise KeyboardInterrupt
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)
        with _lock:
            _open.discard(tmp_path)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _check_writable_folder(folder: Path, flag: str, shown: Path) -> None:
    """``folder``'s nearest existing ancestor must be a folder in which a file can be created."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():
            raise UserError(f"{flag} {shown}: {probe} is a broken link")
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{flag} {shown}: lies under {probe}, which is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".chromtune-probe.", dir=probe)
    except OSError as err:
        raise UserError(f"{flag} {shown}: cannot write in {probe} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before any work, an output file path that names a folder or cannot be written."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UserError(f"{flag} {path}: is a folder, expected a file name")
    if str(path).endswith(os.sep):
        raise UserError(f"{flag} {path}: ends in {os.sep}, expected a file name")
    _check_writable_folder(target.absolute().parent, flag, Path(path))


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder path that names a file or cannot be written."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise UserError(f"{flag} {path}: is a file, expected a folder")
    _check_writable_folder(target.absolute(), flag, Path(path))
