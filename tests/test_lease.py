"""One driver per sweep: the lease in a sweep's storage, on a folder, a file:// URI and S3 (moto)."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest
from test_storage import s3_endpoint, storage  # noqa: F401  (fixtures: the three kinds of storage)

from chromtune.errors import UserError
from chromtune.sweep import lease as lease_module
from chromtune.sweep.lease import LEASE_NAME, Lease


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(lease_module, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(lease_module, "SETTLE_S", 1.0)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def heartbeats(monkeypatch, count: int) -> threading.Event:
    """An event set once the heartbeat thread has written the lease ``count`` times."""
    written, done = [], threading.Event()
    write = Lease._write

    def counted_write(self):
        write(self)
        if threading.current_thread().name == "lease-heartbeat":
            written.append(1)
            if len(written) >= count:
                done.set()

    monkeypatch.setattr(Lease, "_write", counted_write)
    return done


def test_a_second_driver_is_refused_until_the_first_ends(storage, monkeypatch):  # noqa: F811
    renewed = heartbeats(monkeypatch, 3)
    first = Lease(storage, "chromtune sweep --arch basset")
    first.acquire(resume=False, force=False)
    try:
        for resume in (False, True):
            with pytest.raises(UserError, match=f"being run by pid {os.getpid()} on {socket.gethostname()}"):
                Lease(storage, "second").acquire(resume=resume, force=False)
        assert renewed.wait(10)  # heartbeats renew the lease, never lose it
        assert json.loads(storage.read_text(LEASE_NAME))["owner"] == first.token
    finally:
        first.release()
    assert storage.read_text(LEASE_NAME) is None and storage.is_empty()  # nothing left behind
    second = Lease(storage, "second")
    second.acquire(resume=False, force=False)
    second.release()


def test_a_dead_drivers_lease_is_taken_over_by_resume_only(storage):  # noqa: F811
    for record in ({"host": socket.gethostname(), "pid": dead_pid(), "heartbeat": time.time()},  # SIGKILLed here
                   {"host": "elsewhere", "pid": 1, "heartbeat": time.time() - 3600}):             # silent for an hour
        storage.write_text(LEASE_NAME, json.dumps({"owner": "old", **record}))
        with pytest.raises(UserError, match="--resume"):
            Lease(storage, "new").acquire(resume=False, force=False)
        taker = Lease(storage, "new")
        taker.acquire(resume=True, force=False)
        assert json.loads(storage.read_text(LEASE_NAME))["owner"] == taker.token
        taker.release()


def test_force_takes_over_and_the_old_driver_learns_it(storage, capsys):  # noqa: F811
    lost = threading.Event()
    first = Lease(storage, "first", on_lost=lambda who: lost.set())
    first.acquire(resume=False, force=False)
    second = Lease(storage, "second")
    second.acquire(resume=True, force=True)
    assert "--force" in capsys.readouterr().err
    assert lost.wait(5)  # the first driver's next heartbeat sees the new owner (and stops)
    first.release()      # leaves the new owner's lease alone
    assert json.loads(storage.read_text(LEASE_NAME))["owner"] == second.token
    second.release()


def test_drivers_started_together_get_one_owner(storage):  # noqa: F811
    leases = [Lease(storage, f"driver {i}") for i in range(4)]
    outcomes = [None] * len(leases)
    start = threading.Barrier(len(leases))

    def race(i):
        start.wait()
        try:
            leases[i].acquire(resume=False, force=False)
            outcomes[i] = "owner"
        except UserError:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(leases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("owner") == 1, outcomes
    owner = leases[outcomes.index("owner")]
    assert json.loads(storage.read_text(LEASE_NAME))["owner"] == owner.token
    owner.release()


def test_release_waits_for_a_heartbeat_in_flight(tmp_path, monkeypatch):
    """A beat that is writing when the driver releases must not leave the lease behind."""
    from chromtune.io.storage import Storage

    storage = Storage(str(tmp_path / "store"))
    writing, wrote = threading.Event(), threading.Event()
    write = Lease._write

    def slow_write(self):
        """A heartbeat's write that lasts until the driver has begun to release."""
        if threading.current_thread().name != "lease-heartbeat":
            return write(self)
        writing.set()
        assert self._stop.wait(10)
        write(self)
        wrote.set()

    monkeypatch.setattr(Lease, "_write", slow_write)
    lease = Lease(storage, "chromtune sweep")
    lease.acquire(resume=False, force=False)
    assert writing.wait(5)
    lease.release()
    assert wrote.is_set()  # the release waited for the beat's write to land
    assert storage.read_text(LEASE_NAME) is None

