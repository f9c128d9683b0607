"""Reading the user's files: existence and permission checks, plain or gzipped text; paths and URIs."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from chromtune.errors import UserError


def is_uri(location: str) -> bool:
    """Whether ``location`` is a URI (``s3://``, ``gs://``, ``file://``, ``http://``) rather than a path."""
    return "://" in location


def absolute(location: str) -> str:
    """A path made absolute against the caller's folder (``~`` expanded, symbolic links kept), so it
    means the same in Ray's workers, which run elsewhere; a URI as it is."""
    return location if is_uri(location) else os.path.abspath(os.path.expanduser(location))


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is a readable regular file, else a :class:`UserError` naming ``what``."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path}: no such file")
    if not path.is_file():
        raise UserError(f"{what} {path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what} {path}: file is not readable")
    return path


def read_text(path: Path, what: str) -> str:
    """The whole text of a plain or gzipped file; unreadable or binary content is a UserError."""
    try:
        raw = gzip.decompress(path.read_bytes()) if is_gzip(path) else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"{what} {path}: cannot read ({err})") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path}: not a text file") from None
