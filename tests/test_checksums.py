"""Data set files carry a digest per dataset; inspect verifies them, opening never hashes."""

from __future__ import annotations

import json
import tracemalloc

import h5py
import numpy as np
import pytest

from chromtune.cli import main as cli_main
from chromtune.data import checksums
from chromtune.data.checksums import DIGEST_ATTR, verify_digests
from chromtune.data.dataset import open_dataset, write_dataset
from chromtune.data.demo import write_demo
from conftest import assert_one_line_error, random_dataset, run_command, write_version_1

NAMES = {"chromosomes", "cell_types", "genes", "expression", "bins/chrom", "bins/start", "labels_packed"}


def genome_dataset():
    """Every large dataset holds at least 8 KiB: 2,973 bins x 64 cell types."""
    return random_dataset(n_cells=64, stride=20)


def windows_dataset():
    ds = genome_dataset()
    ds.windows = ds.window_codes(np.arange(ds.n_bins)).copy()
    ds.genome, ds.bin_start = None, np.full(ds.n_bins, -1)
    return ds


def inspect(path, capsys, *flags):
    return run_command(cli_main, ["inspect", path, *flags], capsys)


@pytest.mark.parametrize("windows", [False, True])
def test_every_dataset_written_has_a_digest_and_an_untouched_file_passes(tmp_path, capsys, windows):
    path = tmp_path / "d.h5"
    write_dataset(path, windows_dataset() if windows else genome_dataset())
    expected = NAMES | ({"windows"} if windows else {"sequence", "sequence_starts"})
    assert set(verify_digests(path)) == expected
    code, out, err = inspect(path, capsys, "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["checksums"] == {"status": "verified", "algorithm": "sha256",
                                            "datasets": sorted(expected)}
    code, out, _ = inspect(path, capsys)
    assert code == 0 and f"{len(expected)} datasets match their sha256 digests" in out


def test_the_demo_file_has_digests_on_every_dataset(tmp_path):
    path = write_demo(tmp_path / "demo.h5")
    with h5py.File(path, "r") as f:
        datasets = []
        f.visititems(lambda name, node: datasets.append(name) if isinstance(node, h5py.Dataset) else None)
    assert sorted(verify_digests(path)) == sorted(datasets)


def flip(path, name: str, size: int = 4096) -> None:
    """Invert ``size`` bytes in the middle of dataset ``name``'s stored bytes, in place."""
    with h5py.File(path, "r") as f:
        dataset = f[name]
        assert dataset.chunks is None and dataset.compression is None
        offset, nbytes = dataset.id.get_offset(), dataset.id.get_storage_size()
    assert nbytes >= 2 * size, (name, nbytes)
    with open(path, "r+b") as raw:
        raw.seek(offset + nbytes // 2 - size // 2)
        block = raw.read(size)
        raw.seek(offset + nbytes // 2 - size // 2)
        raw.write(bytes(b ^ 0xFF for b in block))


@pytest.mark.parametrize("windows,name", [(False, "sequence"), (False, "labels_packed"), (False, "bins/start"),
                                          (True, "windows")])
def test_4kib_flipped_in_a_dataset_fails_inspect_naming_it(tmp_path, capsys, windows, name):
    path = tmp_path / "d.h5"
    write_dataset(path, windows_dataset() if windows else genome_dataset())
    flip(path, name)
    for flags in ((), ("--json",)):
        code, out, err = inspect(path, capsys, *flags)
        assert out == ""
        assert_one_line_error(code, err, str(path), f"dataset '{name}'", "does not match the digest")


def test_labels_flipped_within_the_bits_open_but_fail_inspect(tmp_path, capsys):
    """A change validation cannot see (every bit is a valid label) is still found by the digest."""
    path = tmp_path / "d.h5"
    write_dataset(path, genome_dataset())
    flip(path, "labels_packed")
    open_dataset(path)  # opens: 0/1 labels, shapes agree
    code, out, _ = inspect(path, capsys, "--no-verify", "--json")
    assert code == 0 and json.loads(out)["checksums"] == {"status": "not checked"}
    assert_one_line_error(*inspect(path, capsys)[::2], "labels_packed")


def strip_digests(path) -> None:
    """As a format_version 2 writer before digests left the file."""
    with h5py.File(path, "r+") as f:
        f.visititems(lambda name, node: node.attrs.__delitem__(DIGEST_ATTR) if isinstance(node, h5py.Dataset) else None)


@pytest.mark.parametrize("older", [strip_digests, None])
def test_files_without_digests_are_reported_as_such(tmp_path, capsys, older):
    path = tmp_path / "d.h5"
    if older is None:
        write_version_1(path, random_dataset())
    else:
        write_dataset(path, random_dataset())
        older(path)
    code, out, err = inspect(path, capsys, "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["checksums"] == {"status": "none"}
    code, out, _ = inspect(path, capsys)
    assert code == 0 and "no checksums" in out


def test_opening_never_hashes(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    write_dataset(path, random_dataset())

    def refuse(*args, **kwargs):
        raise AssertionError("open_dataset hashed the file")

    monkeypatch.setattr(checksums, "_file_digest", refuse)
    monkeypatch.setattr(checksums, "_hasher", refuse)
    assert open_dataset(path).n_bins > 0


def test_verification_reads_in_bounded_memory(tmp_path):
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        target = checksums.DigestedDataset(f, "labels_packed", (1 << 21, 16), np.uint8)  # 32 MiB
        for _ in range(8):
            target.write(rng.integers(0, 256, (1 << 18, 16), dtype=np.uint8))
        target.close()
    tracemalloc.start()
    try:
        assert verify_digests(path) == ["labels_packed"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, peak


def test_a_dataset_written_short_or_past_its_end_is_refused(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        target = checksums.DigestedDataset(f, "a", (10,), np.int64)
        target.write(np.arange(6))
        with pytest.raises(ValueError, match="6 of 10 rows"):
            target.close()
        with pytest.raises(ValueError, match="does not fit"):
            target.write(np.arange(6))
