"""chromtune predict: the fast path equals the plain forward pass; real files in, real files out; bad input.

Models are tiny (width 0.05, hidden 16, 400 bp) and built directly, with random BatchNorm running
statistics so that eval-mode BatchNorm is a non-trivial affine map; checkpoints carry the extra
keys of a training run's best.pt.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from chromtune import atomic, progress
from chromtune.predict import loading, scoring
from chromtune.predict.expression import align_expression
from chromtune.predict.predictor import Predictor
from chromtune.predict.scoring import Member
from chromtune.cli.predict import main as predict_main
from chromtune.data.dataset import write_dataset
from chromtune.errors import UserError
from chromtune.models import build_model
from chromtune.models.checkpoint import save_model
from chromtune.train.baselines import mean_accessibility
from chromtune.train.precision import cpu_has_native_bf16
from conftest import assert_one_line_error, gone_pid, random_dataset, randomize_batchnorm, run_command

N_GENES, CONTEXT = 8, 400
TRAIN = [0, 1, 2, 3, 4, 5]  # the checkpoint's training cell types (indices into the data set)


def tiny_model(head: str = "simple", with_mean: bool = True, arch: str = "basset", seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(arch, 2, n_genes=N_GENES, with_mean=with_mean, head=head, n_tasks=5, seq_len=CONTEXT,
                        width=0.05, hidden=16)
    return randomize_batchnorm(model, seed)


def dataset(**kwargs):
    ds = random_dataset(n_chroms=2, chrom_len=3_000, n_cells=10, n_genes=N_GENES, context=CONTEXT, **kwargs)
    ds.attrs = {"expression_transform": "log1p", "assembly": "test"}
    return ds


def save_checkpoint(path, model, ds, data_path, **overrides):
    extra = dict(genes=list(ds.genes), expression_transform="log1p", cell_types=list(ds.cell_types),
                 train_cells=[ds.cell_types[c] for c in TRAIN], data=str(data_path), fold=0)
    extra.update(overrides)
    save_model(path, model, **{k: v for k, v in extra.items() if v is not None})
    return path


def write_table(path, tpm: np.ndarray, cells, genes, genes_as_rows: bool = True, sep: str = "\t"):
    table = pd.DataFrame(tpm.T, index=genes, columns=cells) if genes_as_rows else pd.DataFrame(tpm, index=cells,
                                                                                               columns=genes)
    table.index.name = "gene" if genes_as_rows else "cell_type"
    table.to_csv(path, sep=sep)
    return path


def plain_forward(model, ds, expression, bins, mean):
    """Probabilities from model(x, expr, mean), one row per (bin, cell type) pair."""
    from chromtune.data.encoding import one_hot

    n, c = len(bins), len(expression)
    with torch.no_grad():
        x = one_hot(ds.window_codes(np.repeat(bins, c)))
        expr = torch.as_tensor(np.tile(expression, (n, 1)))
        m = None if mean is None else torch.as_tensor(np.repeat(mean[bins], c))
        return torch.sigmoid(model(x, expr, m)).view(n, c).numpy()


@pytest.fixture
def setup(tmp_path):
    """A data set file, a checkpoint of the simple head with the mean feature, and a TPM table of 3 new cells."""
    ds = dataset()
    write_dataset(tmp_path / "data.h5", ds)
    model = tiny_model()
    save_checkpoint(tmp_path / "best.pt", model, ds, tmp_path / "data.h5")
    rng = np.random.default_rng(1)
    tpm = rng.gamma(1.0, 20.0, (3, N_GENES))
    cells = ["newA", "newB", "newC"]
    write_table(tmp_path / "new.tsv", tpm, cells, ds.genes)
    return {"dir": tmp_path, "ds": ds, "model": model, "tpm": tpm, "cells": cells}


def cli(argv, capsys):
    return run_command(predict_main, argv, capsys)


# -- the fast path -----------------------------------------------------------------------------
@pytest.mark.parametrize("head,with_mean,arch", [("simple", True, "basset"), ("simple", False, "basset"),
                                                 ("complex", True, "basset"), ("complex", False, "basset"),
                                                 ("simple", True, "resnet")])
def test_fast_path_equals_plain_forward_for_every_pair(head, with_mean, arch):
    ds = dataset()
    model = tiny_model(head, with_mean, arch)
    rng = np.random.default_rng(2)
    expression = rng.normal(2.0, 1.0, (5, N_GENES)).astype(np.float32)
    bins = rng.permutation(ds.n_bins)[:24]
    mean = mean_accessibility(ds.labels, TRAIN) if with_mean else None
    expected = plain_forward(model, ds, expression, bins, mean)
    assert expected.std(axis=1).mean() > 1e-3  # the cell types do get different predictions
    for batch_size in (1, 8, 64):
        got = predict_accessibility_small(model, ds, expression, bins, mean, batch_size)
        assert got.shape == (24, 5) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def predict_accessibility_small(model, ds, expression, bins, mean, batch_size):
    """The fast path with a pair budget small enough that several passes per trunk batch are exercised."""
    saved = scoring.PAIR_ROWS
    scoring.PAIR_ROWS = 12
    try:
        return scoring.predict_accessibility(model, ds, expression, bins, mean, batch_size=batch_size)
    finally:
        scoring.PAIR_ROWS = saved


def test_fast_path_rejects_inconsistent_inputs():
    ds = dataset()
    model = tiny_model(with_mean=True)
    good = np.zeros((2, N_GENES), np.float32)
    mean = mean_accessibility(ds.labels, TRAIN)
    with pytest.raises(ValueError, match="pass mean"):
        scoring.predict_accessibility(model, ds, good, np.arange(3), None)
    with pytest.raises(ValueError, match="expression has shape"):
        scoring.predict_accessibility(model, ds, np.zeros((2, N_GENES + 1)), np.arange(3), mean)
    longer = build_model("basset", 2, n_genes=N_GENES, with_mean=True, seq_len=500, width=0.05, hidden=16)
    with pytest.raises(ValueError, match="windows are 400 bp, the model takes 500 bp"):
        scoring.predict_accessibility(longer, ds, good, np.arange(3), mean)


# -- expression alignment ----------------------------------------------------------------------
@pytest.mark.parametrize("genes_as_rows,sep", [(True, "\t"), (False, "\t"), (True, ","), (False, ",")])
def test_align_expression_matches_by_name_in_either_orientation(tmp_path, genes_as_rows, sep):
    genes = [f"TF{g}" for g in range(N_GENES)]
    rng = np.random.default_rng(3)
    tpm = rng.gamma(1.0, 10.0, (4, N_GENES + 2))
    shuffled = list(rng.permutation(genes + ["EXTRA1", "EXTRA2"]))  # other order, and genes the model lacks
    cells = ["c1", "c2", "c3", "c4"]
    write_table(tmp_path / "t.txt", tpm, cells, shuffled, genes_as_rows, sep)
    values, names = align_expression(tmp_path / "t.txt", genes, "log1p")
    assert names == cells
    expected = np.log1p(tpm[:, [shuffled.index(g) for g in genes]])
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert values.dtype == np.float32 and values.shape == (4, N_GENES)
    arcsinh, _ = align_expression(tmp_path / "t.txt", genes, "arcsinh")
    np.testing.assert_allclose(arcsinh, np.arcsinh(tpm[:, [shuffled.index(g) for g in genes]]), rtol=1e-6)
    as_given, _ = align_expression(tmp_path / "t.txt", genes, "as-imported")
    np.testing.assert_allclose(as_given, tpm[:, [shuffled.index(g) for g in genes]], rtol=1e-6)


def test_missing_genes_are_an_error_naming_count_and_genes_unless_filled(tmp_path, capsys):
    genes = [f"TF{g}" for g in range(N_GENES)]
    present = genes[:5]
    tpm = np.arange(2 * 5, dtype=float).reshape(2, 5)
    write_table(tmp_path / "t.tsv", tpm, ["x", "y"], present)
    with pytest.raises(UserError, match=r"3 of the model's 8 genes are missing \(TF5, TF6, TF7\)"):
        align_expression(tmp_path / "t.tsv", genes, "log1p")
    zero, _ = align_expression(tmp_path / "t.tsv", genes, "log1p", fill="zero")
    assert (zero[:, 5:] == 0).all()
    np.testing.assert_allclose(zero[:, :5], np.log1p(tpm), rtol=1e-6)
    train = np.random.default_rng(4).random((7, N_GENES)).astype(np.float32)
    median, _ = align_expression(tmp_path / "t.tsv", genes, "log1p", fill="median", train_expression=train)
    np.testing.assert_allclose(median[:, 5:], np.broadcast_to(np.median(train[:, 5:], axis=0), (2, 3)))
    assert "3 of the model's 8 genes are missing and filled" in capsys.readouterr().err


@pytest.mark.parametrize("bad,problem", [("nan", "is not a finite number"), ("-1.5", "is negative"),
                                         ("", "is not a finite number")])
def test_bad_expression_values_name_file_gene_and_cell_type(tmp_path, bad, problem):
    genes = [f"TF{g}" for g in range(N_GENES)]
    table = pd.DataFrame(np.ones((N_GENES, 2)), index=genes, columns=["good", "bad"]).astype(object)
    table.loc["TF3", "bad"] = bad
    table.index.name = "gene"
    table.to_csv(tmp_path / "t.tsv", sep="\t")
    with pytest.raises(UserError) as err:
        align_expression(tmp_path / "t.tsv", genes, "log1p")
    message = str(err.value)
    assert "t.tsv" in message and "'TF3'" in message and "'bad'" in message and problem in message


def test_unknown_genes_and_unknown_transform(tmp_path):
    write_table(tmp_path / "t.tsv", np.ones((2, 3)), ["a", "b"], ["GENE1", "GENE2", "GENE3"])
    with pytest.raises(UserError, match="none of the model's 8 genes"):
        align_expression(tmp_path / "t.tsv", [f"TF{g}" for g in range(N_GENES)], "log1p")
    with pytest.raises(UserError, match="'unknown' is not one chromtune can apply"):
        align_expression(tmp_path / "t.tsv", ["GENE1"], "unknown")


# -- the command -------------------------------------------------------------------------------
def test_cli_writes_hdf5_bed_and_bigwig_that_agree_with_the_fast_path(setup, capsys):
    import pyBigWig

    d, ds, model = setup["dir"], setup["ds"], setup["model"]
    expected = scoring.predict_accessibility(model, ds, np.log1p(setup["tpm"]).astype(np.float32),
                                             np.arange(ds.n_bins), mean_accessibility(ds.labels, TRAIN))
    threshold = round(float(np.median(expected)), 3)  # about half of the pairs enter the BED files
    code, out, err = cli(["--model", d / "best.pt", "--expression", d / "new.tsv", "--out", d / "p.h5",
                          "--bed", d / "beds", "--bigwig", d / "tracks", "--threshold", threshold,
                          "--batch-size", "16", "--device", "cpu"], capsys)
    assert code == 0, err
    assert f"{ds.n_bins:,} bins x 3 cell types" in out
    assert re.search(r"; predicted in \d+:\d\d, (?:[\d.,]+ bins/s|[\d.,]+ s each)\n", out)  # the rate (issue 22: predict reports it)
    with h5py.File(d / "p.h5") as f:
        probabilities = f["probabilities"][()]
        assert probabilities.dtype == np.float16 and probabilities.shape == (ds.n_bins, 3)
        assert f["cell_types"].asstr()[()].tolist() == setup["cells"]
        index, start, end = f["bins/index"][()], f["bins/start"][()], f["bins/end"][()]
        names = f["bins/name"].asstr()[()]
        chroms = f["chromosomes"].asstr()[()][f["bins/chrom"][()]]
        assert f.attrs["format"] == "chromtune-predictions" and f.attrs["expression_transform"] == "log1p"
    assert (index == np.arange(ds.n_bins)).all()  # random_dataset's bins are already sorted
    np.testing.assert_allclose(probabilities.astype(np.float32), expected[index], atol=1e-3, rtol=1e-3)
    assert (start == ds.bin_start).all() and (end == ds.bin_start + ds.bin_size).all()
    assert names[1] == f"chr1:{ds.bin_start[1]}-{ds.bin_start[1] + 200}"
    accessible = probabilities.astype(np.float32) >= threshold
    assert 0 < accessible.sum() < accessible.size
    for j, cell in enumerate(setup["cells"]):
        bed = [line.split("\t") for line in (d / "beds" / f"{cell}.bed").read_text().splitlines()]
        rows = np.flatnonzero(accessible[:, j])
        assert [(c, int(s), int(e), n) for c, s, e, n, _ in bed] == \
            [(chroms[i], int(start[i]), int(end[i]), cell) for i in rows]
        assert [int(score) for *_, score in bed] == [round(1000 * float(probabilities[i, j])) for i in rows]
        assert f"{d / 'beds' / cell}.bed: {len(rows):,} of {ds.n_bins:,} bins at p >= {threshold:g}\n" in out
        track = pyBigWig.open(str(d / "tracks" / f"{cell}.bw"))
        try:
            # stride 100 < bin 200: each bin's value covers its central 100 bp
            values = [track.values(chroms[i], int(start[i]) + 50, int(start[i]) + 150) for i in (0, 7, len(start) - 1)]
        finally:
            track.close()
        for i, v in zip((0, 7, len(start) - 1), values):
            np.testing.assert_allclose(v, float(probabilities[i, j]), rtol=1e-6)
    assert not [p for p in d.rglob(".*.tmp")]  # no temporary files left


def test_cli_with_regions_and_a_run_folder(setup, capsys):
    d, ds = setup["dir"], setup["ds"]
    (d / "run").mkdir()
    (d / "best.pt").rename(d / "run" / "best.pt")
    (d / "regions.bed").write_text("1\t250\t260\n#comment\nchr2\t1000\t1301\nchrUn\t5\t10\n")
    code, out, err = cli(["--model", d / "run", "--expression", d / "new.tsv", "--out", d / "p.h5",
                          "--regions", d / "regions.bed"], capsys)
    assert code == 0, err
    assert "1 chromosome(s) the data set lacks" in err and "chrUn" in err
    chrom_names = np.asarray(ds.chromosomes)[ds.bin_chrom]
    s, e = ds.bin_start, ds.bin_start + ds.bin_size
    expected = np.flatnonzero(((chrom_names == "chr1") & (s < 260) & (e > 250))
                              | ((chrom_names == "chr2") & (s < 1301) & (e > 1000)))
    with h5py.File(d / "p.h5") as f:
        assert f["bins/index"][()].tolist() == expected.tolist()
        assert f["probabilities"].shape == (len(expected), 3)


@pytest.mark.parametrize("with_mean", [True, False])
def test_cli_takes_the_model_data_set_and_mean_from_the_checkpoint(tmp_path, capsys, with_mean):
    ds = dataset()
    order = np.random.default_rng(6).permutation(ds.n_bins)  # a data set whose bins are not in genome order
    ds.bin_chrom, ds.bin_start, ds.labels = ds.bin_chrom[order], ds.bin_start[order], ds.labels[order]
    write_dataset(tmp_path / "data.h5", ds)
    model = tiny_model("complex", with_mean)
    save_checkpoint(tmp_path / "m.pt", model, ds, tmp_path / "data.h5")
    tpm = np.random.default_rng(5).gamma(1.0, 5.0, (2, N_GENES))
    write_table(tmp_path / "e.tsv", tpm, ["p", "q"], ds.genes, genes_as_rows=False)
    code, _, err = cli(["--model", tmp_path / "m.pt", "--expression", tmp_path / "e.tsv", "--out", tmp_path / "o.h5"],
                       capsys)
    assert code == 0, err
    mean = mean_accessibility(ds.labels, TRAIN) if with_mean else None
    expected = plain_forward(model, ds, np.log1p(tpm).astype(np.float32), np.arange(ds.n_bins), mean)
    with h5py.File(tmp_path / "o.h5") as f:
        index = f["bins/index"][()]
        assert sorted(index) == list(range(ds.n_bins))
        assert (np.diff(ds.bin_chrom[index] * 10**6 + ds.bin_start[index]) > 0).all()  # rows in genome order
        np.testing.assert_allclose(f["probabilities"][()].astype(np.float32), expected[index], atol=1e-3, rtol=1e-3)


def test_cli_fill_missing_median_uses_the_training_cell_types(setup, capsys):
    d, ds, model = setup["dir"], setup["ds"], setup["model"]
    write_table(d / "partial.tsv", setup["tpm"][:, :6], setup["cells"], ds.genes[:6])
    code, _, err = cli(["--model", d / "best.pt", "--expression", d / "partial.tsv", "--out", d / "p.h5",
                        "--fill-missing", "median"], capsys)
    assert code == 0 and "filled with the training median" in err
    expression = np.log1p(setup["tpm"]).astype(np.float32)
    expression[:, 6:] = np.median(ds.expression[TRAIN][:, 6:], axis=0)
    expected = plain_forward(model, ds, expression, np.arange(ds.n_bins), mean_accessibility(ds.labels, TRAIN))
    with h5py.File(d / "p.h5") as f:
        np.testing.assert_allclose(f["probabilities"][()].astype(np.float32), expected, atol=1e-3, rtol=1e-3)


# -- bad input: one line, exit 2, nothing written or damaged --------------------------------------
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no AVX512-BF16 or AMX-BF16")
def test_bf16_scores_agree_with_fp32_and_the_header_says_which(setup, capsys):
    d, ds, model = setup["dir"], setup["ds"], setup["model"]
    expression, mean = np.log1p(setup["tpm"]).astype(np.float32), mean_accessibility(ds.labels, TRAIN)
    bins = np.arange(ds.n_bins)
    fp32 = scoring.predict_accessibility(model, ds, expression, bins, mean)
    bf16 = [scoring.predict_accessibility(model, ds, expression, bins, mean, batch_size=b, bf16=True)
            for b in (1, 8, 64)]
    assert np.abs(bf16[0] - fp32).max() > 0  # bf16 did score (not the float32 path)
    for got in bf16:
        np.testing.assert_allclose(got, fp32, atol=0.03)
    np.testing.assert_allclose(bf16[1], bf16[2], atol=1e-2)
    for precision, expected in (("bf16", bf16[2]), ("fp32", fp32)):
        out = d / f"{precision}.h5"
        code, _, err = cli(["--model", d / "best.pt", "--expression", d / "new.tsv", "--out", out, "--device", "cpu",
                            "--precision", precision], capsys)
        assert code == 0, err
        with h5py.File(out) as f:
            assert f.attrs["precision"] == precision
            np.testing.assert_allclose(f["probabilities"][()].astype(np.float32), expected, atol=1e-2)
    assert Predictor.load(d / "best.pt", device="cpu", precision="auto").precision == "bf16"


def test_bf16_on_a_cpu_that_would_emulate_it_is_one_line_before_anything_is_written(setup, capsys, monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    d = setup["dir"]
    base = ["--model", d / "best.pt", "--expression", d / "new.tsv", "--out", d / "p.h5", "--device", "cpu"]
    code, _, err = cli([*base, "--precision", "bf16"], capsys)
    assert_one_line_error(code, err, "--precision bf16", "no native bf16")
    assert not (d / "p.h5").exists()
    code, _, err = cli([*base, "--precision", "auto"], capsys)  # auto falls back to float32 there
    assert code == 0, err
    with h5py.File(d / "p.h5") as f:
        assert f.attrs["precision"] == "fp32"


def test_bad_input_is_one_line_and_leaves_outputs_untouched(setup, capsys, monkeypatch):
    d, ds = setup["dir"], setup["ds"]
    (d / "p.h5").write_bytes(b"previous result")
    base = ["--model", d / "best.pt", "--expression", d / "new.tsv", "--out", d / "p.h5"]

    write_table(d / "wrong.tsv", setup["tpm"], setup["cells"], [f"G{g}" for g in range(N_GENES)])
    code, _, err = cli([*base[:2], "--expression", d / "wrong.tsv", *base[4:]], capsys)
    assert_one_line_error(code, err, "wrong.tsv", "none of the model's 8 genes", "TF0")

    table = pd.read_csv(d / "new.tsv", sep="\t", index_col=0)
    table.loc["TF2", "newB"] = np.nan
    table.to_csv(d / "nan.tsv", sep="\t")
    code, _, err = cli([*base[:2], "--expression", d / "nan.tsv", *base[4:]], capsys)
    assert_one_line_error(code, err, "nan.tsv", "'TF2'", "'newB'", "not a finite number")

    other = tiny_model()
    other_genes = [f"OTHER{g}" for g in range(N_GENES)]
    save_checkpoint(d / "other.pt", other, ds, d / "data.h5", genes=other_genes)
    code, _, err = cli(["--model", d / "other.pt", *base[2:]], capsys)
    assert_one_line_error(code, err, "other.pt", "another gene list", "data.h5", "'OTHER0' vs 'TF0'")

    renamed = dataset()
    renamed.cell_types = [f"other{j}" for j in range(renamed.n_cell_types)]
    write_dataset(d / "renamed.h5", renamed)
    code, _, err = cli([*base, "--data", d / "renamed.h5"], capsys)
    assert_one_line_error(code, err, "renamed.h5", "lacks 6 of the model's training cell types", "cell0")

    monkeypatch.setitem(sys.modules, "pyBigWig", None)  # the optional extra is not installed
    code, _, err = cli([*base, "--bigwig", d / "tracks"], capsys)
    assert_one_line_error(code, err, "--bigwig", "pyBigWig", "pip install 'chromtune[interpret]'")
    assert not (d / "tracks").exists()

    assert (d / "p.h5").read_bytes() == b"previous result"
    assert not [p for p in d.rglob(".*.tmp")]


def test_bad_models_are_one_line_errors(setup, capsys, tmp_path):
    d, ds = setup["dir"], setup["ds"]
    rest = ["--expression", d / "new.tsv", "--out", d / "p.h5"]
    torch.manual_seed(0)
    stage1 = build_model("basset", 1, n_tasks=6, seq_len=CONTEXT, width=0.05, hidden=16)
    save_checkpoint(d / "s1.pt", stage1, ds, d / "data.h5")
    code, _, err = cli(["--model", d / "s1.pt", *rest], capsys)
    assert_one_line_error(code, err, "s1.pt", "stage-1 model", "stage-2")

    save_model(d / "old.pt", setup["model"])  # weights only: no genes, no transform
    code, _, err = cli(["--model", d / "old.pt", *rest], capsys)
    assert_one_line_error(code, err, "old.pt", "lacks genes and expression_transform")

    (d / "junk.pt").write_bytes(b"not a checkpoint")
    code, _, err = cli(["--model", d / "junk.pt", *rest], capsys)
    assert_one_line_error(code, err, "junk.pt", "cannot read checkpoint")

    code, _, err = cli(["--model", d / "nowhere.pt", *rest], capsys)
    assert_one_line_error(code, err, "nowhere.pt", "not an MLflow run id")

    code, _, err = cli(["--model", "0" * 32, "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", *rest], capsys)
    assert_one_line_error(code, err, "none.db", "no such MLflow store")
    assert not (tmp_path / "none.db").exists()

    save_checkpoint(d / "moved.pt", setup["model"], ds, d / "gone.h5")
    code, _, err = cli(["--model", d / "moved.pt", *rest], capsys)
    assert_one_line_error(code, err, "gone.h5", "pass --data")
    assert not (d / "p.h5").exists()


def test_coordinate_less_data_set_refuses_bed_bigwig_and_regions(setup, capsys):
    d, ds = setup["dir"], setup["ds"]
    ds.windows = ds.window_codes(np.arange(ds.n_bins)).copy()
    ds.genome, ds.bin_start = None, np.full(ds.n_bins, -1)
    write_dataset(d / "imported.h5", ds)
    base = ["--model", d / "best.pt", "--expression", d / "new.tsv", "--data", d / "imported.h5", "--out", d / "p.h5"]
    for extra, flag in (["--bed", d / "b"], "--bed"), (["--bigwig", d / "w"], "--bigwig"):
        code, _, err = cli([*base, *extra], capsys)
        assert_one_line_error(code, err, flag, "no genome coordinates")
    (d / "r.bed").write_text("chr1\t0\t100\n")
    code, _, err = cli([*base, "--regions", d / "r.bed"], capsys)
    assert_one_line_error(code, err, "--regions", "no genome coordinates")
    assert not (d / "p.h5").exists()
    code, _, err = cli(base, capsys)  # predicting every bin works without coordinates
    assert code == 0, err
    with h5py.File(d / "p.h5") as f:
        assert f["bins/name"].asstr()[2] == "chr1:bin2" and (f["bins/start"][()] == -1).all()


@pytest.mark.tracking
def test_model_from_an_mlflow_run_id(setup, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("predict-test", artifact_location=(tmp_path / "artifacts").as_uri())
    fold_run = client.create_run(experiment, tags={"chromtune.level": "fold"}).info.run_id
    client.log_artifact(fold_run, str(setup["dir"] / "best.pt"))
    model, meta = loading.load_one(fold_run, uri)
    assert meta["run_id"] == fold_run and meta["genes"] == setup["ds"].genes
    for name, tensor in setup["model"].state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    trial_run = client.create_run(experiment).info.run_id
    with pytest.raises(UserError, match="has no artifact best.pt"):
        loading.load_one(trial_run, uri)
    with pytest.raises(UserError, match="no such run"):
        loading.load_one("f" * 32, uri)


# -- the fold ensemble -------------------------------------------------------------------------
@pytest.mark.tracking
def test_a_sweep_run_id_averages_its_fold_models(setup, tmp_path, capsys):
    """--model SWEEP_RUN_ID: the mean of the finished folds' predictions, each with its own training
    cell types' mean feature; one fold's run id predicts with that fold's model alone."""
    import mlflow

    d, ds = setup["dir"], setup["ds"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("ensemble", artifact_location=(tmp_path / "artifacts").as_uri())
    sweep = client.create_run(experiment, tags={"chromtune.level": "sweep"}).info.run_id
    folds = {0: [0, 1, 2, 3, 4, 5], 1: [2, 3, 4, 5, 6, 7], 2: [0, 4, 5, 6, 7, 8]}  # each fold's training cells
    models, runs = {}, {}
    for fold, train in folds.items():
        models[fold] = tiny_model(seed=10 + fold)
        folder = tmp_path / f"fold{fold}"
        folder.mkdir()
        save_checkpoint(folder / "best.pt", models[fold], ds, d / "data.h5",
                        train_cells=[ds.cell_types[c] for c in train], fold=fold)
        runs[fold] = client.create_run(experiment, tags={"chromtune.level": "fold", "fold": str(fold),
                                                        "mlflow.parentRunId": sweep}).info.run_id
        client.log_artifact(runs[fold], str(folder / "best.pt"))
        if fold != 2:  # fold 2 never finished: not a member
            client.set_terminated(runs[fold], "FINISHED")

    members = loading.load_all(sweep, uri)
    assert [m["fold"] for _, m in members] == [0, 1]
    expression, _ = align_expression(d / "new.tsv", ds.genes, "log1p")
    bins = np.arange(ds.n_bins)
    per_fold = [scoring.predict_accessibility(models[f], ds, expression, bins, mean_accessibility(ds.labels, folds[f]))
                for f in (0, 1)]
    assert np.abs(per_fold[0] - per_fold[1]).max() > 1e-3  # the folds do disagree
    ensemble = scoring.predict_ensemble([Member(models[f], {}, mean_accessibility(ds.labels, folds[f]))
                                         for f in (0, 1)], ds, expression, bins)
    np.testing.assert_allclose(ensemble, (per_fold[0] + per_fold[1]) / 2, rtol=1e-6, atol=1e-7)

    code, out, err = cli(["--model", sweep, "--tracking-uri", uri, "--expression", d / "new.tsv",
                          "--out", d / "ens.h5"], capsys)
    assert code == 0, err
    assert "mean of 2 fold models" in out
    code, _, err = cli(["--model", runs[1], "--tracking-uri", uri, "--expression", d / "new.tsv",
                        "--out", d / "one.h5"], capsys)
    assert code == 0, err
    with h5py.File(d / "ens.h5") as f, h5py.File(d / "one.h5") as g:
        order = f["bins/index"][()]
        assert f.attrs["members"] == 2 and f.attrs["run_id"] == sweep and g.attrs["members"] == 1
        np.testing.assert_allclose(f["probabilities"][()].astype(np.float32),
                                   ((per_fold[0] + per_fold[1]) / 2)[order].astype(np.float16), atol=1e-3)
        np.testing.assert_allclose(g["probabilities"][()].astype(np.float32),
                                   per_fold[1][order].astype(np.float16), atol=1e-3)

    empty = client.create_run(experiment, tags={"chromtune.level": "sweep"}).info.run_id
    with pytest.raises(UserError, match="no finished fold"):
        loading.load_all(empty, uri)


def test_bed_counts_each_cell_types_bins_and_warns_when_none_passes(setup, capsys, monkeypatch):
    """With --bed every cell type's count of bins at p >= --threshold is printed; a threshold above every
    probability warns in one line naming the cell types and their highest p. The progress line (here at
    once, in a log) counts the bins."""
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER", 0.0)
    d, ds = setup["dir"], setup["ds"]
    expected = scoring.predict_accessibility(setup["model"], ds, np.log1p(setup["tpm"]).astype(np.float32),
                                             np.arange(ds.n_bins), mean_accessibility(ds.labels, TRAIN))
    threshold = round(float(expected.max()) + 0.01, 3)
    assert threshold <= 1
    code, out, err = cli(["--model", d / "best.pt", "--expression", d / "new.tsv", "--out", d / "p.h5",
                          "--bed", d / "beds", "--threshold", threshold, "--device", "cpu"], capsys)
    assert code == 0, err
    for cell in setup["cells"]:
        assert f"{d / 'beds' / cell}.bed: 0 of {ds.n_bins:,} bins at p >= {threshold:g}\n" in out
        assert (d / "beds" / f"{cell}.bed").read_text() == ""
    lines = err.splitlines()
    warning = [line for line in lines if line.startswith("chromtune: warning: --bed")]
    assert len(warning) == 1 and "3 of 3 cell types have no bin" in warning[0] and "lower --threshold" in warning[0]
    highest = [f"{cell} {float(np.float16(expected[:, j].max())):.3g}" for j, cell in enumerate(setup["cells"])]
    assert f"(highest p: {', '.join(highest)})" in warning[0]
    shown = [line for line in lines if line not in warning]
    assert shown and all(line.startswith("predict | ") for line in shown)  # the progress line, in a log
    assert re.fullmatch(rf"predict \| \d:\d\d \| writing the files \| {ds.n_bins}/{ds.n_bins} bins \| (?:[\d.,]+ bins/s|[\d.,]+ s each)",
                        shown[-1])



@pytest.mark.slow
def test_sigterm_stops_predict_in_one_line_leaving_no_temporary_file_and_the_next_run_clears_debris(
        tmp_path, capsys):
    """A real ``python -m chromtune.predict`` on 40,000 bins, stopped by SIGTERM once its first progress line
    is out and its outputs are being written: exit 143, one line after the progress lines, no traceback,
    no *.tmp. A second run then removes what a killed run left (simulated: temporary names of a process
    that is gone)."""
    ds = random_dataset(n_chroms=2, chrom_len=2_000_000, n_cells=10, n_genes=N_GENES, context=CONTEXT)
    ds.attrs = {"expression_transform": "log1p", "assembly": "test"}
    write_dataset(tmp_path / "data.h5", ds)
    save_checkpoint(tmp_path / "best.pt", tiny_model(), ds, tmp_path / "data.h5")
    write_table(tmp_path / "new.tsv", np.random.default_rng(1).gamma(1.0, 20.0, (3, N_GENES)),
                ["newA", "newB", "newC"], ds.genes)
    argv = ["--model", tmp_path / "best.pt", "--expression", tmp_path / "new.tsv", "--out", tmp_path / "p.h5",
            "--bed", tmp_path / "beds", "--bigwig", tmp_path / "tracks", "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "chromtune.predict", *map(str, argv), "--batch-size", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, first_line = [], threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            first_line.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first_line.wait(300), "no progress line within 300 s"
        while len(list(tmp_path.rglob(".*.tmp"))) < 7:  # all outputs being written (batch size 1: minutes of work)
            assert proc.poll() is None, lines
            first_line.wait(0.1)
        assert len(list((tmp_path / "beds").glob(".*.bed.*.tmp"))) == len(list((tmp_path / "tracks").glob(".*.bw.*.tmp"))) == 3
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    assert code == 143, lines
    progress_lines = [line for line in lines if line.startswith("predict | ")]
    assert progress_lines and lines == [*progress_lines, "chromtune: stopped by SIGTERM"]
    assert not list(tmp_path.rglob(".*.tmp")) and not (tmp_path / "p.h5").exists()
    assert not list((tmp_path / "beds").iterdir()) and not list((tmp_path / "tracks").iterdir())

    gone = gone_pid()
    debris = [tmp_path / f".p.h5.{atomic.HOST}.{gone}.a1b2c3d4.tmp",  # an output of this run, and of an earlier one
              tmp_path / "beds" / f".old.bed.{atomic.HOST}.{gone}.x9y8z7w6.tmp"]
    for path in debris:
        path.write_bytes(b"\0" * 1000)
    code, out, err = run_command(predict_main, argv, capsys)
    assert code == 0, err
    for path in debris:
        assert f"chromtune: removed {path} (0.0 MB), left by an earlier run that was stopped (process {gone})" in err
    assert not list(tmp_path.rglob(".*.tmp")) and (tmp_path / "p.h5").is_file()


def test_help_names_every_kind_of_model_the_readme_names():
    from chromtune.cli.predict import build_parser

    text = " ".join(build_parser().format_help().split())
    assert all(kind in text for kind in ("checkpoint file", "run folder", "run id of a sweep's fold run",
                                         "the run id of a sweep"))
