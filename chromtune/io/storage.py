"""Where a sweep keeps its state: a local folder, or a URI that every node of a cluster reaches.

``--storage`` is a plain folder (one machine), ``s3://bucket/prefix`` / ``gs://...`` (object
storage), or ``file:///path`` on a filesystem every node mounts (NFS). Ray Tune and Train write
their experiment state and checkpoints there; the sweep adds its small JSON markers and the
selected checkpoints. Everything goes through pyarrow's filesystems, so the code is the same
for all three; a plain folder is also what a single machine needs and nothing more.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from chromtune.errors import UserError
from chromtune.io.files import absolute, is_uri


class Storage:
    """A folder in a (possibly remote) filesystem, addressed by relative posix paths."""

    def __init__(self, location: str):
        self.location = location
        self.is_uri = is_uri(location)
        if self.is_uri:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(location)
            except (ValueError, OSError) as err:  # pyarrow's ArrowInvalid is a ValueError
                raise UserError(f"--storage {location}: {str(err).splitlines()[0]}") from None
            base, _, self.query = location.partition("?")  # e.g. s3://b/p?endpoint_override=host:port
            self.uri = base.rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), absolute(location)
            self.uri, self.query = self.root, ""

    def child(self, name: str) -> "Storage":
        """The sub-folder ``name`` as a Storage of its own."""
        return Storage(self.uri_of(name))

    def path(self, *parts: str) -> str:
        """The filesystem path of ``parts`` (for pyarrow calls)."""
        return posixpath.join(self.root, *parts)

    def uri_of(self, *parts: str) -> str:
        """The location of ``parts`` as Ray takes it (``storage_path``, ``Tuner.restore``)."""
        return "/".join([self.uri, *parts]) + (f"?{self.query}" if self.query else "")

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def is_empty(self) -> bool:
        """True when the folder is absent or holds nothing."""
        if not self.exists():
            return True
        return not self.fs.get_file_info(pafs.FileSelector(self.root, recursive=False))

    def read_text(self, *parts: str) -> str | None:
        if not self.exists(*parts):
            return None
        with self.fs.open_input_stream(self.path(*parts)) as stream:
            return stream.read().decode()

    def write_text(self, name: str, text: str) -> None:
        """Write a small file whole: a temporary name then a move where the filesystem renames
        atomically (local, NFS); object stores publish an upload only when it is complete."""
        self.fs.create_dir(self.root, recursive=True)
        target = self.path(name)
        staging = target if self.fs.type_name in ("s3", "gcs") else f"{target}.tmp-{os.getpid()}"
        with self.fs.open_output_stream(staging) as stream:
            stream.write(text.encode())
        if staging != target:
            self.fs.move(staging, target)

    def put_folder(self, local: str | os.PathLike, name: str) -> None:
        """Copy the local folder ``local`` to ``name`` here, replacing what was there."""
        target = self.path(name)
        if self.exists(name):
            self.fs.delete_dir(target)
        self.fs.create_dir(target, recursive=True)
        pafs.copy_files(str(Path(local).resolve()), target, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)

    def find(self, suffix: str, under: str = "") -> list[str]:
        """Paths (relative to the root) of every file under ``under`` whose path ends with ``suffix``."""
        base = self.path(under) if under else self.root
        if self.fs.get_file_info(base).type == pafs.FileType.NotFound:
            return []
        found = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        return [posixpath.relpath(info.path, self.root) for info in found
                if info.type == pafs.FileType.File and info.path.endswith(suffix)]


def fetch(location: str, cache: str | os.PathLike | None = None) -> Path:
    """A local path for ``location``: a plain path as it is, a remote file or folder downloaded once
    per machine (into ``cache``, default the temporary folder) and reused by later calls."""
    if not is_uri(location):
        return Path(location)
    fs, path = pafs.FileSystem.from_uri(location)
    if fs.type_name == "local":
        return Path(path)
    digest = hashlib.sha1(location.encode()).hexdigest()[:16]
    target = Path(cache or tempfile.gettempdir()) / "chromtune-fetch" / digest / posixpath.basename(path.rstrip("/"))
    if not target.exists():
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            staging.mkdir(parents=True)
        else:
            staging.parent.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(path, str(staging), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        try:
            os.replace(staging, target)
        except OSError:  # another process on this machine fetched it first
            shutil.rmtree(staging, ignore_errors=True)
    return target
