"""Motif databases (MEME, JASPAR, the demo's planted motifs), trimming, BH q-values and Tomtom matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from memelite.io import write_meme

from chromtune.data.demo import build_demo
from chromtune.data.demo_sequence import load_motifs
from chromtune.errors import UserError
from chromtune.interpret.motif_match import (MATCH_COLUMNS, benjamini_hochberg, match_motifs, match_rows,
                                             planted_motifs, trim_pattern)
from chromtune.interpret.motif_names import motif_genes
from chromtune.io.motifs import read_motif_file
from conftest import random_dataset

REAL = Path(__file__).parent / "data" / "motifs"  # real records of chrombpnet's and JASPAR 2024's files (README)

JASPAR = """>MA0004.1\tArnt
A  [     4     19      0      0      0      0 ]
C  [    16      0     20      0      0      0 ]
G  [     0      1      0     20      0     20 ]
T  [     0      0      0      0     20      0 ]
>MA0006.1 Ahr::Arnt
A [ 3 0 0 0 0 0 ]
C [ 8 0 23 0 0 0 ]
G [ 2 23 0 23 0 24 ]
T [ 11 1 1 1 24 0 ]
"""

PFM = """>MA0004.1 Arnt
4 19 0 0 0 0
16 0 20 0 0 0
0 1 0 20 0 20
0 0 0 0 20 0
"""


@pytest.fixture(scope="module")
def planted():
    return {f"{m.jaspar_id} {m.name}": m.pwm for m in load_motifs()}


def test_meme_and_jaspar_files_read_to_the_same_probabilities(tmp_path, planted):
    write_meme(str(tmp_path / "db.meme"), planted)
    meme = read_motif_file(tmp_path / "db.meme")
    assert list(meme) == list(planted)
    for name, pwm in planted.items():
        assert np.allclose(meme[name], pwm, atol=1e-6)
    (tmp_path / "db.jaspar").write_text(JASPAR)
    (tmp_path / "db.pfm").write_text(PFM)
    jaspar, pfm = read_motif_file(tmp_path / "db.jaspar"), read_motif_file(tmp_path / "db.pfm")
    assert list(jaspar) == ["MA0004.1 Arnt", "MA0006.1 Ahr::Arnt"]
    assert np.allclose(jaspar["MA0004.1 Arnt"][:, 0], [0.2, 0.8, 0, 0]) and jaspar["MA0004.1 Arnt"].shape == (4, 6)
    assert np.allclose(jaspar["MA0004.1 Arnt"], pfm["MA0004.1 Arnt"])
    assert np.allclose(jaspar["MA0006.1 Ahr::Arnt"].sum(0), 1)


@pytest.mark.parametrize("text,problem", [
    ("", "neither a MEME file"),
    ("hello\n", "neither a MEME file"),
    (">M1 X\nA [1 2]\nC [1 2]\nG [1 2]\n", "has 3 rows"),
    (">M1 X\nA [1 2]\nC [1 2 3]\nG [1 2]\nT [1 2]\n", "rows of different lengths"),
    (">M1 X\nA [1 -2]\nC [1 2]\nG [1 2]\nT [1 2]\n", "negative, NaN"),
    (">M1 X\nA [1 0]\nC [1 0]\nG [1 0]\nT [1 0]\n", "column 2 is all zero"),
    ("MEME version 4\n\nALPHABET= ACGT\n", "holds no motifs"),
])
def test_bad_motif_files_are_one_line_errors(tmp_path, text, problem):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=problem) as caught:
        read_motif_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UserError, match="no such file"):
        read_motif_file(tmp_path / "absent.meme")


def test_planted_motifs_of_the_demo_and_their_drivers():
    ds = build_demo(0)
    motifs, drivers = planted_motifs(ds)
    assert len(motifs) == 9 and list(motifs)[0] == "MA0139.2 CTCF"
    assert drivers["MA0142.1 Pou5f1::Sox2"] == ["POU5F1", "SOX2"] and drivers["MA0035.4 GATA1"] == ["GATA1"]
    for (name, pwm), motif in zip(motifs.items(), load_motifs()):
        assert np.allclose(pwm, motif.pwm, atol=1e-6), name
    assert motif_genes(motifs, ds.genes)["MA0142.1 Pou5f1::Sox2"] == ["POU5F1", "SOX2"]
    assert motif_genes(["MA0004.1 Arnt", ""], ds.genes) == {"MA0004.1 Arnt": [], "": []}
    with pytest.raises(UserError, match="no planted motifs; pass --motifs"):
        planted_motifs(random_dataset())


def test_trim_keeps_the_span_of_strong_positions():
    cwm = np.zeros((12, 4))
    cwm[[3, 5, 7], 0] = [1.0, 0.2, 0.5]
    cwm[9, 2] = -0.25
    assert trim_pattern(np.full((12, 4), 0.25), cwm) == (3, 10)               # 20 % of the peak by default
    assert trim_pattern(np.full((12, 4), 0.25), cwm, threshold=0.3) == (3, 8)


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(0).random((7, 5)) ** 3
    q = benjamini_hochberg(p)
    assert q.shape == p.shape
    assert np.allclose(q.ravel(), scipy.stats.false_discovery_control(p.ravel(), method="bh"))


def test_tomtom_finds_each_planted_motif_as_its_own_best_match(planted):
    rng = np.random.default_rng(0)
    names = list(planted)
    queries = []
    for pwm in planted.values():  # noisy, padded, some reverse-complemented copies
        noisy = 0.8 * pwm + 0.2 * rng.dirichlet(np.ones(4), pwm.shape[1]).T
        pad = rng.dirichlet(np.ones(4) * 5, 4).T
        query = np.concatenate([pad, noisy, pad], axis=1)
        queries.append(query[::-1, ::-1].copy() if rng.random() < 0.5 else query)
    table = match_motifs(queries, planted)
    assert [names[b] for b in table.best] == names
    assert (table.q_value < 0.05).all() and table.p_all.shape == (9, 9)
    shuffled = [rng.dirichlet(np.ones(4), 10).T for _ in range(5)]  # random matrices match nothing
    assert (match_motifs(shuffled, planted).q_value > 0.05).all()
    assert len(match_motifs([], planted).best) == 0


def test_real_database_files_read_with_their_names():
    meme = read_motif_file(REAL / "chrombpnet_subset.meme")
    assert len(meme) == 24 and list(meme)[:2] == ["DNASE_6", "DNASE_5"] and "Bach1+Mafk_MA0591.1" in meme
    assert meme["TN5_1"].shape[0] == 4 and np.allclose(meme["CTCF_MA0139.1"].sum(0), 1, atol=1e-4)
    jaspar = read_motif_file(REAL / "jaspar2024_subset.jaspar")
    assert list(jaspar)[:2] == ["MA0139.2 CTCF", "MA0099.4 FOS::JUN"] and "UN0447.1 E2f1/2/3/6" in jaspar
    # MA0139.2's first column is A 281, C 49, G 449, T 134 counts
    assert np.allclose(jaspar["MA0139.2 CTCF"][:, 0], np.array([281, 49, 449, 134]) / 913)


def _noisy(pwm, rng):
    return 0.85 * pwm + 0.15 * rng.dirichlet(np.ones(4), pwm.shape[1]).T


def test_bias_motifs_are_matched_apart_from_tf_motifs():
    """Patterns that copy chrombpnet's Tn5 / DNase I bias motifs best match those, are flagged, keep their best TF
    match (a real TF motif, never a bias one) and are credited to no TF; a TF pattern is credited to its motif."""
    database = {**read_motif_file(REAL / "chrombpnet_subset.meme"),
                **read_motif_file(REAL / "jaspar2024_subset.jaspar")}
    names = list(database)
    rng = np.random.default_rng(0)
    queried = ["TN5_1", "DNASE_2", "CTCF_MA0139.1", "MA0142.1 Pou5f1::Sox2"]
    table = match_motifs([_noisy(database[n], rng) for n in queried], database)
    assert table.bias.sum() == 14 and [names[k] for k in np.flatnonzero(table.bias)][:2] == ["DNASE_6", "DNASE_5"]
    rows = match_rows(table, names, 0.05)
    assert [r["best_match"] for r in rows] == ["TN5_1", "DNASE_2", "CTCF_MA0139.1", "Pou5f1+Sox2_MA0142.1"]
    assert [r["best_is_bias"] for r in rows] == [True, True, False, False]
    for r in rows:
        assert set(MATCH_COLUMNS) <= set(r) and r["matched"]
        assert r["best_tf_match"] and not table.bias[names.index(r["best_tf_match"])]
        assert r["tf_p_value"] >= r["p_value"]
    assert [r["motif"] for r in rows] == ["", "", "CTCF_MA0139.1", "Pou5f1+Sox2_MA0142.1"]
    assert rows[2]["best_tf_match"] == rows[2]["best_match"] and rows[2]["tf_q_value"] == rows[2]["q_value"]
    # the bias patterns' TF matches are the next best among the TF motifs
    p_tf = np.where(table.bias, np.inf, table.p_all)
    assert [names[k] for k in p_tf.argmin(1)] == [r["best_tf_match"] for r in rows]
    only_bias = {n: m for n, m in database.items() if n.startswith(("TN5", "DNASE"))}
    alone = match_rows(match_motifs([_noisy(database["TN5_3"], rng)], only_bias), list(only_bias), 0.05)[0]
    assert alone["best_match"] == "TN5_3" and alone["best_tf_match"] == "" and not alone["tf_matched"]
    assert alone["motif"] == ""
