"""chromtune interpret: the bin rule, seqlets back to loci, motif activity, correlation, the CLI and its bad input.

The fast tests use tiny untrained models and random data sets (the plumbing, and answers known in
closed form); the slow test trains a ResNet on the demo data set and checks the science: the
planted motifs are discovered and each one's activity follows its driver TF's expression.
"""

from __future__ import annotations

import re
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from memelite.io import write_meme
from modiscolite import core

from chromtune import progress
from chromtune.data.dataset import open_dataset, write_dataset
from chromtune.data.demo import demo_path
from chromtune.cli.interpret import main as interpret_main
from chromtune.interpret import activity, discovery
from chromtune.interpret import pipeline as interpret_pipeline
from chromtune.interpret.motif_match import planted_motifs
from chromtune.models import build_model
from chromtune.models.checkpoint import save_model
from chromtune.predict.expression import align_expression
from chromtune.predict.loading import load_one
from chromtune.predict.scoring import predict_accessibility
from chromtune.train.baselines import mean_accessibility
from conftest import assert_one_line_error, random_dataset, run_command
from test_attribution import ProductToy

N_GENES, CONTEXT = 6, 400


def tiny_checkpoint(path, ds, data_path, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = build_model("basset", 2, n_genes=N_GENES, with_mean=True, seq_len=CONTEXT, width=0.05, hidden=16)
    extra = dict(genes=list(ds.genes), expression_transform="log1p", cell_types=list(ds.cell_types),
                 train_cells=list(ds.cell_types[:6]), data=str(data_path), fold=0)
    extra.update(overrides)
    save_model(path, model.eval(), **extra)
    return path


@pytest.fixture
def setup(tmp_path):
    """A data set file (random genome, 10 cell types), a tiny stage-2 checkpoint, and a MEME database."""
    ds = random_dataset(n_chroms=2, chrom_len=12_000, n_cells=10, n_genes=N_GENES, context=CONTEXT,
                        positive_rate=0.15)
    ds.attrs = {"expression_transform": "log1p"}
    write_dataset(tmp_path / "data.h5", ds)
    tiny_checkpoint(tmp_path / "best.pt", ds, tmp_path / "data.h5")
    rng = np.random.default_rng(0)
    write_meme(str(tmp_path / "db.meme"), {f"M{k} TF{k}": rng.dirichlet(np.ones(4), 8).T for k in range(3)})
    return {"dir": tmp_path, "ds": ds}


def cli(argv, capsys):
    return run_command(interpret_main, argv, capsys)


# -- the pieces --------------------------------------------------------------------------------
def test_bins_are_accessible_in_the_cell_type_and_in_few_cell_types():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 10)) < 0.2).astype(np.uint8)
    fraction = labels.mean(1)
    candidates = np.arange(50, 400)
    chosen = discovery.select_bins(labels[candidates] == 1, fraction, candidates, 10**6, np.random.default_rng(1))
    assert len(chosen) == labels.shape[1]
    for j, bins in enumerate(chosen):
        expected = [i for i in candidates if labels[i, j] and fraction[i] < 0.3]
        assert bins.tolist() == expected and len(expected) > 20
    capped = discovery.select_bins(labels[candidates] == 1, fraction, candidates, 7, np.random.default_rng(1))
    again = discovery.select_bins(labels[candidates] == 1, fraction, candidates, 7, np.random.default_rng(1))
    assert len(capped) == len(again) == len(chosen)
    for bins, full, same in zip(capped, chosen, again):
        assert len(bins) == 7 and set(bins) <= set(full) and (np.diff(bins) > 0).all()
        assert bins.tolist() == same.tolist()


def test_pearson_columns_matches_corrcoef_and_is_nan_for_a_constant_gene():
    rng = np.random.default_rng(0)
    scores, expression = rng.random((3, 9)), rng.random((9, 4))
    expression[:, 2] = 1.5
    r = activity.pearson_columns(scores, expression)
    assert r.shape == (3, 4) and np.isnan(r[:, 2]).all()
    for m in range(3):
        for g in (0, 1, 3):
            assert r[m, g] == pytest.approx(np.corrcoef(scores[m], expression[:, g])[0, 1])


def test_seqlets_on_both_strands_map_back_to_the_planted_bases():
    """Real modisco-lite seqlets: the trimmed core of a pattern lands on the motif, forward or reverse."""
    rng = np.random.default_rng(0)
    n, width, motif = 6, 60, np.array([0, 1, 2, 3, 3, 2])  # ACGTTG
    codes = rng.integers(0, 4, (n, width))
    starts = rng.integers(15, 35, n)
    reverse = np.arange(n) % 2 == 1
    for i in range(n):
        codes[i, starts[i]:starts[i] + 6] = 3 - motif[::-1] if reverse[i] else motif
    one_hot = (codes[:, :, None] == np.arange(4)).astype(np.float32)
    hyp = np.zeros_like(one_hot)
    for i in range(n):
        hyp[i, starts[i]:starts[i] + 6] = 1.0
    tracks = core.TrackSet(one_hot, one_hot * hyp, hyp)
    # Seqlets of 16 bp: 4 bp before the motif on its own strand, 6 after.
    seqlets = [core.Seqlet(i, int(starts[i]) - 6 if reverse[i] else int(starts[i]) - 4,
                           int(starts[i]) + 10 if reverse[i] else int(starts[i]) + 12, bool(reverse[i]))
               for i in range(n)]
    pattern = core.SeqletSet(tracks.create_seqlets(seqlets), track_set=tracks)
    bins = np.arange(100, 100 + n)
    (record,) = discovery.pattern_records("cellA", bins, 7, {"pos_patterns": [pattern]})
    assert record["pattern"] == "pos_patterns.pattern_0" and record["sign"] == 1 and record["n_seqlets"] == n
    assert record["consensus"] == "ACGTTG" and record["query"].shape == (4, 6)
    assert record["loci"].tolist() == [[100 + i, 7 + starts[i], 13 + starts[i]] for i in range(n)]


def test_motif_activity_is_the_mean_contribution_over_instances_per_cell_type():
    ds = random_dataset(n_chroms=1, chrom_len=3_000, n_cells=4, n_genes=5, bin_size=20, stride=20, context=40)
    model = ProductToy(with_mean=False, seed=2).float()
    model.w, model.u = model.w.float(), model.u.float()
    loci = {"A": np.array([[10, 3, 9], [40, 0, 40]]), "B": np.array([[10, 20, 22]])}
    expression = ds.expression[[0, 2, 3]]
    found = activity.motif_activity(model, ds, loci, expression, None, batch_size=1, device="cpu")
    centred = (model.w - model.w.mean(0)).numpy()

    def summed(bin_, start, end):
        codes = ds.window_codes(np.array([bin_]))[0]
        return centred[codes[start:end], np.arange(start, end)].sum()

    scale = expression @ model.u.numpy()
    expected_a = np.mean([summed(10, 3, 9), summed(40, 0, 40)]) * scale
    expected_b = summed(10, 20, 22) * scale
    assert np.allclose(found, [expected_a, expected_b], atol=1e-4)


def test_negative_patterns_are_their_own_rows():
    records = [dict(motif="M1 X", sign=1, loci=np.array([[1, 2, 8], [3, 0, 6]])),
               dict(motif="M1 X", sign=1, loci=np.array([[1, 2, 8]])),
               dict(motif="M1 X", sign=-1, loci=np.array([[5, 1, 7]])),
               dict(motif="", sign=1, loci=np.array([[6, 1, 7]]))]  # no TF motif (none matched, or a bias motif)
    loci = activity.instance_loci(records, 10, np.random.default_rng(0))
    assert list(loci) == ["M1 X", "M1 X (negative)"]
    assert loci["M1 X"].tolist() == [[1, 2, 8], [3, 0, 6]] and loci["M1 X (negative)"].tolist() == [[5, 1, 7]]
    assert len(activity.instance_loci(records, 1, np.random.default_rng(0))["M1 X"]) == 1


# -- the command -------------------------------------------------------------------------------
@pytest.mark.tracking
def test_cli_writes_every_output_and_logs_them_under_the_fold_run(setup, capsys):
    import mlflow

    d = setup["dir"]
    uri = f"sqlite:///{d / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("interpret-test", artifact_location=(d / "artifacts").as_uri())
    fold_run = client.create_run(experiment, tags={"chromtune.level": "fold"}).info.run_id
    client.log_artifact(fold_run, str(d / "best.pt"))
    code, out, err = cli(["--model", fold_run, "--tracking-uri", uri, "--motifs", d / "db.meme", "--max-bins", 40,
                          "--out", d / "out"], capsys)
    assert code == 0, err
    names = ["contributions.h5", "cell_types.tsv", "motifs.tsv", "motif_summary.tsv", "tsne.png"]
    for name in names:
        assert (d / "out" / name).is_file(), name
    with h5py.File(d / "out" / "contributions.h5") as f:
        assert f["cell_types"].asstr()[()].tolist() == setup["ds"].cell_types
        labels = setup["ds"].labels
        specific = (labels == 1) & (labels.mean(1, keepdims=True) < 0.3)
        for j in range(10):
            bins, hyp = f[f"cells/{j}/bins"][()], f[f"cells/{j}/hypothetical"][()]
            assert len(bins) == min(40, specific[:, j].sum()) and specific[bins, j].all()
            assert hyp.shape == (len(bins), 4, 200) and np.allclose(hyp.sum(1), 0, atol=1e-5)
        assert f.attrs["window_start"] == 100
    ran = [c for c, n in zip(setup["ds"].cell_types, specific.sum(0)) if n >= discovery.MIN_MODISCO_BINS]
    assert 0 < len(ran) < 10 and err.count("too few for TF-MoDISco; skipped") == 10 - len(ran)
    assert sorted(p.stem for p in (d / "out" / "modisco").glob("*.h5")) == sorted(ran)
    # A cell type TF-MoDISco finds nothing in says so in one line and in cell_types.tsv (the untrained tiny model
    # gives it nothing to find in any cell type)
    cells = pd.read_csv(d / "out" / "cell_types.tsv", sep="\t", keep_default_na=False).set_index("cell_type")
    assert cells.index.tolist() == setup["ds"].cell_types and cells.loc[ran, "n_bins"].ge(20).all()
    empty = [c for c in ran if cells.loc[c, "n_positive_patterns"] + cells.loc[c, "n_negative_patterns"] == 0]
    assert empty and (cells.loc[empty, "note"] == interpret_pipeline.NO_PATTERN).all()
    for cell in empty:
        assert f"{cell}: {cells.loc[cell, 'n_bins']} bins, {interpret_pipeline.NO_PATTERN}\n" in out
    skipped = [c for c in cells.index if c not in ran]
    assert cells.loc[skipped, "note"].str.startswith("skipped: fewer than 20 bins").all()
    assert list(pd.read_csv(d / "out" / "motifs.tsv", sep="\t").columns[:3]) == ["cell_type", "pattern", "n_seqlets"]
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{fold_run}'")
    assert len(children) == 1 and children[0].data.tags["chromtune.level"] == "interpret"
    logged = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert set(names) <= logged and "modisco" in logged
    assert f"logged to MLflow run {children[0].info.run_id}" in out


def test_cli_on_new_cell_types_from_an_expression_table(setup, capsys, monkeypatch):
    monkeypatch.setattr(progress, "FIRST_LINE_AFTER", 0.0)  # the progress line at once, in this log
    d, ds = setup["dir"], setup["ds"]
    table = pd.DataFrame(np.random.default_rng(2).gamma(1.0, 20.0, (N_GENES, 3)), index=ds.genes,
                         columns=["newA", "newB", "newC"])
    table.to_csv(d / "new.tsv", sep="\t")
    (d / "regions.bed").write_text("chr2\t0\t12000\n")
    code, out, err = cli(["--model", d / "best.pt", "--expression", d / "new.tsv", "--cells", "newC,newA",
                          "--motifs", d / "db.meme", "--window", 100, "--max-bins", 25, "--regions", d / "regions.bed",
                          "--out", d / "out"], capsys)
    assert code == 0, err
    with h5py.File(d / "out" / "contributions.h5") as f:
        assert f["cell_types"].asstr()[()].tolist() == ["newC", "newA"]
        assert f["cells/0/hypothetical"].shape[2] == 100 and f.attrs["window_start"] == 150
        bins = f["cells/0/bins"][()]
        # New cell types have no labels: their bins are the specific ones predicted accessible, in --regions.
        assert len(bins) and (ds.bin_chrom[bins] == 1).all() and (ds.labels[bins].mean(1) < 0.3).all()
    model, meta = load_one(str(d / "best.pt"))
    expression, _ = align_expression(d / "new.tsv", meta["genes"], "log1p")
    mean = mean_accessibility(ds.labels, np.arange(6))
    assert (predict_accessibility(model, ds, expression[[2]], bins, mean) >= 0.5).all()
    assert not (d / "out" / "tsne.png").exists() and "t-SNE needs at least 5" in err
    lines = err.splitlines()  # the progress line: when the command began, and its last state
    assert lines[0].startswith("interpret | 0:0") and re.fullmatch(r"interpret \| .* \| 2/2 cell types( \| .*)?", lines[-1])


@pytest.mark.parametrize("case", ["unknown genes", "nan expression", "unknown cells", "other gene list",
                                  "missing extra", "no planted motifs", "bad motifs", "bad max-bins",
                                  "old epoch checkpoint"])
def test_bad_input_is_one_line_and_writes_nothing(setup, capsys, monkeypatch, case):
    d, ds = setup["dir"], setup["ds"]
    argv = ["--model", d / "best.pt", "--motifs", d / "db.meme", "--out", d / "out"]
    if case == "unknown genes":
        pd.DataFrame({"newA": [1.0, 2.0]}, index=["XYZ1", "XYZ2"]).to_csv(d / "new.tsv", sep="\t")
        argv += ["--expression", d / "new.tsv"]
        fragments = ["--expression", "none of the model's 6 genes"]
    elif case == "nan expression":
        values = np.ones((N_GENES, 2))
        values[2, 1] = np.nan
        pd.DataFrame(values, index=ds.genes, columns=["newA", "newB"]).to_csv(d / "new.tsv", sep="\t")
        argv += ["--expression", d / "new.tsv"]
        fragments = ["--expression", "'TF2', cell type 'newB'", "not a finite number"]
    elif case == "unknown cells":
        argv += ["--cells", "cell1,liver"]
        fragments = ["--cells", "liver"]
    elif case == "other gene list":
        tiny_checkpoint(d / "other.pt", ds, d / "data.h5", genes=[f"G{k}" for k in range(N_GENES)])
        argv[1] = d / "other.pt"
        fragments = ["--model", "another gene list", "--data"]
    elif case == "missing extra":
        monkeypatch.setitem(sys.modules, "modiscolite", None)
        fragments = ["modisco-lite", "pip install 'chromtune[interpret]'"]
    elif case == "no planted motifs":
        argv = argv[:2] + argv[4:]
        fragments = ["--motifs", "no planted motifs"]
    elif case == "old epoch checkpoint":  # as chromtune wrote ray/train/epoch_N/best.pt before it kept the genes
        epoch = d / "run" / "ray" / "train" / "epoch_0003" / "best.pt"
        epoch.parent.mkdir(parents=True)
        model = torch.load(d / "best.pt", weights_only=True)
        torch.save({k: model[k] for k in ("config", "state_dict", "train_cells")} | {"epoch": 3, "test_chroms": []},
                   epoch)
        argv[1] = epoch
        fragments = ["--model", "an epoch checkpoint", "no gene list", f"chromtune train --resume --out {d / 'run'}"]
    elif case == "bad motifs":
        (d / "db.meme").write_text("not a motif file\n")
        fragments = ["--motifs", "neither a MEME file"]
    else:
        argv += ["--max-bins", 0]
        fragments = ["--max-bins 0"]
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not (d / "out").exists()


# -- the science -------------------------------------------------------------------------------
LINEAGE_CELLS = ["CD14_monocyte", "erythroblast", "hepatocyte", "cortical_neuron", "myoblast", "embryonic_stem_cell"]


@pytest.mark.slow
def test_a_trained_resnet_rediscovers_the_planted_motifs_and_their_drivers(trained_demo_resnet, tmp_path, capsys):
    """Interpret one cell type per lineage with the small ResNet trained on the demo (conftest's
    trained_demo_resnet, which test_variants' planted-motif test shares).

    The issue's bar: >= 80 % of the nine planted motifs matched at Tomtom q < 0.05, and each one's
    activity correlating positively with each of its driver TFs' expression across the cell types.
    CTCF (accessible almost everywhere, so never cell-type specific) cannot be found by design, so
    this needs all eight others, with no slack. TF-MoDISco runs on 400 bins per cell type: with 200
    the second motif of a two-motif lineage (CEBPB beside SPI1) can get too few seqlets for a
    pattern (seed 0). With these sizes seeds 0, 1 and 2 each match all eight, every r >= 0.64.
    """
    started = time.perf_counter()
    code, out, err = cli(["--model", trained_demo_resnet, "--cells", ",".join(LINEAGE_CELLS), "--max-bins", 400,
                          "--max-instances", 30, "--out", tmp_path / "interp"], capsys)
    assert code == 0, err
    finished = time.perf_counter()

    planted, drivers = planted_motifs(open_dataset(demo_path()))
    motifs = pd.read_csv(tmp_path / "interp" / "motifs.tsv", sep="\t")
    found = motifs[motifs["matched"] & motifs["pattern"].str.startswith("pos")]
    best_q = found.groupby("best_match")["q_value"].min()
    assert (best_q < 0.05).all() and set(best_q.index) <= set(planted)
    correlation = pd.read_csv(tmp_path / "interp" / "motif_tf_correlation.tsv", sep="\t", index_col="motif")
    r = {(m, tf): correlation.loc[m, tf] for m in best_q.index for tf in drivers[m]}
    with capsys.disabled():
        print(f"\ninterpretation {finished - started:.0f} s; "
              f"{len(best_q)} of {len(planted)} planted motifs matched")
        for motif, q in best_q.items():
            print(f"  {motif:24s} q {q:.1e}  r " + ", ".join(f"{tf} {r[motif, tf]:.2f}" for tf in drivers[motif]))
    assert len(best_q) >= 0.8 * len(planted), sorted(set(planted) - set(best_q.index))
    assert all(value > 0 for value in r.values()), r

