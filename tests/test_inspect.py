"""chromtune inspect: summaries of real data set files, and one-line errors for damaged ones."""

from __future__ import annotations

import json
import re
import tracemalloc

import h5py
import numpy as np
import pytest

from chromtune.cli import main as cli_main
from chromtune.data.dataset import Dataset, write_dataset
from chromtune.data.labels import PackedLabels
from chromtune.data.summary import summarise
from conftest import random_dataset


def dataset(windows: bool = False, n_cells: int = 4, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    chromosomes = ["chr2", "chr10"]
    genome = {"chr2": rng.integers(0, 4, 2_000, dtype=np.uint8), "chr10": rng.integers(0, 4, 1_000, dtype=np.uint8)}
    starts = [np.arange(0, 1_801, 100), np.arange(0, 801, 100)]
    bin_chrom = np.repeat([0, 1], [len(s) for s in starts])
    ds = Dataset(
        chromosomes=chromosomes, bin_chrom=bin_chrom, bin_start=np.concatenate(starts),
        labels=(rng.random((len(bin_chrom), n_cells)) < 0.2).astype(np.uint8),
        cell_types=[f"type{j}" for j in range(n_cells)], expression=rng.random((n_cells, 3)).astype(np.float32),
        genes=["FOXA1", "GATA2", "SOX2"], bin_size=200, stride=100, context=600, genome=genome,
        attrs={"assembly": "mm10", "expression_transform": "arcsinh"},
    )
    if windows:
        ds.windows = ds.window_codes(np.arange(ds.n_bins)).copy()
        ds.genome, ds.bin_start = None, np.full(ds.n_bins, -1)
    return ds


def run(argv, capsys):
    capsys.readouterr()
    code = cli_main(["inspect", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("windows", [False, True])
def test_json_is_one_object_with_counts(tmp_path, capsys, windows):
    ds = dataset(windows=windows)
    write_dataset(tmp_path / "d.h5", ds, {"note": "x"})
    code, out, err = run([str(tmp_path / "d.h5"), "--json"], capsys)
    assert code == 0 and err == ""
    summary = json.loads(out)  # the whole of stdout is one JSON object
    assert isinstance(summary, dict)
    rows = ds.labels.tolist()
    assert summary["positives"] == {c: sum(r[j] for r in rows) for j, c in enumerate(ds.cell_types)}
    assert summary["positive_fraction"] == pytest.approx(sum(map(sum, rows)) / (len(rows) * len(ds.cell_types)))
    assert summary["n_bins"] == len(rows) == 28
    assert summary["cell_types"] == ds.cell_types and summary["n_cell_types"] == 4
    assert summary["genes"] == ["FOXA1", "GATA2", "SOX2"] and summary["n_genes"] == 3
    assert summary["chromosomes"] == ["chr2", "chr10"]
    assert summary["bins_per_chromosome"] == {"chr2": 19, "chr10": 9}
    assert (summary["bin_size"], summary["stride"], summary["context"]) == (200, 100, 600)
    assert summary["assembly"] == "mm10" and summary["expression_transform"] == "arcsinh"
    assert summary["source"] == ("windows" if windows else "genome")
    assert summary["provenance"] == {"note": "x"}


def test_human_summary(tmp_path, capsys):
    ds = dataset(n_cells=12)
    write_dataset(tmp_path / "d.h5", ds)
    code, out, _ = run([str(tmp_path / "d.h5")], capsys)
    assert code == 0
    assert "28" in out and "chr10 (9)" in out and "type0" in out and "12 in all" in out and "mm10" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def _truncated(path):
    write_dataset(path, dataset())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _mismatched(path):
    ds = dataset()
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "chromtune-dataset", "bin_size": 200, "stride": 100, "context": 600})
        f["chromosomes"] = np.array(ds.chromosomes, dtype=h5py.string_dtype())
        for chrom, codes in ds.genome.items():
            f[f"genome/{chrom}"] = codes
        f["bins/chrom"], f["bins/start"] = ds.bin_chrom, ds.bin_start
        f["labels"] = ds.labels[:, :3]  # one cell type short
        f["cell_types"] = np.array(ds.cell_types, dtype=h5py.string_dtype())
        f["expression"], f["genes"] = ds.expression, np.array(ds.genes, dtype=h5py.string_dtype())


def _not_hdf5(path):
    path.write_text("cell_type\tpeaks\n")


@pytest.mark.parametrize("damage,problem", [
    (_truncated, "truncated"),
    (_mismatched, "labels have shape (28, 3), expected (28, 4)"),
    (_not_hdf5, "unreadable"),
    (None, "no such data set file"),
])
@pytest.mark.parametrize("as_json", [False, True])
def test_damaged_files_are_one_line_errors(tmp_path, capsys, damage, problem, as_json):
    path = tmp_path / "d.h5"
    if damage is not None:
        damage(path)
    code, out, err = run([str(path)] + (["--json"] if as_json else []), capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chromtune: error: ")
    assert str(path) in lines[0] and problem in lines[0]


def test_summary_counts_positives_from_the_packed_bits_in_bounded_memory():
    rng = np.random.default_rng(1)
    n, n_cells = 1 << 20, 123
    packed = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    packed[:, -1] &= np.uint8(0xFE)  # bits past the last cell type are 0
    labels = PackedLabels(packed, n_cells)
    expected = sum(np.unpackbits(packed[s:s + 4096], axis=1, count=n_cells).sum(axis=0, dtype=np.int64)
                   for s in range(0, n, 4096))
    ds = random_dataset(n_chroms=1, n_cells=n_cells)
    ds.labels, ds.bin_chrom, ds.bin_start = labels, np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int64)
    tracemalloc.start()
    try:
        summary = summarise(ds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert list(summary["positives"].values()) == expected.tolist()
    assert summary["positive_fraction"] == pytest.approx(expected.sum() / (n * n_cells))
    assert summary["bins_per_chromosome"] == {"chr1": n}
    dense = n * n_cells
    assert peak < 8 * 2**20, (peak, dense)  # the dense matrix is 129 MB; one unpacked chunk of it 32 MB


def test_verification_shows_its_progress_in_a_log(tmp_path, capsys, monkeypatch):
    """Verifying reads the whole file: after 5 s (here at once) a line on stderr counts what was read,
    and the last line says all of it; stdout holds only the summary."""
    from chromtune import progress

    monkeypatch.setattr(progress, "FIRST_LINE_AFTER", 0.0)
    write_dataset(tmp_path / "d.h5", random_dataset(n_chroms=1, chrom_len=3_000_000, n_cells=4))
    code, out, err = run([str(tmp_path / "d.h5"), "--json"], capsys)
    assert code == 0 and json.loads(out)["checksums"]["status"] == "verified"
    lines = err.splitlines()
    assert lines and all(line.startswith(f"inspect {tmp_path / 'd.h5'} | ") for line in lines)
    last = re.fullmatch(r".* \| summarising \| ([\d,]+)/([\d,]+) kB \| (?:[\d,.]+ kB/s|[\d.,]+ s each)", lines[-1])
    assert last and last[1] == last[2] and int(last[2].replace(",", "")) >= 3_000  # the genome's 3 MB, at least
