"""One driver per sweep: a lease object in the sweep's storage, taken before Ray or MLflow start.

The lease (``driver.lease``, JSON: owner token, host, pid, command, start and heartbeat times) is
rewritten every :data:`HEARTBEAT_S` seconds while the driver lives. Another driver of the same
sweep is refused while the heartbeat is younger than :data:`EXPIRES_S`; an older one (a driver
that was SIGKILLed, a lost machine) is taken over by ``--resume``, and so is one whose pid is
gone on this same host; ``--force`` takes over a live-looking one after a warning (its owner
sees the change at its next heartbeat and stops).

What guarantees one owner:
- a folder (also ``file://`` on NFS v3+): the first lease is created with ``O_CREAT | O_EXCL``,
  which exactly one of several simultaneous drivers wins;
- ``s3://`` / ``gs://`` (pyarrow has no conditional put): write, wait :data:`SETTLE_S`, read back;
  the lease is ours only if it still holds our token. With the stores' read-after-write
  consistency this admits one owner as long as no driver takes longer than SETTLE_S between
  reading the lease and writing its own (both are single small requests).
Taking over an expired or forced lease uses that write-wait-read step everywhere.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from typing import Callable

from chromtune.errors import UserError
from chromtune.io.storage import Storage

LEASE_NAME = "driver.lease"
HEARTBEAT_S = 10.0
EXPIRES_S = 60.0
SETTLE_S = 2.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """The sweep driver's claim on ``storage`` (a sweep's folder)."""

    def __init__(self, storage: Storage, command: str, on_lost: Callable[[str], None] | None = None):
        """``on_lost(description)`` runs in the heartbeat thread if another driver takes the lease over."""
        self.storage, self.command, self.on_lost = storage, command, on_lost
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.started = time.time()
        self.created_folder = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading and writing the object ------------------------------------------------------
    def _record(self) -> str:
        return json.dumps({"owner": self.token, "host": self.host, "pid": self.pid, "command": self.command,
                           "started": self.started, "heartbeat": time.time()})

    def read(self) -> dict | None:
        try:
            text = self.storage.read_text(LEASE_NAME)
            return json.loads(text) if text else None
        except (OSError, ValueError):  # half-written by a driver that died as it wrote: no owner
            return None

    def _write(self) -> None:
        self.storage.write_text(LEASE_NAME, self._record())

    def _create_exclusive(self) -> bool:
        """Create the lease if there is none; False if another driver's is there."""
        if self.storage.fs.type_name != "local":
            if self.read() is not None:
                return False
            self._write()
            time.sleep(SETTLE_S)
            return (self.read() or {}).get("owner") == self.token
        os.makedirs(self.storage.root, exist_ok=True)
        try:
            fd = os.open(self.storage.path(LEASE_NAME), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(self._record())
        return True

    def _take_over(self, previous: str | None) -> bool:
        """Replace the lease of owner ``previous``; a write of its own heartbeat (it read the lease just
        before ours landed) is answered by writing again, another taker's write means we lost."""
        for _ in range(3):
            self._write()
            time.sleep(SETTLE_S)
            owner = (self.read() or {}).get("owner")
            if owner != previous:
                return owner == self.token
        return False

    # -- the driver's view -------------------------------------------------------------------
    def describe(self, record: dict) -> str:
        age = time.time() - float(record.get("heartbeat", 0))
        return (f"pid {record.get('pid')} on {record.get('host')} (heartbeat {age:.0f} s ago; "
                f"{record.get('command', '?')})")

    def is_stale(self, record: dict) -> bool:
        if record.get("host") == self.host and not _pid_alive(int(record.get("pid", -1))):
            return True
        return time.time() - float(record.get("heartbeat", 0)) > EXPIRES_S

    def acquire(self, resume: bool, force: bool) -> None:
        """Take the lease or raise UserError naming the driver that holds it."""
        self.created_folder = not self.storage.exists()
        if self._create_exclusive():
            return self._start_heartbeat()
        record = self.read()
        if record is None:  # vanished between the two reads (its driver ended): try once more
            if self._create_exclusive():
                return self._start_heartbeat()
            record = self.read() or {}
        where = self.storage.uri
        if not self.is_stale(record):
            if not force:
                raise UserError(f"--storage {where}: this sweep is being run by {self.describe(record)}; "
                                "wait for it or stop it (pass --force to take it over)")
            print(f"chromtune: warning: --force: taking over the sweep from {self.describe(record)}, which "
                  "stops at its next heartbeat", file=sys.stderr, flush=True)
        elif not resume:
            raise UserError(f"--storage {where}: a driver of this sweep stopped without finishing "
                            f"({self.describe(record)}); pass --resume to continue it")
        if not self._take_over(record.get("owner")):
            raise UserError(f"--storage {where}: another driver took this sweep over at the same moment: "
                            f"{self.describe(self.read() or {})}")
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                record = self.read()
                if record is not None and record.get("owner") != self.token:
                    if self.on_lost:
                        self.on_lost(self.describe(record))
                    return
                self._write()
            except OSError:  # storage briefly unreachable: the next beat tries again
                continue

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours (and the folder, if the
        lease was all this driver put there). A heartbeat already writing is waited for first, or it
        would write the lease again after it was removed."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        try:
            if (self.read() or {}).get("owner") == self.token:
                self.storage.fs.delete_file(self.storage.path(LEASE_NAME))
            if self.created_folder and self.storage.is_empty():
                self.storage.fs.delete_dir(self.storage.root)
        except OSError:
            pass
