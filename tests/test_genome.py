"""Genome: FASTA -> uint8 codes through pyfaidx (plain) or a sequential reader (gzip); real files in tmp_path."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pyfaidx
import pytest

import chromtune.io.fasta as genome_module
from chromtune.data.dataset import Dataset
from chromtune.io.fasta import Genome, canonical_name
from chromtune.errors import UserError

RECORDS = {
    "chr1": "ACGTacgtNNnnRYKMSWBDHVacgt" * 9 + "ACG",
    "chrM": "GATTACA",
    "chr2": "tttt" * 40,
    "chrUn_gl000220": "ACGTN",
}
CODES = dict(zip("ACGTacgt", [0, 1, 2, 3, 0, 1, 2, 3]))


def expected_codes(seq: str) -> np.ndarray:
    """Independent mapping: A,C,G,T (any case) -> 0..3, everything else -> 4."""
    return np.array([CODES.get(ch, 4) for ch in seq], dtype=np.uint8)


def write_fasta(path, records, width=60, newline="\n", gz=False):
    text = "".join(f">{name} len={len(seq)}{newline}" +
                   "".join(seq[i:i + width] + newline for i in range(0, len(seq), width))
                   for name, seq in records.items())
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def index_beside(path):
    """A samtools-style .fai beside ``path``, built by pyfaidx in another folder and copied."""
    built = path.parent / "built"
    built.mkdir(exist_ok=True)
    pyfaidx.Fasta(str(path), indexname=str(built / f"{path.name}.fai")).close()
    shutil.copy(built / f"{path.name}.fai", f"{path}.fai")
    shutil.rmtree(built)


@pytest.mark.parametrize("mode", ["plain", "indexed", "gzip"])
def test_codes_names_and_lengths(tmp_path, mode):
    path = write_fasta(tmp_path / ("g.fa.gz" if mode == "gzip" else "g.fa"), RECORDS, width=50, gz=mode == "gzip")
    if mode == "indexed":
        index_beside(path)
    with Genome(path) as genome:
        assert genome.gzipped == (mode == "gzip") and genome.indexed == (mode == "indexed")
        assert genome.names == list(RECORDS)
        assert genome.lengths == {k: len(v) for k, v in RECORDS.items()}
        loaded = genome.load(["chr2", "chr1"])
        assert list(loaded) == ["chr1", "chr2"]  # FASTA order
        for name, codes in loaded.items():
            assert codes.dtype == np.uint8
            np.testing.assert_array_equal(codes, expected_codes(RECORDS[name]))
        np.testing.assert_array_equal(genome.codes("chrM"), expected_codes("GATTACA"))


def test_block_reader_agrees_with_pyfaidx_across_block_edges(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    records = {f"c{i}": "".join(rng.choice(list("ACGTNacgtn"), int(rng.integers(1, 400)))) for i in range(12)}
    plain = write_fasta(tmp_path / "g.fa", records, width=37)
    index_beside(plain)
    gz = write_fasta(tmp_path / "g.fa.gz", records, width=37, newline="\r\n", gz=True)
    monkeypatch.setattr(genome_module, "_BLOCK", 23)  # headers and lines split across reads
    with Genome(plain) as a, Genome(gz) as b:
        assert a.indexed and not b.indexed
        assert a.names == b.names == list(records)
        wanted = ["c0", "c5", "c11"]
        for (na, ca), (nb, cb) in zip(a.load(wanted).items(), b.load(wanted).items()):
            assert na == nb
            np.testing.assert_array_equal(ca, cb)
            np.testing.assert_array_equal(ca, expected_codes(records[na]))


@pytest.mark.parametrize("fasta_names,asked,found", [
    (["chr22", "chrM"], "22", "chr22"),
    (["22", "MT"], "chr22", "22"),
    (["22", "MT"], "chrM", "MT"),
    (["chrM", "chrX"], "MT", "chrM"),
    (["chrX"], "X", "chrX"),
])
def test_chromosome_names_match_across_styles(tmp_path, fasta_names, asked, found):
    path = write_fasta(tmp_path / "g.fa", {n: "ACGT" for n in fasta_names})
    with Genome(path) as genome:
        assert genome.resolve(asked) == found
        assert list(genome.load([asked])) == [found]


def test_canonical_names():
    assert canonical_name("chr1") == canonical_name("1") == "1"
    assert canonical_name("chrM") == canonical_name("MT") == canonical_name("chrMT") == "MT"
    assert canonical_name("chrX") != canonical_name("chrY")


@pytest.mark.parametrize("gz", [False, True])
def test_missing_chromosome_names_the_fasta_and_the_chromosome(tmp_path, gz):
    path = write_fasta(tmp_path / "hg.fa", RECORDS, gz=gz)
    with Genome(path) as genome:
        with pytest.raises(UserError) as err:
            genome.resolve("chr7", used_in="peaks file a.bed")
    message = str(err.value)
    assert str(path) in message and "'chr7'" in message and "a.bed" in message and "\n" not in message


def test_no_index_is_written_beside_the_fasta(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = write_fasta(folder / "g.fa", RECORDS)
    with Genome(path) as genome:
        genome.load(genome.names)
    assert sorted(os.listdir(folder)) == ["g.fa"]


def test_a_fresh_index_beside_is_used_and_a_stale_one_left_alone(tmp_path):
    path = write_fasta(tmp_path / "g.fa", RECORDS)
    index_beside(path)
    fai = tmp_path / "g.fa.fai"
    fai.write_text(fai.read_text().replace("chr2\t", "chrRenamed\t"))
    with Genome(path) as genome:
        assert genome.indexed and "chrRenamed" in genome.names  # the user's own (fresh) index was read
    old = path.stat().st_mtime - 100
    os.utime(fai, (old, old))  # now stale: ignored, not rebuilt in place
    before = fai.read_bytes()
    with Genome(path) as genome:
        assert not genome.indexed and "chr2" in genome.names
        np.testing.assert_array_equal(genome.codes("chr2"), expected_codes(RECORDS["chr2"]))
    assert fai.read_bytes() == before and fai.stat().st_mtime == old


@pytest.mark.parametrize("content,problem", [
    (None, "no such FASTA file"),
    (b"", "empty"),
    (b"ACGT\nACGT\n", "no '>' header"),
    (b">a\nACGT\n>\nAC\n", "without a name"),
    (gzip.compress(b"ACGT\nACGT\n"), "no '>' header"),
    (gzip.compress(b">a\nACGT\n>a\nAC\n"), "appears twice"),
    (gzip.compress(b">a\nACGT\n")[:-6], "cannot read"),
])
def test_bad_fasta_is_a_user_error(tmp_path, content, problem):
    path = tmp_path / "bad.fa"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        genome = Genome(path)
        genome.load(genome.names)
    assert problem in str(err.value) and str(path) in str(err.value)


def test_windows_off_chromosome_ends_are_padded_with_n(tmp_path):
    sequence = "ACGT" * 100  # 400 bp
    path = write_fasta(tmp_path / "g.fa", {"chrA": sequence, "chrB": "GGCC" * 60})
    with Genome(path) as genome:
        codes = genome.load(genome.names)
    bin_size, context = 100, 300
    starts = np.array([0, 150, 300, 0])
    ds = Dataset(chromosomes=["chrA", "chrB"], bin_chrom=np.array([0, 0, 0, 1]), bin_start=starts,
                 labels=np.zeros((4, 1), np.uint8), cell_types=["c"], expression=np.zeros((1, 1), np.float32),
                 genes=["g"], bin_size=bin_size, stride=50, context=context, genome=codes)
    windows = ds.window_codes(np.arange(4))
    padded = {"chrA": "N" * context + sequence + "N" * context, "chrB": "N" * context + "GGCC" * 60 + "N" * context}
    for row, (chrom, start) in enumerate([("chrA", 0), ("chrA", 150), ("chrA", 300), ("chrB", 0)]):
        left = start + bin_size // 2 - context // 2 + context
        np.testing.assert_array_equal(windows[row], expected_codes(padded[chrom][left:left + context]))
    assert (windows[0][:100] == 4).all() and (windows[2][-100:] == 4).all()


def test_reading_does_not_need_write_access(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write_fasta(folder / "g.fa", RECORDS)
    shutil.copy(path, folder / "copy.fa")
    os.chmod(folder, 0o555)
    try:
        with Genome(folder / "copy.fa") as genome:
            assert genome.names == list(RECORDS)
    finally:
        os.chmod(folder, 0o755)
    assert sorted(os.listdir(folder)) == ["copy.fa", "g.fa"]
