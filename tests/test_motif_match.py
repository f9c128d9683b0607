"""Motif databases (MEME, JASPAR, the demo's planted motifs), trimming, BH q-values and Tomtom matching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from memelite.io import write_meme

from chromtune.data.demo import build_demo, load_motifs
from chromtune.errors import UserError
from chromtune.interpret.motif_match import benjamini_hochberg, match_motifs, motif_genes, planted_motifs, trim_pattern
from chromtune.io.motifs import read_motif_file
from conftest import random_dataset

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


@pytest.mark.parametrize("name,tfs", [
    ("MA0139.2 CTCF", ["CTCF"]),
    ("MA0142.1 Pou5f1::Sox2", ["Pou5f1", "Sox2"]),
    ("MA0099.3 FOS::JUN", ["FOS", "JUN"]),
    ("SPI1_MOUSE.H11MO.0.A", ["SPI1"]),
    ("CTCF_HUMAN.H11MO.0.A", ["CTCF"]),
    ("CTCF.H12CORE.0.P.B", ["CTCF"]),
    ("CTCF_MA0139.1", ["CTCF"]),
    ("MA0139.1_CTCF", ["CTCF"]),
    ("GATA3_GATA_2", ["GATA3"]),
    ("FOS::JUN_MA0099.3", ["FOS", "JUN"]),
    ("cebpb", ["cebpb"]),
    ("MA0139.1", []),
])
def test_tf_names_of_jaspar_hocomoco_and_encode_styles(name, tfs):
    from chromtune.interpret.motif_match import tf_names
    assert tf_names(name) == tfs


def test_common_database_names_link_to_genes_case_insensitively():
    genes = ["SPI1", "CTCF", "GATA3", "POU5F1", "SOX2", "CEBPB"]
    names = ["SPI1_MOUSE.H11MO.0.A", "CTCF_MA0139.1", "GATA3_GATA_2", "MA0142.1 Pou5f1::Sox2", "cebpb_HUMAN.H11MO.0.A",
             "MA0004.1 Arnt"]
    found = motif_genes(names, genes)
    assert found == {"SPI1_MOUSE.H11MO.0.A": ["SPI1"], "CTCF_MA0139.1": ["CTCF"], "GATA3_GATA_2": ["GATA3"],
                     "MA0142.1 Pou5f1::Sox2": ["POU5F1", "SOX2"], "cebpb_HUMAN.H11MO.0.A": ["CEBPB"],
                     "MA0004.1 Arnt": []}
