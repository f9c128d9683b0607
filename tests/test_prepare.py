"""chromtune prepare: real FASTA, peak files, sample sheet and expression table written in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyfaidx
import pytest

from chromtune.cli import main as cli_main
from chromtune.data.dataset import open_dataset
from chromtune.data.prepare import covered_before, merge_intervals, positive_bins
from chromtune.io.fasta import encode
from chromtune.io.peaks import read_peaks

CHROMS = {"chr1": 5_230, "chr2": 3_011, "chr3": 2_400}
CELLS = ["K562", "HepG2", "GM12878"]
GENES = ["CTCF", "GATA1", "HNF4A", "SPI1", "MYC"]


# -- input builders ---------------------------------------------------------------------------
def write_fasta(path: Path, sequences: dict[str, str], width: int = 60) -> None:
    text = "".join(f">{name} some description\n" + "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
                   for name, seq in sequences.items())
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def random_sequences(seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGTACGTACGTacgtNRY"))
    return {c: "".join(rng.choice(letters, n)) for c, n in CHROMS.items()}


def random_peaks(seed: int, chroms=("chr1", "chr2"), n: int = 12) -> list[tuple[str, int, int]]:
    """Peaks of 50-700 bp, some overlapping, some touching chromosome ends (never past them)."""
    rng = np.random.default_rng(seed)
    peaks = []
    for chrom in chroms:
        length = CHROMS[chrom]
        for _ in range(n):
            size = int(rng.integers(50, 700))
            start = int(rng.integers(0, length - size))
            peaks.append((chrom, start, start + size))
        peaks.append((chrom, length - 150, length))
        peaks.append((chrom, 0, 130))
    rng.shuffle(peaks)
    return peaks


def write_peaks(path: Path, peaks, rename=lambda c: c, narrow: bool = True) -> None:
    lines = ["track name=peaks"] if narrow else []
    for i, (chrom, start, end) in enumerate(peaks):
        extra = f"\tpeak{i}\t100\t.\t5.0\t3.2\t2.1\t{(end - start) // 2}" if narrow else ""
        lines.append(f"{rename(chrom)}\t{start}\t{end}{extra}")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def tpm_table(seed: int = 0) -> np.ndarray:
    """(cells, genes) TPM."""
    rng = np.random.default_rng(seed)
    return np.round(rng.gamma(1.0, 20.0, (len(CELLS), len(GENES))), 3)


def write_expression(path: Path, tpm: np.ndarray, genes_by_cells: bool = True, sep: str = "\t") -> None:
    if genes_by_cells:
        rows = [sep.join(["gene"] + CELLS)] + [sep.join([g] + [str(float(v)) for v in tpm[:, k]]) for k, g in enumerate(GENES)]
    else:
        rows = [sep.join(["cell_type"] + GENES)] + [sep.join([c] + [str(float(v)) for v in tpm[j]]) for j, c in enumerate(CELLS)]
    data = ("\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def make_inputs(root: Path, *, fasta_name: str = "genome.fa", peak_suffix: str = ".narrowPeak",
                rename_fasta=lambda c: c, rename_peaks=lambda c: c, expression_name: str = "tpm.tsv",
                genes_by_cells: bool = True, n_peaks: int = 12) -> dict:
    """Write a complete input folder; return the paths and the truth behind them."""
    root.mkdir(parents=True, exist_ok=True)
    sequences = random_sequences()
    write_fasta(root / fasta_name, {rename_fasta(c): s for c, s in sequences.items()})
    peaks = {cell: random_peaks(seed=10 + j, n=n_peaks) for j, cell in enumerate(CELLS)}
    (root / "peaks").mkdir(exist_ok=True)
    sheet = ["cell_type\tpeaks\tnote"]
    for j, cell in enumerate(CELLS):
        name = f"peaks/{cell}{peak_suffix}"
        write_peaks(root / name, peaks[cell], rename=rename_peaks, narrow=j != 1)
        sheet.append(f"{cell}\t{name}\tfrom ENCODE")
    (root / "samples.tsv").write_text("\n".join(sheet) + "\n")
    tpm = tpm_table()
    write_expression(root / expression_name, tpm, genes_by_cells, sep="," if ".csv" in expression_name else "\t")
    return {"genome": root / fasta_name, "samples": root / "samples.tsv", "expression": root / expression_name,
            "sequences": sequences, "peaks": peaks, "tpm": tpm}


def independent_labels(peaks: dict, chroms: list[str], bin_size: int = 200, stride: int = 50):
    """A plain per-bin loop: (chrom, start) per bin and the (bins, cells) labels."""
    keys, rows = [], []
    for chrom in chroms:
        length = CHROMS[chrom]
        covered = {}
        for cell in CELLS:
            mask = np.zeros(length, dtype=bool)
            for c, s, e in peaks[cell]:
                if c == chrom:
                    mask[s:e] = True
            covered[cell] = mask
        start = 0
        while start + bin_size <= length:
            keys.append((chrom, start))
            rows.append([1 if 2 * int(covered[cell][start:start + bin_size].sum()) > bin_size else 0 for cell in CELLS])
            start += stride
    return keys, np.asarray(rows, dtype=np.uint8)


def prepare(inputs: dict, out: Path, *extra: str) -> int:
    return cli_main(["prepare", "--genome", str(inputs["genome"]), "--samples", str(inputs["samples"]),
                     "--expression", str(inputs["expression"]), "--out", str(out), *extra])


def inspect_json(path: Path, capsys) -> dict:
    capsys.readouterr()
    assert cli_main(["inspect", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def bin_keys(ds) -> list[tuple[str, int]]:
    return list(zip(ds.chrom_of_bins().tolist(), ds.bin_start.tolist()))


# -- the "done when" -----------------------------------------------------------------
def test_prepare_then_inspect_reports_independently_counted_positives(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "data.h5"
    assert prepare(inputs, out, "--assembly", "hg38") == 0
    keys, expected = independent_labels(inputs["peaks"], ["chr1", "chr2"])
    summary = inspect_json(out, capsys)
    assert summary["positives"] == {cell: int(expected[:, j].sum()) for j, cell in enumerate(CELLS)}
    assert summary["n_bins"] == len(keys)
    assert summary["cell_types"] == CELLS
    assert summary["genes"] == GENES
    assert summary["chromosomes"] == ["chr1", "chr2"]
    assert (summary["bin_size"], summary["stride"], summary["context"]) == (200, 50, 1000)
    assert summary["assembly"] == "hg38" and summary["source"] == "genome"
    assert summary["positive_fraction"] == pytest.approx(expected.mean())
    assert all(v > 0 for v in summary["positives"].values())
    assert summary["checksums"]["status"] == "verified"  # written as prepare streamed each dataset out
    assert set(summary["checksums"]["datasets"]) == {"sequence", "sequence_starts", "bins/chrom", "bins/start",
                                                     "labels_packed", "chromosomes", "cell_types", "expression",
                                                     "genes"}


def test_prepared_labels_bins_and_sequence_match_a_plain_loop(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "data.h5"
    assert prepare(inputs, out) == 0
    ds = open_dataset(out)
    keys, expected = independent_labels(inputs["peaks"], ["chr1", "chr2"])
    assert bin_keys(ds) == keys
    np.testing.assert_array_equal(ds.labels, expected)
    assert sorted(ds.genome) == ["chr1", "chr2"]  # only the chromosomes used
    for chrom in ds.chromosomes:
        np.testing.assert_array_equal(ds.genome[chrom], encode(inputs["sequences"][chrom]))
    # a window in the middle of chr1: centred on the bin
    i = keys.index(("chr1", 2000))
    window = ds.window_codes(np.array([i]))[0]
    np.testing.assert_array_equal(window, encode(inputs["sequences"]["chr1"][2000 + 100 - 500:2000 + 100 + 500]))
    np.testing.assert_allclose(ds.expression, np.log1p(inputs["tpm"]).astype(np.float32), rtol=1e-6)
    provenance = json.loads(ds.attrs["provenance"])
    assert provenance["genome"] == str(inputs["genome"].resolve())
    assert provenance["peaks"]["HepG2"] == str((tmp_path / "in/peaks/HepG2.narrowPeak").resolve())
    assert provenance["options"]["stride"] == 50 and provenance["transform"] == "log1p"


def test_last_bin_ends_at_or_before_the_chromosome_end(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "data.h5"
    assert prepare(inputs, out, "--bin-size", "300", "--stride", "70", "--context", "500", "--chroms", "chr1,chr3") == 0
    ds = open_dataset(out)
    assert ds.chromosomes == ["chr1", "chr3"]
    for k, chrom in enumerate(ds.chromosomes):
        starts = ds.bin_start[ds.bin_chrom == k]
        assert starts[0] == 0 and (np.diff(starts) == 70).all()
        assert starts[-1] + 300 <= CHROMS[chrom] < starts[-1] + 70 + 300


def test_chr_and_plain_names_match_across_fasta_and_peaks(tmp_path):
    plain = make_inputs(tmp_path / "plain")
    assert prepare(plain, tmp_path / "plain.h5") == 0
    mixed = make_inputs(tmp_path / "mixed", rename_fasta=lambda c: c[3:])  # FASTA "1", peaks "chr1"
    assert prepare(mixed, tmp_path / "mixed.h5") == 0
    reverse = make_inputs(tmp_path / "rev", rename_peaks=lambda c: c[3:])  # FASTA "chr1", peaks "1"
    assert prepare(reverse, tmp_path / "rev.h5", "--chroms", "1,2") == 0
    a, b, c = (open_dataset(tmp_path / f"{n}.h5") for n in ("plain", "mixed", "rev"))
    assert b.chromosomes == ["1", "2"]  # stored under the FASTA's names
    assert c.chromosomes == ["chr1", "chr2"]
    for other in (b, c):
        np.testing.assert_array_equal(a.labels, other.labels)
        np.testing.assert_array_equal(a.bin_start, other.bin_start)


def test_gzipped_inputs_give_the_same_data_set(tmp_path):
    plain = make_inputs(tmp_path / "plain")
    gz = make_inputs(tmp_path / "gz", fasta_name="genome.fa.gz", peak_suffix=".narrowPeak.gz",
                     expression_name="tpm.tsv.gz")
    assert prepare(plain, tmp_path / "plain.h5") == 0
    assert prepare(gz, tmp_path / "gz.h5") == 0
    a, b = open_dataset(tmp_path / "plain.h5"), open_dataset(tmp_path / "gz.h5")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.expression, b.expression)
    for chrom in a.chromosomes:
        np.testing.assert_array_equal(a.genome[chrom], b.genome[chrom])


def test_both_expression_orientations_and_csv(tmp_path):
    inputs = make_inputs(tmp_path / "a", genes_by_cells=True)
    transposed = make_inputs(tmp_path / "b", genes_by_cells=False, expression_name="tpm.csv")
    assert prepare(inputs, tmp_path / "a.h5", "--transform", "none") == 0
    assert prepare(transposed, tmp_path / "b.h5", "--transform", "none") == 0
    a, b = open_dataset(tmp_path / "a.h5"), open_dataset(tmp_path / "b.h5")
    assert a.genes == b.genes == GENES
    np.testing.assert_allclose(a.expression, inputs["tpm"].astype(np.float32))
    np.testing.assert_array_equal(a.expression, b.expression)


def test_cell_types_follow_the_sheet_order_not_the_table(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    sheet = inputs["samples"].read_text().splitlines()
    inputs["samples"].write_text("\n".join([sheet[0], sheet[3], sheet[1]]) + "\n")  # GM12878, K562
    assert prepare(inputs, tmp_path / "d.h5", "--transform", "none") == 0
    ds = open_dataset(tmp_path / "d.h5")
    assert ds.cell_types == ["GM12878", "K562"]
    np.testing.assert_allclose(ds.expression, inputs["tpm"][[2, 0]].astype(np.float32))
    _, expected = independent_labels(inputs["peaks"], ["chr1", "chr2"])
    np.testing.assert_array_equal(ds.labels, expected[:, [2, 0]])


def test_tfs_restrict_and_order_the_genes(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    tfs = tmp_path / "tfs.txt"
    tfs.write_text("# TFs\nSPI1\nCTCF\n\nNOT_A_GENE\nCTCF\n")
    assert prepare(inputs, tmp_path / "d.h5", "--tfs", str(tfs), "--transform", "none") == 0
    assert "NOT_A_GENE" in capsys.readouterr().err
    ds = open_dataset(tmp_path / "d.h5")
    assert ds.genes == ["SPI1", "CTCF"]
    np.testing.assert_allclose(ds.expression, inputs["tpm"][:, [3, 0]].astype(np.float32))


@pytest.mark.parametrize("transform,function", [("log1p", np.log1p), ("arcsinh", np.arcsinh), ("none", lambda x: x)])
def test_expression_transforms(tmp_path, transform, function):
    inputs = make_inputs(tmp_path / "in")
    assert prepare(inputs, tmp_path / "d.h5", "--transform", transform) == 0
    ds = open_dataset(tmp_path / "d.h5")
    assert ds.attrs["expression_transform"] == transform
    assert ds.expression.dtype == np.float32
    np.testing.assert_allclose(ds.expression, function(inputs["tpm"]).astype(np.float32), rtol=1e-6)


def test_positives_only_keeps_every_positive_and_seeded_negatives(tmp_path):
    inputs = make_inputs(tmp_path / "in", n_peaks=2)
    every = ("--chroms", "chr1,chr2,chr3")  # chr3 has no peaks: negatives come from it too
    assert prepare(inputs, tmp_path / "all.h5", *every) == 0
    full = open_dataset(tmp_path / "all.h5")
    runs = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert prepare(inputs, tmp_path / f"{name}.h5", "--positives-only", "--negatives-ratio", "1.5",
                       "--seed", seed, *every) == 0
        runs[name] = open_dataset(tmp_path / f"{name}.h5")
    full_keys = bin_keys(full)
    full_labels, a_labels = np.asarray(full.labels), np.asarray(runs["a"].labels)
    positive_keys = {k for k, row in zip(full_keys, full_labels) if row.any()}
    a = runs["a"]
    keys_a = bin_keys(a)
    positive_rows = a_labels.any(axis=1)
    assert {k for k, p in zip(keys_a, positive_rows) if p} == positive_keys
    assert (~positive_rows).sum() == round(1.5 * len(positive_keys))
    assert len(set(keys_a)) == len(keys_a) and keys_a == sorted(keys_a, key=full_keys.index)
    # each kept bin carries its labels from the full data set
    lookup = dict(zip(full_keys, full_labels.tolist()))
    assert all(lookup[k] == row for k, row in zip(keys_a, a_labels.tolist()))
    assert keys_a == bin_keys(runs["b"])
    assert keys_a != bin_keys(runs["c"])
    assert {c for c, _ in keys_a} == {"chr1", "chr2", "chr3"}
    assert json.loads(a.attrs["provenance"])["sampled_negatives"] == round(1.5 * len(positive_keys))


def test_positives_only_with_too_few_negatives_keeps_them_all(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    assert prepare(inputs, tmp_path / "d.h5", "--positives-only", "--negatives-ratio", "1000") == 0
    assert "only" in capsys.readouterr().err
    _, expected = independent_labels(inputs["peaks"], ["chr1", "chr2"])
    assert open_dataset(tmp_path / "d.h5").n_bins == len(expected)


@pytest.mark.parametrize("indexed", [False, True])
def test_input_folder_is_left_unchanged(tmp_path, indexed):
    inputs = make_inputs(tmp_path / "in")
    if indexed:  # a samtools-style index beside the FASTA: read through pyfaidx, never rewritten
        pyfaidx.Fasta(str(inputs["genome"]), indexname=str(tmp_path / "genome.fa.fai")).close()
        shutil.move(tmp_path / "genome.fa.fai", tmp_path / "in/genome.fa.fai")

    def snapshot():
        return {p.relative_to(tmp_path / "in"): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted((tmp_path / "in").rglob("*")) if p.is_file()}

    before = snapshot()
    assert prepare(inputs, tmp_path / "out" / "d.h5") == 0
    assert snapshot() == before
    assert len(list((tmp_path / "in").rglob("*.fai"))) == int(indexed)
    keys, expected = independent_labels(inputs["peaks"], ["chr1", "chr2"])
    np.testing.assert_array_equal(open_dataset(tmp_path / "out" / "d.h5").labels, expected)


def test_peaks_past_the_chromosome_end_are_clipped(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    peaks = inputs["peaks"]["K562"] + [("chr2", CHROMS["chr2"] - 120, CHROMS["chr2"] + 500)]
    write_peaks(tmp_path / "in/peaks/K562.narrowPeak", peaks)
    assert prepare(inputs, tmp_path / "d.h5") == 0
    ds = open_dataset(tmp_path / "d.h5")
    clipped = {**inputs["peaks"], "K562": inputs["peaks"]["K562"] + [("chr2", CHROMS["chr2"] - 120, CHROMS["chr2"])]}
    _, expected = independent_labels(clipped, ["chr1", "chr2"])
    np.testing.assert_array_equal(ds.labels, expected)
    assert json.loads(ds.attrs["provenance"])["peaks_clipped_at_chromosome_end"] == 1


def test_irregular_peak_files_read_like_regular_ones(tmp_path):
    regular = tmp_path / "regular.bed"
    regular.write_text("chr1\t10\t50\tp1\nchr2\t5\t9\tp2\nchr1\t70\t90\tp3\n")
    irregular = tmp_path / "irregular.bed"  # comments mid-file, spaces, ragged columns, CRLF
    irregular.write_bytes(b"# header\r\nbrowser position chr1\r\nchr1 10 50\r\n\r\n# note\r\n"
                          b"chr2\t5\t9\tp2\t0\t.\r\nchr1\t70\t90\r\n")
    a, b = read_peaks(regular), read_peaks(irregular)
    assert sorted(a) == sorted(b) == ["chr1", "chr2"]
    for chrom in a:
        np.testing.assert_array_equal(a[chrom].starts, b[chrom].starts)
        np.testing.assert_array_equal(a[chrom].ends, b[chrom].ends)
    np.testing.assert_array_equal(a["chr1"].lines, [1, 3])
    np.testing.assert_array_equal(b["chr1"].lines, [3, 7])


# -- interval arithmetic against brute force --------------------------------------------------
def test_merge_and_positive_bins_match_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(200):
        length = int(rng.integers(150, 3000))
        n = int(rng.integers(0, 15))
        starts = rng.integers(0, length, n)
        ends = np.minimum(starts + rng.integers(1, 600, n), length)
        bin_size, stride = int(rng.integers(20, 300)), int(rng.integers(1, 120))
        mask = np.zeros(length, dtype=bool)
        for s, e in zip(starts, ends):
            mask[s:e] = True
        ms, me = merge_intervals(starts, ends)
        merged_mask = np.zeros(length, dtype=bool)
        for s, e in zip(ms, me):
            merged_mask[s:e] = True
        np.testing.assert_array_equal(mask, merged_mask)
        assert (ms[1:] > me[:-1]).all()
        n_bins = max(0, (length - bin_size) // stride + 1)
        expected = [i for i in range(n_bins) if 2 * mask[i * stride:i * stride + bin_size].sum() > bin_size]
        np.testing.assert_array_equal(positive_bins(ms, me, n_bins, bin_size, stride), expected)
        x = rng.integers(0, length + 1, 20)
        np.testing.assert_array_equal(covered_before(x, ms, me), [mask[:v].sum() for v in x])


# -- bad input --------------------------------------------------------------------------------
def _break(kind: str, inputs: dict, root: Path) -> list[str]:
    """Damage the inputs one way; return extra flags; the expected error text is checked by the caller."""
    peaks_file = root / "peaks/K562.narrowPeak"
    if kind == "missing genome":
        inputs["genome"].unlink()
    elif kind == "genome is a folder":
        inputs["genome"].unlink()
        inputs["genome"].mkdir()
    elif kind == "missing samples":
        inputs["samples"].unlink()
    elif kind == "missing peaks file":
        peaks_file.unlink()
    elif kind == "missing expression":
        inputs["expression"].unlink()
    elif kind == "fasta lacks a chromosome":
        write_peaks(peaks_file, inputs["peaks"]["K562"] + [("chr9", 10, 400)])
    elif kind == "end <= start":
        peaks_file.write_text("chr1\t100\t300\nchr1\t500\t500\n")
    elif kind == "negative start":
        peaks_file.write_text("chr1\t100\t300\nchr1\t-5\t300\n")
    elif kind == "non-integer coordinate":
        peaks_file.write_text("chr1\t100\t3e2\n")
    elif kind == "peak past chromosome end":
        peaks_file.write_text(f"chr1\t{CHROMS['chr1'] + 10}\t{CHROMS['chr1'] + 300}\n")
    elif kind == "duplicate cell type":
        inputs["samples"].write_text("cell_type\tpeaks\nK562\tpeaks/K562.narrowPeak\nK562\tpeaks/HepG2.narrowPeak\n")
    elif kind == "sheet without columns":
        inputs["samples"].write_text("name\tfile\nK562\tpeaks/K562.narrowPeak\n")
    elif kind == "expression lacks a cell type":
        inputs["samples"].write_text(inputs["samples"].read_text() + "Liver\tpeaks/K562.narrowPeak\n")
    elif kind in ("nan tpm", "inf tpm", "negative tpm", "text tpm"):
        value = {"nan tpm": "NaN", "inf tpm": "inf", "negative tpm": "-1.5", "text tpm": "high"}[kind]
        lines = inputs["expression"].read_text().splitlines()
        fields = lines[2].split("\t")
        fields[2] = value
        lines[2] = "\t".join(fields)
        inputs["expression"].write_text("\n".join(lines) + "\n")
    elif kind == "ratio without positives-only":
        return ["--negatives-ratio", "2"]
    elif kind == "context below bin size":
        return ["--context", "100"]
    elif kind == "unknown --chroms":
        return ["--chroms", "chr1,chrQ"]
    elif kind == "bins longer than chromosomes":
        return ["--bin-size", "6000", "--context", "6000"]
    elif kind in ("no peaks at all", "positives-only without positives"):
        for path in (root / "peaks").iterdir():
            path.write_text("track name=empty\n")
        return ["--positives-only", "--chroms", "chr1"] if kind == "positives-only without positives" else []
    return []


BAD = {
    "missing genome": "--genome",
    "genome is a folder": "not a regular file",
    "missing samples": "--samples",
    "missing peaks file": "K562.narrowPeak",
    "missing expression": "--expression",
    "fasta lacks a chromosome": "chr9",
    "end <= start": "line 2",
    "negative start": "line 2",
    "non-integer coordinate": "line 1",
    "peak past chromosome end": "past the end",
    "duplicate cell type": "twice",
    "sheet without columns": "cell_type",
    "expression lacks a cell type": "Liver",
    "nan tpm": "GATA1",
    "inf tpm": "GATA1",
    "negative tpm": "negative",
    "text tpm": "'high'",
    "ratio without positives-only": "--negatives-ratio",
    "context below bin size": "--context",
    "unknown --chroms": "chrQ",
    "bins longer than chromosomes": "--bin-size 6000",
    "no peaks at all": "no peaks",
    "positives-only without positives": "--positives-only",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_leaves_output_alone(tmp_path, capsys, kind):
    inputs = make_inputs(tmp_path / "in")
    extra = _break(kind, inputs, tmp_path / "in")
    fresh, existing = tmp_path / "fresh.h5", tmp_path / "existing.h5"
    existing.write_bytes(b"previous results")
    capsys.readouterr()
    assert prepare(inputs, fresh, *extra) == 2
    assert prepare(inputs, existing, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == err[1], err
    assert err[0].startswith("chromtune: error: ") and "Traceback" not in err[0]
    assert BAD[kind] in err[0], err[0]
    assert not fresh.exists()
    assert existing.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.h5", "in"]  # no temporary left behind


# -- the N rule --------------------------------------------------------------------------------
def n_genome(seed: int = 5) -> dict[str, str]:
    """chr1 with a whole-N gap, cores at exactly and just past half N, and N only in a flank; chr2 clean."""
    rng = np.random.default_rng(seed)
    chr1 = np.array(list("".join(rng.choice(list("ACGT"), CHROMS["chr1"]))))
    chr1[1000:2200] = "N"        # a gap: bins 1000..2000 are wholly N
    chr1[3000:3100] = "N"        # bin 3000's core is exactly half N (kept); bin 2950's is 50/200
    chr1[3600:3701] = "n"        # bin 3600's core is 101/200 N (dropped); lower case counts too
    chr1[4300:4700] = "N"        # bin 4700's core is clean, its window's left flank is N (kept)
    return {"chr1": "".join(chr1), "chr2": "".join(rng.choice(list("ACGT"), CHROMS["chr2"]))}


def independent_n_rule(sequences: dict[str, str], max_fraction: float = 0.5) -> dict[str, list[int]]:
    """Per chromosome, the starts of the bins a plain loop keeps (count of N-like letters per core)."""
    kept = {}
    for chrom, seq in sequences.items():
        starts = range(0, len(seq) - 200 + 1, 50)
        kept[chrom] = [s for s in starts if sum(b not in "ACGTacgt" for b in seq[s:s + 200]) <= max_fraction * 200]
    return kept


def test_n_rule_matches_an_independent_count_and_is_in_inspect(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    sequences = n_genome()
    write_fasta(inputs["genome"], {**sequences, "chr3": inputs["sequences"]["chr3"]})
    out = tmp_path / "data.h5"
    assert prepare(inputs, out) == 0
    ds = open_dataset(out)
    expected = independent_n_rule(sequences)
    got = {c: [s for k, s in bin_keys(ds) if k == c] for c in ("chr1", "chr2")}
    assert got == expected
    assert 3000 in got["chr1"] and 3600 not in got["chr1"] and 4700 in got["chr1"]
    assert not set(range(1000, 2001, 50)) & set(got["chr1"])
    laid = {c: (len(s) - 200) // 50 + 1 for c, s in sequences.items()}
    dropped = {c: laid[c] - len(expected[c]) for c in sequences}
    assert dropped["chr1"] > 20 and dropped["chr2"] == 0
    summary = inspect_json(out, capsys)
    assert summary["bins_dropped_for_n"] == dropped
    assert cli_main(["inspect", str(out)]) == 0
    assert f"{dropped['chr1']:,} bins dropped as mostly N" in capsys.readouterr().out
    # a looser rule keeps the half-N core, a stricter one drops it; labels stay those of a plain loop
    assert prepare(inputs, tmp_path / "strict.h5", "--max-n-fraction", "0.2") == 0
    strict = {s for c, s in bin_keys(open_dataset(tmp_path / "strict.h5")) if c == "chr1"}
    assert strict == set(independent_n_rule(sequences, 0.2)["chr1"]) and 3000 not in strict
    keys, labels = independent_labels(inputs["peaks"], ["chr1", "chr2"])
    keep = [k in set(bin_keys(ds)) for k in keys]
    np.testing.assert_array_equal(ds.labels, labels[keep])


def test_negatives_are_never_drawn_from_mostly_n_bins(tmp_path):
    inputs = make_inputs(tmp_path / "in", n_peaks=2)
    sequences = n_genome()
    sequences["chr2"] = "N" * 2000 + sequences["chr2"][2000:]
    write_fasta(inputs["genome"], {**sequences, "chr3": inputs["sequences"]["chr3"]})
    out = tmp_path / "d.h5"
    assert prepare(inputs, out, "--positives-only", "--negatives-ratio", "1000") == 0
    allowed = {(c, s) for c, starts in independent_n_rule(sequences).items() for s in starts}
    ds = open_dataset(out)
    assert set(bin_keys(ds)) <= allowed
    assert len(allowed) == ds.n_bins  # every bin that passes the rule, and only those, was available
