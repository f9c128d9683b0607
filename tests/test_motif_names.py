"""Motif names of real databases to TF genes, and bias motifs: every name of chrombpnet's 2,193-motif MEME file and
of JASPAR 2024's vertebrate and urochordate profiles (tests/data/motifs, sources and licences in its README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chromtune.interpret.motif_names import is_bias_motif, motif_genes, tf_names

REAL = Path(__file__).parent / "data" / "motifs"


def names_in(file: str) -> list[str]:
    return [line.strip() for line in (REAL / file).read_text().splitlines() if line.strip() and line[0] != "#"]


CHROMBPNET = names_in("chrombpnet_motif_names.txt")
JASPAR = names_in("jaspar2024_chordate_names.txt")
NOT_A_SYMBOL = re.compile(r"::|\+|/|\(|\)|_|\s|\.(mouse|human)|H1[12]|^MA\d{4}|^UN\d{4}", re.I)


def test_the_name_lists_are_the_real_databases():
    assert len(CHROMBPNET) == 2193 and CHROMBPNET[0] == "DNASE_6" and len(set(CHROMBPNET)) == 2193
    assert len(JASPAR) == 2708 and "MA0142.1 Pou5f1::Sox2" in JASPAR


@pytest.mark.parametrize("name,tfs", [
    # chrombpnet's MEME file (ENCODE style, JASPAR IDs after the TF; joins with "+")
    ("Pou5f1+Sox2_MA0142.1", ["Pou5f1", "Sox2"]),
    ("Bach1+Mafk_MA0591.1", ["Bach1", "Mafk"]),
    ("MAFG+NFE2L1_MA0089.1", ["MAFG", "NFE2L1"]),
    ("SMAD2+SMAD3+SMAD4_MA0513.1", ["SMAD2", "SMAD3", "SMAD4"]),
    ("CTCF_MA0139.1", ["CTCF"]),
    ("NKX2-3_MA0672.1", ["NKX2-3"]),
    ("EWSR1-FLI1_MA0149.1", ["EWSR1-FLI1"]),
    # ... HT-SELEX (TF, family, number; mouse proteins marked .mouse)
    ("FOXK1_forkhead_1", ["FOXK1"]),
    ("ZBED1_znf_BED_1", ["ZBED1"]),
    ("Irx3.mouse_homeodomain_1", ["Irx3"]),
    ("Nkx3-1.mouse_homeodomain_1", ["Nkx3-1"]),
    # ... HOCOMOCO v11 (UniProt entry names)
    ("SPI1_MOUSE.H11MO.0.A", ["SPI1"]),
    ("ZN136_HUMAN.H11MO.0.C", ["ZNF136"]),
    ("PO5F1_HUMAN.H11MO.0.A", ["POU5F1"]),
    ("HXB8_HUMAN.H11MO.0.C", ["HOXB8"]),
    ("NKX25_MOUSE.H11MO.0.A", ["NKX2-5"]),
    ("ANDR_HUMAN.H11MO.0.A", ["AR"]),
    ("ZBT7A_HUMAN.H11MO.0.A", ["ZBTB7A"]),
    ("STA5A_HUMAN.H11MO.0.A", ["STAT5A"]),
    ("P53_HUMAN.H11MO.0.A", ["TP53"]),
    # ... bias motifs
    ("TN5_1", []),
    ("DNASE_6", []),
    # JASPAR 2024 (ID, then the name; dimers with "::"; families of the unvalidated collection with "/")
    ("MA0139.2 CTCF", ["CTCF"]),
    ("MA0142.1 Pou5f1::Sox2", ["Pou5f1", "Sox2"]),
    ("MA0099.3 FOS::JUN", ["FOS", "JUN"]),
    ("MA1875.1 GATA1/2/3", ["GATA1", "GATA2", "GATA3"]),
    ("MA1891.1 Klf3/8/12", ["Klf3", "Klf8", "Klf12"]),
    ("UN0447.1 E2f1/2/3/6", ["E2f1", "E2f2", "E2f3", "E2f6"]),
    ("MA0085.1 Su(H)", ["Su(H)"]),
    # JASPAR 2020's variants, HOCOMOCO v12, other ENCODE orders
    ("MA0489.1 JUN(var.2)", ["JUN"]),
    ("CTCF.H12CORE.0.P.B", ["CTCF"]),
    ("MA0139.1_CTCF", ["CTCF"]),
    ("FOS::JUN_MA0099.3", ["FOS", "JUN"]),
    ("cebpb", ["cebpb"]),
    ("MA0139.1", []),
    ("", []),
])
def test_tf_names_of_real_names(name, tfs):
    assert tf_names(name) == tfs


def test_every_chrombpnet_name_names_its_factors_or_is_a_bias_motif():
    bias = [name for name in CHROMBPNET if is_bias_motif(name)]
    assert sorted(bias) == sorted([f"TN5_{k}" for k in range(1, 9)] + [f"DNASE_{k}" for k in range(1, 7)])
    joined = [name for name in CHROMBPNET if "+" in name]
    assert len(joined) == 45
    for name in joined:
        assert len(tf_names(name)) == name.split("_")[0].count("+") + 1, name
    for name in CHROMBPNET:
        found = tf_names(name)
        assert (found == []) == (name in bias), name
        assert not any(NOT_A_SYMBOL.search(tf) for tf in found), (name, found)


def test_every_jaspar_name_names_its_factors():
    assert not any(is_bias_motif(name) for name in JASPAR)
    dimers = [name for name in JASPAR if "::" in name]
    families = [name for name in JASPAR if "/" in name]
    assert len(dimers) > 100 and len(families) >= 8
    for name in JASPAR:
        found = tf_names(name)
        parts = name.split(" ", 1)[1]
        assert len(found) == (parts.count("::") + 1 if "::" in parts else parts.count("/") + 1), name
        assert not any(NOT_A_SYMBOL.search(tf) for tf in found if "(" not in parts), (name, found)


def test_joined_names_link_to_each_factor_among_the_model_genes():
    """Both spellings of a join link to each factor, case-insensitively; a fusion links to its parts; a HOCOMOCO
    entry name to its gene; bias motifs and factors outside the model to nothing."""
    genes = ["POU5F1", "SOX2", "BACH1", "MAFK", "MAFG", "NFE2L1", "FOS", "JUN", "GATA1", "GATA3", "EWSR1", "FLI1",
             "ZNF136", "NKX2-5", "CTCF"]
    names = ["Pou5f1+Sox2_MA0142.1", "MA0142.1 Pou5f1::Sox2", "Bach1+Mafk_MA0591.1", "MA0591.2 Bach1::Mafk",
             "MAFG+NFE2L1_MA0089.1", "MA0089.3 MAFG::NFE2L1", "MA0099.4 FOS::JUN", "MA1875.1 GATA1/2/3",
             "EWSR1-FLI1_MA0149.1", "ZN136_HUMAN.H11MO.0.C", "Nkx2-5_MA0063.1", "NKX25_MOUSE.H11MO.0.A",
             "SMAD2+SMAD3+SMAD4_MA0513.1", "TN5_1", "DNASE_2", "CTCF_MA0139.1"]
    assert all(name in CHROMBPNET or name in JASPAR for name in names)
    assert motif_genes(names, genes) == {
        "Pou5f1+Sox2_MA0142.1": ["POU5F1", "SOX2"], "MA0142.1 Pou5f1::Sox2": ["POU5F1", "SOX2"],
        "Bach1+Mafk_MA0591.1": ["BACH1", "MAFK"], "MA0591.2 Bach1::Mafk": ["BACH1", "MAFK"],
        "MAFG+NFE2L1_MA0089.1": ["MAFG", "NFE2L1"], "MA0089.3 MAFG::NFE2L1": ["MAFG", "NFE2L1"],
        "MA0099.4 FOS::JUN": ["FOS", "JUN"], "MA1875.1 GATA1/2/3": ["GATA1", "GATA3"],
        "EWSR1-FLI1_MA0149.1": ["EWSR1", "FLI1"], "ZN136_HUMAN.H11MO.0.C": ["ZNF136"],
        "Nkx2-5_MA0063.1": ["NKX2-5"], "NKX25_MOUSE.H11MO.0.A": ["NKX2-5"],
        "SMAD2+SMAD3+SMAD4_MA0513.1": [], "TN5_1": [], "DNASE_2": [], "CTCF_MA0139.1": ["CTCF"]}
