"""Import of ChromDragoNN's released format, from fixtures written with joblib.dump in that exact format."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest

from chromtune.cli import main as cli_main
from chromtune.data.dataset import open_dataset
from chromtune.data.reference import import_chromdragonn
from chromtune.io.chromdragonn import packed_onehot_to_codes
from chromtune.errors import UserError

WINDOW = 1000


def onehot_windows(rng, n: int, length: int = WINDOW) -> np.ndarray:
    """(n, length, 4) uint8 one-hot, A,C,G,T channels, with some all-zero (N) columns."""
    codes = rng.integers(0, 4, (n, length))
    onehot = (codes[..., None] == np.arange(4)).astype(np.uint8)
    onehot[rng.random((n, length)) < 0.05] = 0
    return onehot


def write_reference(folder, n_cells: int, rows: dict[str, int], seed: int = 0, names: bool = False,
                    label_width: int | None = None, genes: int = 6):
    """The reference layout: dnase.chr*.packbit.joblib per chromosome and an rna_quants joblib."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for chrom, n in rows.items():
        onehot = onehot_windows(rng, n)
        labels = (rng.random((n, n_cells)) < 0.3).astype(np.uint8)
        packed = np.packbits(labels, axis=1)
        if label_width is not None:
            packed = np.zeros((n, label_width), np.uint8)
        joblib.dump({"features": np.packbits(onehot, axis=-1), "labels": packed, "num_cell_types": n_cells,
                     "example_metadata": [f"{chrom}:{i}-{i + WINDOW}" for i in range(n)],
                     "label_metadata": [f"task{j}" for j in range(n_cells)] if names else None},
                    folder / f"dnase.{chrom}.packbit.joblib")
        truth[chrom] = (onehot, labels)
    expression = rng.gamma(1.0, 1.0, (n_cells, genes))
    rna = {"rna_quants": expression}
    if names:
        rna.update(genes=[f"G{k}" for k in range(genes)], tasks=[f"task{j}" for j in range(n_cells)])
    joblib.dump(rna, folder.parent / "rna_quants.joblib")
    return truth, expression, folder.parent / "rna_quants.joblib"


def test_round_trip_windows_labels_and_order(tmp_path):
    rows = {"chrX": 3, "chr10": 4, "chr2": 5}  # natural order: chr2, chr10, chrX
    truth, expression, rna = write_reference(tmp_path / "dnase", n_cells=11, rows=rows)
    ds, provenance = import_chromdragonn(tmp_path / "dnase", rna)
    assert ds.chromosomes == ["chr2", "chr10", "chrX"]
    assert ds.windows.shape == (12, WINDOW) and ds.genome is None
    starts = np.concatenate([np.arange(rows[c]) for c in ds.chromosomes]) + 400  # central 200 bp of each window
    np.testing.assert_array_equal(ds.bin_start, starts)
    np.testing.assert_array_equal(ds.bin_chrom, [0] * 5 + [1] * 4 + [2] * 3)
    onehot = np.concatenate([truth[c][0] for c in ds.chromosomes])
    labels = np.concatenate([truth[c][1] for c in ds.chromosomes])
    decoded = (ds.windows[..., None] == np.arange(4)).astype(np.uint8)  # code 4 (N) -> all-zero column
    np.testing.assert_array_equal(decoded, onehot)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_allclose(ds.expression, expression.astype(np.float32))
    assert ds.cell_types == [f"cell_{j:03d}" for j in range(11)]
    assert ds.genes == [f"gene_{k:04d}" for k in range(6)]
    assert ds.attrs["expression_transform"] == "as-imported"
    assert provenance["bins_per_chromosome"] == {"chr2": 5, "chr10": 4, "chrX": 3}


def test_more_than_127_cell_types(tmp_path):
    truth, _, rna = write_reference(tmp_path / "dnase", n_cells=130, rows={"chr1": 6, "chr21": 2}, seed=2)
    ds, _ = import_chromdragonn(tmp_path / "dnase", rna)
    assert ds.labels.shape == (8, 130)
    np.testing.assert_array_equal(ds.labels, np.concatenate([truth["chr1"][1], truth["chr21"][1]]))
    assert ds.labels[:, 128:].sum() > 0  # the cell types past int8 carry their own labels


def test_names_from_the_files(tmp_path):
    _, _, rna = write_reference(tmp_path / "dnase", n_cells=9, rows={"chr1": 2}, names=True)
    ds, _ = import_chromdragonn(tmp_path / "dnase", rna)
    assert ds.cell_types == [f"task{j}" for j in range(9)]
    assert ds.genes == [f"G{k}" for k in range(6)]


def test_names_that_disagree_between_files_are_an_error(tmp_path):
    _, expression, rna = write_reference(tmp_path / "dnase", n_cells=9, rows={"chr1": 2}, names=True)
    joblib.dump({"rna_quants": expression, "tasks": [f"other{j}" for j in range(9)]}, rna)
    with pytest.raises(UserError, match="tasks"):
        import_chromdragonn(tmp_path / "dnase", rna)


def test_packed_byte_decoding():
    onehot = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0]], np.uint8)
    packed = np.packbits(onehot, axis=-1)[None]  # (1, 6, 1)
    np.testing.assert_array_equal(packed_onehot_to_codes(packed), [[0, 1, 2, 3, 4, 4]])


def test_cli_import_then_inspect(tmp_path, capsys):
    _, _, rna = write_reference(tmp_path / "dnase", n_cells=5, rows={"chr1": 3, "chrY": 2})
    out = tmp_path / "ref.h5"
    assert cli_main(["import-chromdragonn", "--dnase", str(tmp_path / "dnase"), "--rna", str(rna),
                     "--assembly", "hg19", "--out", str(out)]) == 0
    ds = open_dataset(out)
    capsys.readouterr()
    assert cli_main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source"] == "windows" and summary["context"] == WINDOW
    assert summary["chromosomes"] == ["chr1", "chrY"] and summary["assembly"] == "hg19"
    assert summary["positives"] == {c: int(ds.labels[:, j].sum()) for j, c in enumerate(ds.cell_types)}
    assert summary["checksums"]["status"] == "verified" and "windows" in summary["checksums"]["datasets"]
    assert sorted(p.name for p in (tmp_path / "dnase").iterdir()) == ["dnase.chr1.packbit.joblib",
                                                                      "dnase.chrY.packbit.joblib"]


@pytest.mark.parametrize("case,problem", [
    ("wrong label width", "bytes wide"),
    ("no files", "no dnase.chr"),
    ("missing folder", "no such folder"),
    ("missing rna", "no such file"),
    ("nan rna", "NaN"),
    ("rna without rna_quants", "rna_quants"),
    ("not joblib", "not a readable joblib file"),
    ("rows disagree", "'labels' has shape"),
])
def test_bad_reference_input_is_one_line_exit_2(tmp_path, capsys, case, problem):
    folder = tmp_path / "dnase"
    width = 3 if case == "wrong label width" else None
    _, expression, rna = write_reference(folder, n_cells=10, rows={"chr1": 3, "chr2": 2}, label_width=width)
    if case == "no files":
        for p in folder.iterdir():
            p.unlink()
    elif case == "missing folder":
        folder = tmp_path / "absent"
    elif case == "missing rna":
        rna.unlink()
    elif case == "nan rna":
        expression[1, 1] = np.nan
        joblib.dump({"rna_quants": expression}, rna)
    elif case == "rna without rna_quants":
        joblib.dump({"quants": expression}, rna)
    elif case == "not joblib":
        (folder / "dnase.chr2.packbit.joblib").write_text("not a pickle")
    elif case == "rows disagree":
        content = joblib.load(folder / "dnase.chr2.packbit.joblib")
        content["labels"] = content["labels"][:1]
        joblib.dump(content, folder / "dnase.chr2.packbit.joblib")
    out = tmp_path / "out.h5"
    out.write_bytes(b"earlier import")
    capsys.readouterr()
    code = cli_main(["import-chromdragonn", "--dnase", str(folder), "--rna", str(rna), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("chromtune: error: ") and problem in err[0], err
    assert out.read_bytes() == b"earlier import"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["dnase", "out.h5"] + (["rna_quants.joblib"] if case != "missing rna" else []))


def test_n_rule_on_stored_windows_and_coordinates_from_metadata(tmp_path):
    truth, _, rna = write_reference(tmp_path / "dnase", n_cells=9, rows={"chr1": 6, "chr2": 3}, seed=4)
    onehot, labels = truth["chr1"]
    onehot[1, 400:600] = 0          # core wholly N: dropped
    onehot[2, 400:501] = 0          # core 101/200 N: dropped
    onehot[3, 400:500] = 0          # core exactly half N: kept
    onehot[3, 500:600] = [1, 0, 0, 0]
    onehot[4, :400] = 0             # N only in the flank: kept
    onehot[4, 400:600] = [0, 0, 1, 0]
    content = joblib.load(tmp_path / "dnase/dnase.chr1.packbit.joblib")
    content["features"] = np.packbits(onehot, axis=-1)
    content["example_metadata"] = [f"chr1:{1000 * i}-{1000 * i + WINDOW}" for i in range(6)]
    joblib.dump(content, tmp_path / "dnase/dnase.chr1.packbit.joblib")
    ds, provenance = import_chromdragonn(tmp_path / "dnase", rna)
    core = onehot[:, 400:600].sum(axis=2) == 0  # an independent count of N in each core
    keep = core.sum(axis=1) <= 100
    assert keep.tolist() == [True, False, False, True, True, True]
    np.testing.assert_array_equal(ds.labels[:4], labels[keep])
    np.testing.assert_array_equal(ds.bin_start[:4], 1000 * np.flatnonzero(keep) + 400)
    assert provenance["bins_dropped_for_n"] == {"chr1": 2, "chr2": 0}
    assert provenance["coordinates"] == "example_metadata"
    strict, _ = import_chromdragonn(tmp_path / "dnase", rna, max_n_fraction=0.0)
    clean = [(w[:, 400:600].sum(axis=2) == 0).sum(axis=1) == 0 for w in (onehot, truth["chr2"][0])]
    assert strict.n_bins == sum(int(c.sum()) for c in clean)


def test_metadata_without_coordinates_leaves_starts_unknown(tmp_path):
    _, _, rna = write_reference(tmp_path / "dnase", n_cells=5, rows={"chr3": 4}, seed=6)
    content = joblib.load(tmp_path / "dnase/dnase.chr3.packbit.joblib")
    content["example_metadata"] = [{"id": i} for i in range(4)]
    joblib.dump(content, tmp_path / "dnase/dnase.chr3.packbit.joblib")
    ds, provenance = import_chromdragonn(tmp_path / "dnase", rna)
    assert (ds.bin_start == -1).all() and provenance["coordinates"] == "unknown"


def test_metadata_on_another_chromosome_is_one_line(tmp_path):
    _, _, rna = write_reference(tmp_path / "dnase", n_cells=5, rows={"chr3": 4}, seed=6)
    content = joblib.load(tmp_path / "dnase/dnase.chr3.packbit.joblib")
    content["example_metadata"] = [f"chr4:{i}-{i + WINDOW}" for i in range(4)]
    joblib.dump(content, tmp_path / "dnase/dnase.chr3.packbit.joblib")
    with pytest.raises(UserError, match="places a window on chr4"):
        import_chromdragonn(tmp_path / "dnase", rna)
