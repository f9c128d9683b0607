"""Write outputs under a temporary name in the target folder, then rename into place.

A failed or interrupted write never leaves a half-written file and never damages the file that
was there before. :func:`check_output_file` and :func:`check_output_folder` refuse an output path
that cannot be written before any work starts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    target = Path(path)
    interrupts = interrupt_count()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        if interrupt_count() > interrupts:  # Ctrl-C arrived during the write, even if something swallowed it
            raise KeyboardInterrupt
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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
