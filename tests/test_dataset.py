"""The HDF5 data set file: round trip, window gathering and validation of damaged files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from chromtune.data.dataset import Dataset, DatasetError, open_dataset, write_dataset

BASES = np.array(list("ACGTN"))


def make_dataset(windows: bool = False, seed: int = 0) -> Dataset:
    """Two chromosomes, 300 bp and 170 bp, bins of 100 bp every 40 bp, 3 cell types, 2 genes."""
    rng = np.random.default_rng(seed)
    genome = {"chr1": rng.integers(0, 5, 300, dtype=np.uint8), "chr2": rng.integers(0, 5, 170, dtype=np.uint8)}
    starts1, starts2 = np.arange(0, 201, 40), np.arange(0, 71, 40)
    bin_chrom = np.r_[np.zeros(len(starts1)), np.ones(len(starts2))].astype(np.int64)
    ds = Dataset(
        chromosomes=["chr1", "chr2"], bin_chrom=bin_chrom, bin_start=np.r_[starts1, starts2].astype(np.int64),
        labels=(rng.random((len(bin_chrom), 3)) < 0.3).astype(np.uint8), cell_types=["a", "b", "c"],
        expression=rng.random((3, 2)).astype(np.float32), genes=["TF1", "TF2"],
        bin_size=100, stride=40, context=160, genome=genome, attrs={"assembly": "test1"},
    )
    if windows:
        ds.windows = ds.window_codes(np.arange(ds.n_bins)).copy()
        ds.genome, ds.bin_start = None, np.full(ds.n_bins, -1, dtype=np.int64)
    return ds


def write_by_hand(path, **override) -> None:
    """A data set file written with h5py directly; ``override`` replaces entries (None deletes)."""
    ds = make_dataset()
    entries = {
        "chromosomes": np.array(ds.chromosomes, dtype=h5py.string_dtype()),
        "genome/chr1": ds.genome["chr1"], "genome/chr2": ds.genome["chr2"],
        "bins/chrom": ds.bin_chrom.astype(np.int32), "bins/start": ds.bin_start,
        "labels": ds.labels, "cell_types": np.array(ds.cell_types, dtype=h5py.string_dtype()),
        "expression": ds.expression, "genes": np.array(ds.genes, dtype=h5py.string_dtype()),
    }
    entries.update(override)
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "chromtune-dataset", "format_version": 1, "bin_size": 100, "stride": 40,
                        "context": 160, "assembly": "x", "provenance": "{}"})
        for key, value in entries.items():
            if value is not None:
                f[key] = value


def assert_same(a: Dataset, b: Dataset) -> None:
    assert a.chromosomes == b.chromosomes and a.cell_types == b.cell_types and a.genes == b.genes
    assert (a.bin_size, a.stride, a.context) == (b.bin_size, b.stride, b.context)
    for name in ("bin_chrom", "bin_start", "labels", "expression"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    if a.genome is None:
        assert b.genome is None
        np.testing.assert_array_equal(a.windows, b.windows)
    else:
        assert list(a.genome) == list(b.genome)
        for chrom in a.genome:
            np.testing.assert_array_equal(a.genome[chrom], b.genome[chrom])


@pytest.mark.parametrize("windows", [False, True])
def test_round_trip_write_then_open(tmp_path, windows):
    ds = make_dataset(windows=windows)
    write_dataset(tmp_path / "d.h5", ds, {"source": "unit test", "n": 3})
    back = open_dataset(tmp_path / "d.h5")
    assert_same(ds, back)
    assert back.attrs["assembly"] == "test1"
    assert back.attrs["format"] == "chromtune-dataset"
    assert json.loads(back.attrs["provenance"]) == {"source": "unit test", "n": 3}
    np.testing.assert_array_equal(back.window_codes(np.arange(ds.n_bins)), ds.window_codes(np.arange(ds.n_bins)))


def test_window_codes_are_centred_on_the_bin_with_n_outside(tmp_path):
    ds = make_dataset()
    write_dataset(tmp_path / "d.h5", ds)
    ds = open_dataset(tmp_path / "d.h5")
    bins = np.arange(ds.n_bins)
    windows = ds.window_codes(bins[::-1])[::-1]
    assert windows.shape == (ds.n_bins, ds.context) and windows.dtype == np.uint8
    for i in bins:
        sequence = ds.genome[ds.chromosomes[ds.bin_chrom[i]]]
        first = ds.bin_start[i] + ds.bin_size // 2 - ds.context // 2
        expected = [sequence[p] if 0 <= p < len(sequence) else 4 for p in range(first, first + ds.context)]
        np.testing.assert_array_equal(windows[i], expected)
    assert (windows[0, :30] == 4).all()  # bin at 0: window starts 30 bp before the chromosome


def test_a_failed_write_leaves_the_previous_file_alone(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, make_dataset())
    before = path.read_bytes()
    broken = make_dataset(seed=1)
    del broken.genome["chr2"]
    with pytest.raises(KeyError):
        write_dataset(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_truncated_file(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, make_dataset())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        open_dataset(path)


@pytest.mark.parametrize("override,problem", [
    ({"labels": np.zeros((5, 3), np.uint8)}, "labels have shape"),
    ({"labels": np.zeros((8, 2), np.uint8)}, "labels have shape"),
    ({"expression": np.zeros((2, 2), np.float32)}, "expression has shape"),
    ({"bins/start": np.zeros(4, np.int64)}, "bins/start"),
    ({"cell_types": np.array(["a", "b", "a"], dtype=h5py.string_dtype())}, "cell type 'a' appears twice"),
    ({"genes": np.array(["TF1", "TF1"], dtype=h5py.string_dtype())}, "gene 'TF1' appears twice"),
    ({"labels": np.full((8, 3), 2, np.uint8)}, "other than 0 and 1"),
    ({"expression": np.array([[0, 1], [np.nan, 2], [3, 4]], np.float32)}, "NaN"),
    ({"expression": np.array([[0, 1], [np.inf, 2], [3, 4]], np.float32)}, "infinite"),
    ({"bins/chrom": np.full(8, 5, np.int32)}, "past the chromosome list"),
    ({"bins/start": np.full(8, 250, np.int64)}, "outside its chromosome"),
    ({"genome/chr2": np.full(170, 9, np.uint8)}, "codes outside 0..4"),
    ({"genes": None}, "missing 'genes'"),
    ({"genome/chr2": None}, "unreadable"),
])
def test_inconsistent_file_is_one_line_error(tmp_path, override, problem):
    path = tmp_path / "bad.h5"
    write_by_hand(path, **override)
    with pytest.raises(DatasetError) as err:
        open_dataset(path)
    assert problem in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_hand_written_file_without_damage_opens(tmp_path):
    write_by_hand(tmp_path / "ok.h5")
    assert_same(open_dataset(tmp_path / "ok.h5"), make_dataset())


def test_not_a_dataset(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="not a chromtune data set"):
        open_dataset(other)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="unreadable"):
        open_dataset(text)
    with pytest.raises(DatasetError, match="no such data set file"):
        open_dataset(tmp_path / "absent.h5")


def test_windows_of_the_wrong_length(tmp_path):
    ds = make_dataset(windows=True)
    ds.windows = ds.windows[:, :100]
    write_dataset(tmp_path / "w.h5", ds)
    with pytest.raises(DatasetError, match="windows have shape"):
        open_dataset(tmp_path / "w.h5")
