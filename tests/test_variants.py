"""chromtune variants: the VCF reader, allele windows, Δ against plain forward passes, the CLI and its bad input.

Tiny untrained models on random genomes: every answer is a plain forward pass away.
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from chromtune import progress
from chromtune.cli.variants import main as variants_main
from chromtune.data.dataset import Dataset, write_dataset
from chromtune.data.encoding import one_hot
from chromtune.errors import UserError
from chromtune.data.alleles import WindowIndex, genome_windows, substitute, window_starts
from chromtune.io.vcf import read_vcf
from chromtune.models import build_model
from chromtune.models.checkpoint import save_model
from chromtune.train.baselines import mean_accessibility
from chromtune.predict.scoring import Member
from chromtune.variants.effects import MEASURES, allele_windows, place_variants, score_blocks, window_effects
from conftest import assert_one_line_error, random_dataset, run_command

N_GENES, CONTEXT = 6, 400
HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def tiny_model(with_mean: bool = True, head: str = "simple", seed: int = 0):
    """A tiny stage-2 model whose eval-mode BatchNorm layers are non-trivial affine maps."""
    torch.manual_seed(seed)
    model = build_model("basset", 2, n_genes=N_GENES, with_mean=with_mean, head=head, n_tasks=3, seq_len=CONTEXT,
                        width=0.05, hidden=16)
    gen = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    return model.eval()


def small_dataset(**overrides) -> Dataset:
    kwargs = dict(n_chroms=2, chrom_len=6_000, n_cells=5, n_genes=N_GENES, context=CONTEXT, stride=100)
    kwargs.update(overrides)
    ds = random_dataset(**kwargs)
    ds.attrs = {"expression_transform": "log1p"}
    return ds


@pytest.fixture
def setup(tmp_path):
    """A data set file, a tiny stage-2 checkpoint trained on it (in name), and the data set in memory."""
    ds = small_dataset()
    write_dataset(tmp_path / "data.h5", ds)
    save_model(tmp_path / "best.pt", tiny_model(), genes=list(ds.genes), expression_transform="log1p",
               cell_types=list(ds.cell_types), train_cells=list(ds.cell_types[:4]), data=str(tmp_path / "data.h5"),
               fold=0)
    return {"dir": tmp_path, "ds": ds}


def base(ds: Dataset, chrom: str, pos: int) -> str:
    return "ACGT"[ds.genome[chrom][pos - 1]]


def other(letter: str, shift: int = 1) -> str:
    return "ACGT"[("ACGT".index(letter) + shift) % 4]


def write_vcf(path, rows: list[str], gz: bool = False):
    text = HEADER + "".join(r + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def snv_rows(ds: Dataset, chrom: str, positions) -> list[str]:
    return [f"{chrom}\t{p}\tv{p}\t{base(ds, chrom, p)}\t{other(base(ds, chrom, p))}\t.\t.\t." for p in positions]


def cli(argv, capsys):
    return run_command(variants_main, argv, capsys)


# -- the VCF reader ----------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_vcf_records_split_multiallelic_rows_and_classify_them(tmp_path, gz):
    path = write_vcf(tmp_path / ("v.vcf.gz" if gz else "v.vcf"), [
        "chr1\t10\trs1\tA\tC,T\t50\tPASS\tAC=1",
        "1\t20\t.\tac\tA\t.\t.\t.",
        "chr2\t30\trs3\tAC\tGT\t.\t.\t.",
        "chr2\t40\trs4\tA\t<DEL>,*\t.\t.\t.",
        "chr2\t50\trs5\tA\tN",
        ""])
    v = read_vcf(path)
    assert v.chrom.tolist() == ["chr1", "chr1", "1", "chr2", "chr2", "chr2", "chr2"]
    assert v.pos.tolist() == [10, 10, 20, 30, 40, 40, 50]
    assert v.ref.tolist() == ["A", "A", "AC", "AC", "A", "A", "A"]
    assert v.alt.tolist() == ["C", "T", "A", "GT", "<DEL>", "*", "N"]
    assert v.kind.tolist() == ["snv", "snv", "indel", "mnv", "other", "other", "other"]
    assert v.line.tolist() == [3, 3, 4, 5, 6, 6, 7]


@pytest.mark.parametrize("row, fragment", [
    ("chr1\t10\trs1\tA", "4 tab-separated column"),
    ("chr1\tten\trs1\tA\tC", "POS 'ten'"),
    ("chr1\t0\trs1\tA\tC", "POS '0'"),
    ("chr1\t10\trs1\tAXC\tC", "REF 'AXC'"),
    ("chr1\t10\trs1\tA\t", "empty ALT"),
    ("chr1\t10\trs1\tA\tC,,T", "empty allele"),
])
def test_a_malformed_line_is_one_line_naming_the_file_and_line(setup, capsys, row, fragment):
    d, ds = setup["dir"], setup["ds"]
    vcf = write_vcf(d / "bad.vcf", snv_rows(ds, "chr1", [500]) + [row])
    with pytest.raises(UserError, match=fr"--vcf .*bad.vcf line 4: .*{fragment}"):
        read_vcf(vcf)
    code, _, err = cli(["--model", d / "best.pt", "--vcf", vcf, "--out", d / "e.tsv"], capsys)
    assert_one_line_error(code, err, "bad.vcf line 4", fragment)
    assert not (d / "e.tsv").exists()


def test_a_truncated_gzip_file_is_one_line(setup, capsys):
    d, ds = setup["dir"], setup["ds"]
    good = write_vcf(d / "v.vcf.gz", snv_rows(ds, "chr1", range(100, 2000, 7)), gz=True)
    (d / "cut.vcf.gz").write_bytes(good.read_bytes()[:-20])
    code, _, err = cli(["--model", d / "best.pt", "--vcf", d / "cut.vcf.gz", "--out", d / "e.tsv"], capsys)
    assert_one_line_error(code, err, "--vcf", "cut.vcf.gz", "cannot read")


# -- allele windows ----------------------------------------------------------------------------
def test_windows_from_the_genome_are_the_data_sets_and_hold_exactly_their_positions():
    ds = small_dataset(stride=70)
    index = WindowIndex(ds)
    starts = window_starts(ds)
    for k in range(len(ds.chromosomes)):
        bins = np.flatnonzero(ds.bin_chrom == k)
        assert np.array_equal(genome_windows(ds, k, starts[bins]), ds.window_codes(bins))
        for p in (0, 1, 150, 199, 200, 2_345, 5_999):
            expected = bins[(starts[bins] <= p) & (p < starts[bins] + ds.context)]
            assert sorted(index.bins_holding(k, p).tolist()) == expected.tolist(), p
            centre = ds.bin_start[bins] + ds.bin_size // 2
            assert index.nearest_bin(k, p) == bins[np.argmin(np.abs(centre - p))], p
    codes = np.zeros((3, 5), dtype=np.uint8)
    changed = substitute(codes, np.array([0, 4, 5]), np.array([1, 2, 3]))
    assert changed.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 2], [0] * 5] and not codes.any()


def read_vcf_rows(ds: Dataset, sites):
    """A Variants object of SNVs at (chrom, 1-based pos), via a VCF file written to a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        rows = [r for chrom, pos in sites for r in snv_rows(ds, chrom, [pos])]
        return read_vcf(write_vcf(Path(folder) / "v.vcf", rows))


def plain_logits(model, codes: np.ndarray, expression: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(n, C) logits of the model's ordinary forward pass, one (window, cell type) pair per row."""
    n, c = len(codes), len(expression)
    with torch.no_grad():
        x = one_hot(codes).repeat_interleave(c, dim=0)
        e = torch.as_tensor(expression).repeat(n, 1)
        m = torch.as_tensor(mean, dtype=torch.float32).repeat_interleave(c)
        return model(x, e, m).view(n, c).numpy()


@pytest.mark.parametrize("head", ["simple", "complex"])
@pytest.mark.parametrize("batch_size", [1, 8, 64])
def test_delta_is_the_difference_of_two_plain_forward_passes(batch_size, head):
    """Every measure from the split head and batched alleles equals the plain model's, window by window."""
    torch.set_num_threads(1)
    ds = small_dataset()
    model = tiny_model(head=head)
    mean = np.random.default_rng(3).random(ds.n_bins).astype(np.float32)
    variants = read_vcf_rows(ds, [("chr1", 3), ("chr1", 2_000), ("chr2", 2_999), ("chr2", 5_999)])
    index = WindowIndex(ds)
    placed = place_variants(variants, ds, index, strict=True, where="--vcf test")
    expression = ds.expression[[0, 2, 4]]
    ((_, got, n_bins),) = list(score_blocks([Member(model, {}, mean)], ds, placed, expression, batch_size, "cpu"))

    starts = window_starts(ds)
    assert len(placed.chrom) == len(variants) == 4
    for v, (k, p, alt) in enumerate(zip(placed.chrom, placed.position, placed.alt_code)):
        holding = np.flatnonzero((ds.bin_chrom == k) & (starts <= p) & (p < starts + ds.context))
        centre = np.array([p - ds.context // 2])
        nearest = np.flatnonzero(ds.bin_chrom == k)[np.argmin(np.abs(starts[ds.bin_chrom == k] - centre))]
        ref = genome_windows(ds, k, np.concatenate([centre, starts[holding]]))
        alt_codes = ref.copy()
        alt_codes[np.arange(len(ref)), p - np.concatenate([centre, starts[holding]])] = alt
        window_mean = mean[np.concatenate([[nearest], holding])]
        r = plain_logits(model, ref, expression, window_mean)
        a = plain_logits(model, alt_codes, expression, window_mean)
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        assert n_bins[v] == len(holding) > 0
        assert np.allclose(got["delta_logit"][v], a[0] - r[0], atol=2e-5)
        assert np.allclose(got["ref_prob"][v], sig(r[0]), atol=1e-6)
        assert np.allclose(got["alt_prob"][v], sig(a[0]), atol=1e-6)
        assert np.allclose(got["delta_prob"][v], sig(a[0]) - sig(r[0]), atol=1e-6)
        assert np.allclose(got["max_abs_delta_logit"][v], np.abs(a[1:] - r[1:]).max(0), atol=2e-5)
        assert np.allclose(got["max_abs_delta_prob"][v], np.abs(sig(a[1:]) - sig(r[1:])).max(0), atol=1e-6)


def test_only_bins_whose_window_holds_the_variant_change_and_outside_every_window_delta_is_zero():
    """Plain predictions of every bin on the reference and on the mutated genome differ exactly at the bins
    the tool scores; a variant no bin's window holds has n_bins 0 and max |Δ| 0."""
    torch.set_num_threads(1)
    ds = small_dataset(n_chroms=1, chrom_len=4_000)
    keep = ds.bin_start < 2_000                      # bins on the first half only: the second half is outside
    ds = Dataset(chromosomes=ds.chromosomes, bin_chrom=ds.bin_chrom[keep], bin_start=ds.bin_start[keep],
                 labels=ds.labels[keep], cell_types=ds.cell_types, expression=ds.expression, genes=ds.genes,
                 bin_size=ds.bin_size, stride=ds.stride, context=ds.context, genome=ds.genome)
    model = tiny_model(with_mean=False)
    starts = window_starts(ds)
    edge = int(starts[7])                            # the first base of bin 7's window: the left edge
    far = 3_500                                      # beyond the last window (the last ends at 2,200)
    variants = read_vcf_rows(ds, [("chr1", edge + 1), ("chr1", far + 1)])
    placed = place_variants(variants, ds, WindowIndex(ds), strict=True, where="test")
    ((_, got, n_bins),) = list(score_blocks([Member(model, {}, None)], ds, placed, ds.expression, 8, "cpu"))

    mutated = {"chr1": ds.genome["chr1"].copy()}
    mutated["chr1"][edge] = placed.alt_code[0]
    all_bins = np.arange(ds.n_bins)
    ref = plain_logits_all(model, ds, ds.genome, all_bins)
    alt = plain_logits_all(model, ds, mutated, all_bins)
    changed = np.flatnonzero(np.abs(alt - ref).max(1) > 0)
    holding = np.flatnonzero((starts <= edge) & (edge < starts + ds.context))
    assert changed.tolist() == holding.tolist() and 7 in holding and n_bins[0] == len(holding)
    assert np.allclose(got["max_abs_delta_logit"][0], np.abs(alt - ref).max(0), atol=2e-5)
    assert n_bins[1] == 0 and not got["max_abs_delta_logit"][1].any() and not got["max_abs_delta_prob"][1].any()


def plain_logits_all(model, ds: Dataset, genome: dict, bins: np.ndarray) -> np.ndarray:
    """(n, C) plain logits of data set bins whose windows are cut from `genome`."""
    starts = window_starts(ds)
    copy = Dataset(chromosomes=ds.chromosomes, bin_chrom=ds.bin_chrom, bin_start=ds.bin_start, labels=ds.labels,
                   cell_types=ds.cell_types, expression=ds.expression, genes=ds.genes, bin_size=ds.bin_size,
                   stride=ds.stride, context=ds.context, genome=genome)
    codes = genome_windows(copy, 0, starts[bins])
    n, c = len(codes), len(ds.expression)
    with torch.no_grad():
        x = one_hot(codes).repeat_interleave(c, dim=0)
        return model(x, torch.as_tensor(ds.expression).repeat(n, 1)).view(n, c).numpy()


# -- the command -------------------------------------------------------------------------------
def test_the_command_scores_own_and_new_cell_types_in_tsv_and_hdf5(setup, capsys, monkeypatch):
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER", 0.0)  # the progress line at once, in this log
    d, ds = setup["dir"], setup["ds"]
    vcf = write_vcf(d / "v.vcf.gz", snv_rows(ds, "chr1", [1, 700, 5_999]) + snv_rows(ds, "chr2", [3_000])
                    + ["chr2\t100\tdel\tAC\tA\t.\t.\t.", "chr9\t5\tx\tA\tC\t.\t.\t."], gz=True)
    genes = list(ds.genes)
    table = pd.DataFrame(np.exp(ds.expression[[1, 3]].T) - 1, index=genes, columns=["newA", "newB"])
    table.rename_axis("gene").to_csv(d / "new.tsv", sep="\t")
    code, out, err = cli(["--model", d / "best.pt", "--vcf", vcf, "--expression", d / "new.tsv", "--out",
                          d / "e.tsv"], capsys)
    assert code == 0, err
    assert re.search(r"^variants \| \d:\d\d \| scoring \| 4/4 variants \| (?:[\d.,]+ variants/s|[\d.,]+ s each)$", err, re.M), err
    assert re.search(r"e\.tsv: 4 variants x \d+ cell types \(\d+ rows\); scored in \d:\d\d, (?:[\d.,]+ variants/s|[\d.,]+ s each)", out)
    tsv = pd.read_csv(d / "e.tsv", sep="\t")
    cells = list(ds.cell_types) + ["newA", "newB"]
    assert len(tsv) == 4 * len(cells) and tsv["cell_type"].tolist()[:len(cells)] == cells
    assert "1 indel" in err and "chr9 (1)" in err and err.count("chr9") == 1
    # a new cell type with cell1's (and cell3's) expression scores as cell1 (cell3) does
    for new, own in (("newA", "cell1"), ("newB", "cell3")):
        a = tsv[tsv.cell_type == new][list(MEASURES)].to_numpy()
        b = tsv[tsv.cell_type == own][list(MEASURES)].to_numpy()
        assert np.allclose(a, b, atol=1e-5)

    code, _, err = cli(["--model", d / "best.pt", "--vcf", vcf, "--expression", d / "new.tsv", "--cells",
                        "newB,cell0", "--out", d / "e.h5"], capsys)
    assert code == 0, err
    with h5py.File(d / "e.h5") as f:
        assert [c.decode() for c in f["cell_types"][()]] == ["newB", "cell0"]
        assert f["variants/pos"][()].tolist() == [1, 700, 5_999, 3_000]
        for m in MEASURES:
            by_cell = tsv.set_index(["pos", "cell_type"])[m]
            expected = [[by_cell[(p, c)] for c in ("newB", "cell0")] for p in (1, 700, 5_999, 3_000)]
            assert np.allclose(f[m][()], expected, rtol=1e-5, atol=1e-6)

    # from Python: the same effects as a DataFrame, from the VCF or from a DataFrame of its SNVs
    from chromtune.variants import predict_variant_effects

    got = predict_variant_effects(vcf, d / "best.pt", expression=table, cells=["newB", "cell0"])
    snvs = pd.DataFrame({"chrom": ["chr1"] * 3 + ["chr2"], "pos": [1, 700, 5_999, 3_000],
                         "ref": [r.split("\t")[3] for r in snv_rows(ds, "chr1", [1, 700, 5_999]) + snv_rows(ds, "chr2", [3_000])],
                         "alt": [r.split("\t")[4] for r in snv_rows(ds, "chr1", [1, 700, 5_999]) + snv_rows(ds, "chr2", [3_000])]})
    from_frame = predict_variant_effects(snvs, d / "best.pt", expression=table, cells="newB,cell0")
    expected = tsv[tsv.cell_type.isin(["newB", "cell0"])].set_index(["pos", "cell_type"])
    for frame in (got, from_frame):
        assert len(frame) == 8 and frame["cell_type"].tolist()[:2] == ["newB", "cell0"]
        assert np.allclose(frame[list(MEASURES)].to_numpy(),
                           expected.loc[list(zip(frame.pos, frame.cell_type)), list(MEASURES)].to_numpy(), atol=1e-5)


@pytest.mark.tracking
def test_a_sweep_run_id_averages_its_fold_models(setup, capsys):
    """--model SWEEP_RUN_ID: every finished fold's model, each with its own training cell types' mean feature;
    per window the ensemble's probabilities are the mean of the fold models' (so Δ prob is the mean Δ prob),
    and Δ logit is that of the mean probabilities. An unfinished fold is no member."""
    import mlflow

    d, ds = setup["dir"], setup["ds"]
    uri = f"sqlite:///{d / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("variants-test", artifact_location=(d / "artifacts").as_uri())
    sweep = client.create_run(experiment, tags={"chromtune.level": "sweep"}).info.run_id
    train = {0: [0, 1, 2], 1: [1, 2, 3, 4], 2: [0, 4]}
    models, runs = {}, {}
    for fold in (1, 0, 2):
        models[fold] = tiny_model(seed=10 + fold)
        folder = d / f"fold{fold}"
        folder.mkdir()
        save_model(folder / "best.pt", models[fold], genes=list(ds.genes), expression_transform="log1p",
                   cell_types=list(ds.cell_types), train_cells=[ds.cell_types[c] for c in train[fold]],
                   data=str(d / "data.h5"), fold=fold)
        runs[fold] = client.create_run(experiment, tags={"chromtune.level": "fold", "fold": str(fold),
                                                        "mlflow.parentRunId": sweep}).info.run_id
        client.log_artifact(runs[fold], str(folder / "best.pt"))
        if fold != 2:  # fold 2 never finished: not a member
            client.set_terminated(runs[fold])

    # window by window: the ensemble's probabilities are the mean of the members'
    variants = read_vcf_rows(ds, [("chr1", 500), ("chr1", 900), ("chr2", 4_321)])
    index = WindowIndex(ds)
    placed = place_variants(variants, ds, index, strict=True, where="test")
    windows = allele_windows(ds, index, placed.chrom, placed.position, placed.alt_code)
    members = {f: Member(models[f], {}, mean_accessibility(ds.labels, np.asarray(train[f]))) for f in (0, 1)}
    alone = {f: window_effects([members[f]], windows, ds.expression, 8, "cpu") for f in (0, 1)}
    both = window_effects([members[0], members[1]], windows, ds.expression, 8, "cpu")
    sig = lambda z: 1 / (1 + np.exp(-z.astype(np.float64)))  # noqa: E731
    for a in (0, 1):  # reference, alternate
        assert np.abs(sig(alone[0][a]) - sig(alone[1][a])).max() > 1e-3  # the folds do disagree
        np.testing.assert_allclose(sig(both[a]), (sig(alone[0][a]) + sig(alone[1][a])) / 2, atol=1e-6)

    # the command: the sweep's output against each fold run's own
    vcf = write_vcf(d / "v.vcf", snv_rows(ds, "chr1", [500, 900]) + snv_rows(ds, "chr2", [4_321]))
    code, _, err = cli(["--model", sweep, "--tracking-uri", uri, "--vcf", vcf, "--out", d / "s.tsv"], capsys)
    assert code == 0, err
    assert f"the mean of 2 fold models: fold 0 (run {runs[0]}), fold 1 (run {runs[1]})" in err
    per_fold = []
    for fold in (0, 1):
        code, _, err = cli(["--model", runs[fold], "--tracking-uri", uri, "--vcf", vcf, "--out",
                            d / f"f{fold}.tsv"], capsys)
        assert code == 0, err
        per_fold.append(pd.read_csv(d / f"f{fold}.tsv", sep="\t"))
    ensemble = pd.read_csv(d / "s.tsv", sep="\t")
    for m in ("ref_prob", "alt_prob", "delta_prob"):
        np.testing.assert_allclose(ensemble[m], (per_fold[0][m] + per_fold[1][m]) / 2, atol=2e-6)
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    np.testing.assert_allclose(ensemble["delta_logit"], logit(ensemble["alt_prob"]) - logit(ensemble["ref_prob"]),
                               atol=1e-3)
    code, _, err = cli(["--model", sweep, "--tracking-uri", uri, "--vcf", vcf, "--out", d / "s.h5"], capsys)
    assert code == 0, err
    with h5py.File(d / "s.h5") as f:
        assert json.loads(f.attrs["run_ids"]) == [runs[0], runs[1]]


def test_a_ref_mismatch_is_counted_and_skipped_or_an_error_with_strict(setup, capsys):
    d, ds = setup["dir"], setup["ds"]
    wrong = other(base(ds, "chr1", 800), 2)
    rows = snv_rows(ds, "chr1", [500]) + [f"1\t800\tbad\t{wrong}\t{other(wrong)}\t.\t.\t.", "chr1\t6001\tpast\tA\tC"]
    vcf = write_vcf(d / "v.vcf", rows)
    code, _, err = cli(["--model", d / "best.pt", "--vcf", vcf, "--out", d / "e.tsv"], capsys)
    assert code == 0, err
    assert "2 SNV(s) whose REF does not match the genome" in err and "line 4 1:800" in err
    assert pd.read_csv(d / "e.tsv", sep="\t")["id"].unique().tolist() == ["v500"]
    code, _, err = cli(["--model", d / "best.pt", "--vcf", vcf, "--strict", "--out", d / "s.tsv"], capsys)
    assert_one_line_error(code, err, "v.vcf line 4 1:800", "REF does not match", "--strict")
    assert not (d / "s.tsv").exists()


def test_ism_entries_are_the_single_variant_deltas_of_the_vcf_path(setup, capsys, monkeypatch):
    """--ism: the (C, L, 4) matrices hold, for every base and alternative, what --vcf gives for that one SNV
    (its centred window), 0 at the reference base; the TSV holds the same Δ logits."""
    d, ds = setup["dir"], setup["ds"]
    cells = ["cell3", "cell0"]
    common = ["--model", d / "best.pt", "--cells", ",".join(cells), "--batch-size", 7]
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER", 0.0)  # the progress line at once, in this log
    for out in ("ism.h5", "ism.tsv"):
        code, printed, err = cli([*common, "--ism", "chr2:991-1,010", "--out", d / out], capsys)
        assert code == 0, err
        assert re.search(r"^variants \| \d:\d\d \| scoring \| 60/60 variants", err.splitlines()[-1]), err  # 20 bases x 3
        assert "20 bases x 4 x 2 cell types; scored in" in printed
    rows = [f"chr2\t{p}\t.\t{base(ds, 'chr2', p)}\t{alt}\t.\t.\t." for p in (991, 1_000, 1_010)
            for alt in "ACGT" if alt != base(ds, "chr2", p)]
    code, _, err = cli([*common, "--vcf", write_vcf(d / "three.vcf", rows), "--out", d / "three.tsv"], capsys)
    assert code == 0, err
    effects = pd.read_csv(d / "three.tsv", sep="\t")
    assert len(effects) == 9 * len(cells)
    with h5py.File(d / "ism.h5") as f:
        delta_logit, delta_prob, ref_prob = f["delta_logit"][()], f["delta_prob"][()], f["ref_prob"][()]
        reference = "".join(b.decode() for b in f["reference"][()])
        assert [c.decode() for c in f["cell_types"][()]] == cells and f.attrs["ism"] == "chr2:991-1,010"
        assert f["position"][()].tolist() == list(range(991, 1_011)) and delta_logit.shape == (2, 20, 4)
    assert reference == "".join("ACGT"[c] for c in ds.genome["chr2"][990:1_010])
    for r in effects.itertuples():
        j, i, b = cells.index(r.cell_type), r.pos - 991, "ACGT".index(r.alt)
        assert delta_logit[j, i, b] == pytest.approx(r.delta_logit, abs=1e-5)
        assert delta_prob[j, i, b] == pytest.approx(r.delta_prob, abs=1e-6)
        assert ref_prob[j, i] == pytest.approx(r.ref_prob, abs=1e-6)
    at_reference = delta_logit[:, np.arange(20), ["ACGT".index(b) for b in reference]]
    assert not at_reference.any() and not np.isnan(delta_logit).any() and np.count_nonzero(delta_logit) > 100  # of 120
    tsv = pd.read_csv(d / "ism.tsv", sep="\t")
    assert tsv[["cell_type", "pos"]].values.tolist() == [[c, p] for c in cells for p in range(991, 1_011)]
    np.testing.assert_allclose(tsv[list("ACGT")].to_numpy().reshape(2, 20, 4), delta_logit, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("region, fragments", [
    ("chr1-5", ["--ism chr1-5", "CHROM:START-END"]),
    ("chr9:1-10", ["--ism chr9:1-10", "no chromosome chr9"]),
    ("chr1:10-5", ["--ism chr1:10-5", "START <= END <= 6,000"]),
    ("chr1:5990-6001", ["6,000"]),
    ("chr1:1-101", ["101 bp", "at most 100 bp"]),
])
def test_a_bad_ism_region_is_one_line_and_writes_nothing(setup, capsys, monkeypatch, region, fragments):
    from chromtune.variants import ism

    monkeypatch.setattr(ism, "ISM_MAX_BP", 100)
    d = setup["dir"]
    code, _, err = cli(["--model", d / "best.pt", "--ism", region, "--out", d / "ism.h5"], capsys)
    assert_one_line_error(code, err, *fragments)
    assert not (d / "ism.h5").exists()


@pytest.mark.parametrize("argv, fragments", [
    (["--out", "{d}/e.csv"], ["--out", "name it .tsv"]),
    (["--batch-size", "0"], ["--batch-size 0"]),
    (["--cells", "cell0,nope"], ["--cells", "nope"]),
    (["--vcf", "{d}/missing.vcf"], ["--vcf", "missing.vcf", "no such file"]),
])
def test_bad_arguments_are_one_line_and_write_nothing(setup, capsys, argv, fragments):
    d, ds = setup["dir"], setup["ds"]
    vcf = write_vcf(d / "v.vcf", snv_rows(ds, "chr1", [500]))
    base_argv = {"--model": str(d / "best.pt"), "--vcf": str(vcf), "--out": str(d / "e.tsv")}
    extra = [a.format(d=d) for a in argv]
    for flag in list(base_argv):
        if flag in extra:
            del base_argv[flag]
    code, _, err = cli([x for kv in base_argv.items() for x in kv] + extra, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not (d / "e.tsv").exists()



# -- the science -------------------------------------------------------------------------------
BROKEN_MOTIFS = ["SPI1", "GATA1", "HNF4A", "NEUROD1", "MYOD1"]   # one driver per lineage (not CTCF: open everywhere)
SITES_PER_MOTIF = 20


def planted_site_snvs(ds: Dataset) -> pd.DataFrame:
    """Per motif of BROKEN_MOTIFS, up to SITES_PER_MOTIF single-motif sites with two copies whose first copy holds
    the consensus base at the motif's most informative column; per site two SNVs: ``break`` writes that column's
    least likely base into the copy (on the copy's strand), ``control`` changes a base of the same bin 20 bp
    beyond the cluster, where no planted instance lies. Columns: motif, site, kind, chrom, pos (1-based), ref, alt."""
    t = ds.truth
    names = [n.decode() for n in t["motif_names"][()]]
    pwm, width = t["motif_pwm"][()], t["motif_width"][()]
    site_motif, site_motif2, copies = t["site_motif"][()], t["site_motif2"][()], t["site_copies"][()]
    inst_site, inst_start, inst_strand = t["instance_site"][()], t["instance_start"][()], t["instance_strand"][()]
    inst_motif = t["instance_motif"][()]
    site_bin = np.full(len(site_motif), -1)
    site_bin[t["bin_site"][()][t["bin_site"][()] >= 0]] = np.flatnonzero(t["bin_site"][()] >= 0)
    rows = []
    for name in BROKEN_MOTIFS:
        m = names.index(name)
        p = pwm[m, :, :width[m]]
        column = int(np.argmax(p.max(0)))
        best, worst = int(np.argmax(p[:, column])), int(np.argmin(p[:, column]))
        kept = 0
        for s in np.flatnonzero((site_motif == m) & (site_motif2 < 0) & (copies == 2)):
            first, *_ = np.flatnonzero(inst_site == s)
            chrom = ds.chromosomes[ds.bin_chrom[site_bin[s]]]
            genome = ds.genome[chrom]
            forward = inst_strand[first] > 0
            q = int(inst_start[first]) + (column if forward else int(width[m]) - 1 - column)
            if genome[q] != (best if forward else 3 - best):
                continue
            instances = np.flatnonzero(inst_site == s)
            end = int(max(inst_start[i] + width[inst_motif[i]] for i in instances))
            control = end + 20
            if control >= ds.bin_start[site_bin[s]] + ds.bin_size:
                continue
            rows.append((name, s, "break", chrom, q + 1, "ACGT"[genome[q]], "ACGT"[worst if forward else 3 - worst]))
            rows.append((name, s, "control", chrom, control + 1, "ACGT"[genome[control]],
                         "ACGT"[(genome[control] + 2) % 4]))
            kept += 1
            if kept == SITES_PER_MOTIF:
                break
    return pd.DataFrame(rows, columns=["motif", "site", "kind", "chrom", "pos", "ref", "alt"])


def planted_effects(model, tmp_path: Path, capsys) -> pd.DataFrame:
    """Mean Δ probability per (motif, kind, cells) over planted_site_snvs, scored by ``chromtune variants``:
    cells ``on`` are those whose driver TF is active (tf_activity > 0.5), ``off`` those where it is not (< 0.1)."""
    from chromtune.data.dataset import open_dataset
    from chromtune.data.demo import demo_path

    ds = open_dataset(demo_path())
    snvs = planted_site_snvs(ds)
    snvs["id"] = [f"{m}_{s}_{k}" for m, s, k in zip(snvs.motif, snvs.site, snvs.kind)]
    vcf = write_vcf(tmp_path / "planted.vcf", [f"{r.chrom}\t{r.pos}\t{r.id}\t{r.ref}\t{r.alt}\t.\t.\t."
                                               for r in snvs.itertuples()])
    code, _, err = cli(["--model", model, "--vcf", vcf, "--strict", "--out", tmp_path / "e.tsv"], capsys)
    assert code == 0, err
    effects = pd.read_csv(tmp_path / "e.tsv", sep="\t").merge(snvs[["id", "motif", "kind"]], on="id")
    names = [n.decode() for n in ds.truth["motif_names"][()]]
    cell = {c: j for j, c in enumerate(ds.cell_types)}
    a = ds.truth["tf_activity"][()][[cell[c] for c in effects.cell_type], [names.index(m) for m in effects.motif]]
    effects["cells"] = np.where(a > 0.5, "on", np.where(a < 0.1, "off", "between"))
    return effects.groupby(["motif", "kind", "cells"])["delta_prob"].agg(["mean", "count"])


@pytest.mark.slow
def test_breaking_a_planted_motif_lowers_accessibility_only_where_its_tf_is_active(trained_demo_resnet, tmp_path,
                                                                                   capsys):
    """The demo's planted truth, with the ResNet that test_interpret's slow test interprets (one training for both).

    An SNV that breaks a motif copy of a two-copy site lowers the site's predicted accessibility where the motif's
    driver TF is active; where it is inactive the site is closed with or without the copy, so the drop is much
    smaller; and an SNV 20 bp beside the cluster, in the same bin, hardly moves it. Means over the five motifs'
    sites (100 SNVs, 5-6 active and 24-25 inactive cell types each). A sequence-only model fails the second
    assertion, a model that reacts to any base the third, one that never learned the motifs the first. Measured on
    three independently trained demo ResNets (width 0.125, folds 0 and 1): drop where active -0.11 to -0.19,
    inactive/active 0.15-0.36, beside/active below 0.02; every motif's drop where active was negative. The
    fixture's own recipe (width 0.25, seed 0, trained outside pytest): -0.26, 0.24, 0.013.
    """
    effects = planted_effects(trained_demo_resnet, tmp_path, capsys)
    with capsys.disabled():
        print("\nmean delta prob (SNVs x cell types):")
        print(effects.unstack(["kind", "cells"]).round(4).to_string())
    mean = effects["mean"].unstack(["kind", "cells"])
    assert (effects.loc[(BROKEN_MOTIFS, "break", "on"), "count"] >= 5 * SITES_PER_MOTIF // 2).all()
    active, inactive = mean["break", "on"].mean(), mean["break", "off"].mean()
    beside = mean["control", "on"].mean()
    assert active < -0.05, mean
    assert abs(inactive) < abs(active) / 2, mean
    assert abs(beside) < abs(active) / 5, mean
    assert (mean["break", "on"] < 0).all(), mean
