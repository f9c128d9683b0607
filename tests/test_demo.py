import json
import os
import re
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from chromtune import cli
from chromtune.data import demo
from chromtune.data.dataset import open_dataset, write_dataset


@pytest.fixture(scope="module")
def ds():
    return demo.build_demo(0)


def _arrays(dataset):
    yield "labels", dataset.labels
    yield "expression", dataset.expression
    yield "bin_start", dataset.bin_start
    for chrom, codes in dataset.genome.items():
        yield chrom, codes
    yield from dataset.truth.items()


def test_same_seed_gives_identical_arrays_and_another_seed_differs(ds):
    again = demo.build_demo(0)
    for (name, a), (_, b) in zip(_arrays(ds), _arrays(again)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    other = demo.build_demo(1)
    assert not np.array_equal(ds.labels, other.labels)
    assert not np.array_equal(ds.genome["chr1"], other.genome["chr1"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positives_are_3_to_10_percent_per_cell_type(seed):
    fraction = demo.build_demo(seed).labels.mean(axis=0)
    assert fraction.min() >= 0.03 and fraction.max() <= 0.10, fraction


def test_layout_shapes_and_attributes(ds):
    assert ds.chromosomes == [f"chr{i + 1}" for i in range(len(ds.chromosomes))] and len(ds.chromosomes) >= 5
    assert 15_000 <= ds.n_bins <= 20_000                  # evaluation over all bins stays cheap
    assert 24 <= ds.n_cell_types <= 30 and 40 <= ds.n_genes <= 60
    assert (ds.bin_size, ds.stride, ds.context) == (200, 200, 300)
    assert ds.attrs["expression_transform"] == "log1p" and ds.attrs["demo_version"] == demo.DEMO_VERSION
    for c, chrom in enumerate(ds.chromosomes):          # every bin of every chromosome, end to end
        starts = ds.bin_start[ds.bin_chrom == c]
        assert np.array_equal(starts, np.arange(0, len(ds.genome[chrom]) - 200 + 1, 200))
    t, n = ds.truth, ds.n_bins
    n_motifs, n_sites = len(t["motif_ids"]), len(t["site_center"])
    assert 6 <= n_motifs <= 10
    assert t["oracle"].shape == ds.labels.shape and t["tf_activity"].shape == (ds.n_cell_types, n_motifs)
    assert t["site_prob"].shape == (n_sites, ds.n_cell_types) and t["bin_site"].shape == (n,)
    assert 0 <= t["oracle"].min() and t["oracle"].max() <= 1
    assert len(ds.window_codes(np.arange(n))[0]) == 300
    assert ds.expression.min() >= 0   # log1p of TPM


def test_background_is_human_like(ds):
    codes = np.concatenate(list(ds.genome.values()))
    gc = np.isin(codes, (1, 2)).mean()
    cpg = ((codes[:-1] == 1) & (codes[1:] == 2)).mean() / ((codes == 1).mean() * (codes == 2).mean())
    assert 0.39 < gc < 0.43 and cpg < 0.35


def test_motif_file_names_source_licence_and_matrices():
    doc = json.loads(resources.files("chromtune.data").joinpath("motifs.json").read_text())
    assert "JASPAR 2024" in doc["source"] and "CC BY 4.0" in doc["licence"]
    assert 6 <= len(doc["motifs"]) <= 10
    for entry in doc["motifs"]:
        assert re.fullmatch(r"MA\d{4}\.\d+", entry["jaspar_id"]) and entry["tax_group"] == "vertebrates"
        counts, prob = np.asarray(entry["counts"], float), np.asarray(entry["probabilities"])
        assert counts.shape[0] == 4 and counts.shape == prob.shape
        np.testing.assert_allclose(prob, counts / counts.sum(0), atol=1e-4)


def _log_odds(pwm):
    return np.log2((pwm + 1e-3) / 0.25)                                                 # (4, W)


def test_planted_motifs_score_far_above_background(ds):
    t = ds.truth
    motifs = demo.load_motifs()
    assert len(motifs) == len(t["motif_ids"]) > 0
    for m, motif in enumerate(motifs):
        assert t["motif_ids"][m].decode() == motif.jaspar_id
        np.testing.assert_allclose(t["motif_pwm"][m, :, :motif.width], motif.pwm, atol=1e-6)   # JASPAR's own
        log_odds = _log_odds(motif.pwm)
        rows = np.flatnonzero(t["instance_motif"] == m)
        assert len(rows) >= 500                           # many instances per motif: enough to learn from
        starts = t["instance_start"][rows]
        chroms = np.asarray(ds.chromosomes)[t["site_chrom"][t["instance_site"][rows]]]
        windows = np.stack([ds.genome[c][s: s + motif.width] for c, s in zip(chroms, starts)])
        reverse = t["instance_strand"][rows] < 0
        windows[reverse] = 3 - windows[reverse][:, ::-1]
        planted = log_odds[windows, np.arange(motif.width)].sum(1)
        random = np.lib.stride_tricks.sliding_window_view(ds.genome["chr6"], motif.width)[::7]
        random_scores = log_odds[random, np.arange(motif.width)].sum(1)
        cut999 = np.quantile(random_scores, 0.999)
        assert np.median(planted) > cut999 and (planted > cut999).mean() > 0.9, motif.name
        consensus = log_odds.max(0).sum()
        assert np.median(planted) > 0.7 * consensus, motif.name      # near-consensus (sharpened) instances


def test_each_site_is_a_cluster_inside_one_bin(ds):
    t = ds.truth
    site_bin = np.flatnonzero(t["bin_site"] >= 0)[np.argsort(t["bin_site"][t["bin_site"] >= 0])]
    assert len(site_bin) == len(t["site_center"])                     # one bin per site
    inst_site = t["instance_site"]
    start = t["instance_start"]
    end = start + t["motif_width"][t["instance_motif"]]
    bin_start = ds.bin_start[site_bin][inst_site]
    assert (start >= bin_start).all() and (end <= bin_start + 200).all()   # the whole cluster lies in its bin
    assert np.array_equal(ds.bin_chrom[site_bin], t["site_chrom"])
    per_site = np.bincount(inst_site, minlength=len(site_bin))
    two = t["site_motif2"] >= 0
    assert np.array_equal(per_site[two], np.full(two.sum(), 2)) and set(per_site[~two]) == {2, 3}
    assert np.array_equal(per_site[~two], t["site_copies"][~two])
    homotypic = ~two[inst_site]
    assert np.array_equal(t["instance_motif"][homotypic], t["site_motif"][inst_site[homotypic]])


def test_no_window_reaches_a_second_sites_motifs(ds):
    t = ds.truth
    covered = np.flatnonzero(t["bin_site"] >= 0)
    centre = ds.bin_start[covered] + 100                                 # site bins in genome order
    chrom = ds.bin_chrom[covered]
    order = np.argsort(t["bin_site"][covered])
    inst_bin = covered[order][t["instance_site"]]                       # the bin of each instance's own site
    start = t["instance_start"]
    end = start + t["motif_width"][t["instance_motif"]]
    half = ds.context // 2
    for shift in (-1, 1):                                                # the neighbouring site bins
        pos = np.searchsorted(covered, inst_bin) + shift
        ok = (pos >= 0) & (pos < len(covered))
        same = ok & (chrom[np.clip(pos, 0, len(covered) - 1)] == ds.bin_chrom[inst_bin])
        other = centre[np.clip(pos, 0, len(covered) - 1)][same]
        assert ((end[same] <= other - half) | (start[same] >= other + half)).all()


def test_pwm_scan_tells_each_motifs_sites_from_background(ds):
    """Sequence alone identifies a site's motif: the best PWM hit in a bin separates that motif's sites."""
    t, c = ds.truth, ds.chromosomes.index("chr6")
    bins = np.flatnonzero(ds.bin_chrom == c)
    site = t["bin_site"][bins]
    codes = ds.genome["chr6"]
    motifs = demo.load_motifs()
    assert motifs
    for m, motif in enumerate(motifs):
        log_odds = _log_odds(motif.pwm)
        view = np.lib.stride_tricks.sliding_window_view(codes, motif.width)
        cols = np.arange(motif.width)
        score = np.maximum(log_odds[view, cols].sum(1), log_odds[::-1, ::-1][view, cols].sum(1))  # both strands
        best = np.lib.stride_tricks.sliding_window_view(score, 200 - motif.width + 1)[ds.bin_start[bins]].max(1)
        has = (site >= 0) & ((t["site_motif"][site] == m) | (t["site_motif2"][site] == m))
        background = site < 0
        truth = np.r_[np.ones(has.sum()), np.zeros(background.sum())]
        assert roc_auc_score(truth, np.r_[best[has], best[background]]) > 0.99, motif.name


def test_labels_follow_the_site_rule(ds):
    t = ds.truth
    covered = t["bin_site"] >= 0
    assert not ds.labels[~covered].any()
    site = t["bin_site"][covered]
    lo = t["site_center"][site] - t["site_width"][site] // 2
    hi = lo + t["site_width"][site]

    def overlap(starts):
        return np.minimum(starts + 200, hi) - np.maximum(starts, lo)
    assert (overlap(ds.bin_start[covered]) > 100).all() and np.array_equal(ds.bin_chrom[covered], t["site_chrom"][site])
    for shift in (-200, 200):                            # neighbouring bins overlap a site region by <= 50 %
        assert (overlap(ds.bin_start[covered] + shift) <= 100).all()
    np.testing.assert_array_equal(t["oracle"][covered], t["site_prob"][site])
    assert np.array_equal(np.sort(site), np.arange(len(t["site_center"])))   # each site counts for one bin


def test_driver_expression_decides_motif_accessibility(ds):
    t = ds.truth
    single = t["site_motif2"] < 0
    assert len(t["motif_ids"]) > 0
    for m in range(len(t["motif_ids"])):
        sites = single & (t["site_motif"] == m)
        opened = ds.labels[np.isin(t["bin_site"], np.flatnonzero(sites))].mean(0)
        if t["motif_names"][m] == b"CTCF":
            assert opened.min() > 0.8                   # ubiquitous
        else:
            assert np.corrcoef(t["tf_activity"][:, m], opened)[0, 1] > 0.8, t["motif_names"][m]


def test_mean_baseline_leaves_clear_room_below_the_oracle(ds):
    y, oracle = ds.labels, ds.truth["oracle"]
    order = np.random.default_rng(0).permutation(ds.n_cell_types)
    groups = np.array_split(order, 5)
    for fold in range(5):
        test, valid = groups[fold], groups[(fold + 1) % 5][:3]
        train = np.setdiff1d(order, np.concatenate([test, valid]))
        truth = y[:, test].ravel()
        mean = np.repeat(y[:, train].mean(1, keepdims=True), len(test), axis=1).ravel()
        mean_ap = average_precision_score(truth, mean)
        oracle_ap = average_precision_score(truth, oracle[:, test].ravel())
        assert 0.4 < mean_ap < 0.7 and oracle_ap - mean_ap >= 0.1, (fold, mean_ap, oracle_ap)
        assert roc_auc_score(truth, oracle[:, test].ravel()) > roc_auc_score(truth, mean)


def test_truth_survives_the_file_round_trip(tmp_path, ds):
    path = tmp_path / "demo.h5"
    write_dataset(path, ds, demo.provenance(0))
    back = open_dataset(path)
    assert set(back.truth) == set(ds.truth)
    for key, value in ds.truth.items():
        assert np.array_equal(back.truth[key], value), key
    assert [n.decode() for n in back.truth["motif_tfs"]][-1] == "POU5F1::SOX2"


def test_demo_path_builds_once_reuses_and_rebuilds(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMTUNE_CACHE", str(tmp_path / "cache"))
    path = demo.demo_path()
    assert path == tmp_path / "cache" / f"demo-v{demo.DEMO_VERSION}-seed0.h5" and open_dataset(path).n_bins > 0
    stamp = path.stat().st_mtime_ns

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt a current cache")
    monkeypatch.setattr(demo, "write_demo", no_build)
    assert demo.demo_path() == path and path.stat().st_mtime_ns == stamp
    monkeypatch.undo()

    path.unlink()
    assert demo.demo_path(tmp_path / "cache").is_file()
    path.write_bytes(b"not hdf5")                        # damaged cache: rebuilt, not trusted
    assert open_dataset(demo.demo_path(tmp_path / "cache")).attrs["demo_seed"] == 0
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_two_processes_building_the_cache_at_once_agree(tmp_path):
    code = "import sys; from chromtune.data.demo import demo_path; print(demo_path(sys.argv[1]))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outputs[0] == outputs[1]
    assert np.array_equal(open_dataset(outputs[0]).labels, demo.build_demo(0).labels)
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(outputs[0])]


def test_cli_writes_a_valid_file(tmp_path, capsys):
    out = tmp_path / "sub" / "demo.h5"
    assert cli.main(["demo", "--out", str(out), "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    written = open_dataset(out)
    assert written.attrs["demo_seed"] == 1
    assert np.array_equal(written.labels, demo.build_demo(1).labels)


def test_module_entry_point_runs(tmp_path):
    out = tmp_path / "demo.h5"
    result = subprocess.run([sys.executable, "-m", "chromtune.cli", "demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert open_dataset(out).attrs["demo_seed"] == 0


@pytest.mark.parametrize("make_args,flag", [
    (lambda tmp: ["--out", str(tmp)], "--out"),                                   # a folder
    (lambda tmp: ["--out", str(tmp / "demo.h5"), "--seed", "-1"], "--seed"),
    (lambda tmp: ["--out", str(tmp / "file.txt" / "demo.h5")], "--out"),         # parent is a file
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, make_args, flag):
    (tmp_path / "file.txt").write_text("keep me")
    assert cli.main(["demo", *make_args(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chromtune: error: ") and flag in err
    assert (tmp_path / "file.txt").read_text() == "keep me"
    assert not (tmp_path / "demo.h5").exists()
