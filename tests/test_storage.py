"""Sweep storage: the same operations on a local folder, a file:// URI and S3 (a real S3 API served
by moto on 127.0.0.1), and fetching remote files once per machine."""

import os
import socket
import subprocess
import sys
import time

import boto3
import pytest

from chromtune.io.storage import Storage, fetch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 with one bucket; stopped by PID at the end."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="chromtune")
        yield f"endpoint_override=127.0.0.1:{port}&scheme=http"
    finally:
        proc.kill()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(params=["folder", "file-uri", "s3"])
def storage(request, tmp_path):
    if request.param == "folder":
        return Storage(str(tmp_path / "store"))
    if request.param == "file-uri":
        return Storage(f"file://{tmp_path / 'store'}")
    query = request.getfixturevalue("s3_endpoint")
    return Storage(f"s3://chromtune/{tmp_path.name}?{query}")


def test_round_trip(storage, tmp_path):
    assert storage.is_empty() and storage.read_text("a.json") is None
    storage.write_text("a.json", '{"x": 1}')
    assert storage.read_text("a.json") == '{"x": 1}' and not storage.is_empty()
    local = tmp_path / "selected"
    (local / "sub").mkdir(parents=True)
    (local / "best.pt").write_bytes(b"weights")
    (local / "sub" / "state.pt").write_bytes(b"state")
    storage.put_folder(local, "fold0-selected")
    assert sorted(storage.find(".pt")) == ["fold0-selected/best.pt", "fold0-selected/sub/state.pt"]
    assert storage.find(".pt", under="nowhere") == []
    child = storage.child("fold0-selected")
    assert child.exists("best.pt") and child.uri_of("best.pt") == storage.uri_of("fold0-selected", "best.pt")
    (local / "best.pt").write_bytes(b"newer")
    storage.put_folder(local, "fold0-selected")  # replaces what was there
    assert fetch(storage.uri_of("fold0-selected"), tmp_path / "cache").joinpath("best.pt").read_bytes() == b"newer"


def test_fetch_downloads_once_per_machine(s3_endpoint, tmp_path):
    storage = Storage(f"s3://chromtune/fetch-{tmp_path.name}?{s3_endpoint}")
    storage.write_text("data.txt", "first")
    location = storage.uri_of("data.txt")
    got = fetch(location, tmp_path / "cache")
    assert got.read_text() == "first" and str(got).startswith(str(tmp_path / "cache"))
    storage.write_text("data.txt", "second")
    assert fetch(location, tmp_path / "cache").read_text() == "first"  # cached, not downloaded again


def test_plain_paths_and_file_uris_are_not_copied(tmp_path):
    target = tmp_path / "x.h5"
    target.write_text("x")
    assert fetch(str(target)) == target
    assert fetch(f"file://{target}") == target
