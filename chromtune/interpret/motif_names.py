"""What a motif database's names say: the TFs each motif belongs to, and which motifs are sequencing bias.

Real databases name motifs in several styles; each is read here (examples are real names):

==========================  ===============================================================
JASPAR (MEME or JASPAR)     ``MA0139.2 CTCF``; dimers ``MA0142.1 Pou5f1::Sox2``; variants of
                            JASPAR 2020 ``MA0489.1 JUN(var.2)``; families of the unvalidated
                            collection ``UN0113.1 GATA1/2/3`` (GATA1, GATA2, GATA3)
ENCODE / chrombpnet         ``CTCF_MA0139.1``, ``MA0139.1_CTCF``; dimers ``Pou5f1+Sox2_MA0142.1``,
                            ``SMAD2+SMAD3+SMAD4_MA0513.1``; HT-SELEX ``FOXK1_forkhead_1``,
                            ``Irx3.mouse_homeodomain_1``
HOCOMOCO v11 / v12          ``SPI1_MOUSE.H11MO.0.A``, ``CTCF.H12CORE.0.P.B``: UniProt entry names,
                            translated to gene symbols (``ZN136`` -> ZNF136, ``PO5F1`` -> POU5F1,
                            ``ANDR`` -> AR; :data:`UNIPROT_SYMBOLS`)
bias (chrombpnet)           ``TN5_1`` ... ``TN5_8``, ``DNASE_1`` ... ``DNASE_6``: the insertion
                            preferences of Tn5 and DNase I, no TF (:func:`is_bias_motif`)
==========================  ===============================================================

A fusion named by its parts (``EWSR1-FLI1``) links to the parts when the model has no gene of
the whole name. Not read: HOMER's ``PU.1(ETS)/ThioMac-PU.1-ChIP-Seq(GSE21512)/Homer`` and
clustered archetypes (``AC0001:GATA/ZNF:GATA``), whose names carry families, not factors.

Shape contract::

    tf_names(name)              -> [TF names the motif's name carries] (gene symbols, case kept)
    motif_genes(names, genes)   -> {name: [genes of the model its TFs are, case-insensitively]}
    is_bias_motif(name)         -> True for a Tn5 / DNase I bias motif
"""

from __future__ import annotations

import re

_DATABASE_ID = re.compile(r"^(?:MA|UN|PB|PF|PH|PL|CN|POL)\d{3,4}\.\d+$", re.I)  # JASPAR collections' IDs
_HOCOMOCO = re.compile(r"^(?P<tf>[^_.]+)_(?:HUMAN|MOUSE)\.H1\dMO\.", re.I)       # SPI1_MOUSE.H11MO.0.A
_HOCOMOCO12 = re.compile(r"^(?P<tf>[^_.]+)\.H12[A-Z]+\.", re.I)                  # CTCF.H12CORE.0.P.B
_VARIANT = re.compile(r"\(var\.\d+\)$", re.I)                                    # JUN(var.2)
_SPECIES = re.compile(r"\.(?:mouse|human)$", re.I)                               # Irx3.mouse
_FAMILY = re.compile(r"^(?P<stem>.*?)(?P<number>\d+)$")                          # GATA1/2/3: stem GATA
_BIAS = re.compile(r"^(?:TN5|DNASE)(?:[_.\-].*)?$", re.I)                        # TN5_1, DNASE_3

# UniProt entry names (HOCOMOCO's motif names) that are not the HGNC symbol of their gene, for the
# TFs of HOCOMOCO v11 (mouse entries use the same mnemonic). Regular ones are rules in _uniprot_rule.
UNIPROT_SYMBOLS = {
    "ANDR": "AR", "AP2A": "TFAP2A", "AP2B": "TFAP2B", "AP2C": "TFAP2C", "AP2D": "TFAP2D", "ARI3A": "ARID3A",
    "ARI5B": "ARID5B", "ATF6A": "ATF6", "BC11A": "BCL11A", "BHA15": "BHLHA15", "BHE40": "BHLHE40",
    "BHE41": "BHLHE41", "BRAC": "TBXT", "COE1": "EBF1", "COT1": "NR2F1", "COT2": "NR2F2", "DMRTB": "DMRTB1",
    "ERR1": "ESRRA", "ERR2": "ESRRB", "ERR3": "ESRRG", "EVI1": "MECOM", "GCR": "NR3C1", "HEN1": "NHLH1",
    "HNF6": "ONECUT1", "HTF4": "TCF12", "ITF2": "TCF4", "KAISO": "ZBTB33", "MCR": "NR3C2", "MYBA": "MYBL1",
    "MYBB": "MYBL2", "NDF1": "NEUROD1", "NDF2": "NEUROD2", "NGN2": "NEUROG2", "OZF": "ZNF146", "PEBB": "CBFB",
    "PIT1": "POU1F1", "PKNX1": "PKNOX1", "PRGR": "PGR", "RORG": "RORC", "STF1": "NR5A1", "SUH": "RBPJ",
    "TF2L1": "TFCP2L1", "TF65": "RELA", "TFE2": "TCF3", "THA": "THRA", "THA11": "THAP11", "THB": "THRB",
    "TWST1": "TWIST1", "TYY1": "YY1", "Z324A": "ZNF324", "Z354A": "ZNF354A",
}
_UNIPROT_RULES = [  # (entry name, symbol) patterns of whole families
    (re.compile(r"^ZN(\d+[A-Z]?)$"), r"ZNF\1"), (re.compile(r"^ZSC(\d+)$"), r"ZSCAN\1"),
    (re.compile(r"^ZKSC(\d+)$"), r"ZKSCAN\1"), (re.compile(r"^ZBT(\d+[A-Z]?)$"), r"ZBTB\1"),
    (re.compile(r"^HX([A-D])(\d+)$"), r"HOX\1\2"), (re.compile(r"^NKX(\d)(\d)$"), r"NKX\1-\2"),
    (re.compile(r"^PO(\d)F(\d)$"), r"POU\1F\2"), (re.compile(r"^NFAC(\d)$"), r"NFATC\1"),
    (re.compile(r"^PRD(\d+)$"), r"PRDM\1"), (re.compile(r"^STA5([AB])$"), r"STAT5\1"),
    (re.compile(r"^P([567]3)$"), r"TP\1"), (re.compile(r"^TF7L(\d)$"), r"TCF7L\1"),
    (re.compile(r"^SRBP(\d)$"), r"SREBF\1"), (re.compile(r"^NF2L(\d)$"), r"NFE2L\1"),
    (re.compile(r"^SMCA(\d)$"), r"SMARCA\1"),
]


def _uniprot_symbol(entry: str) -> str:
    """The gene symbol of a UniProt entry name's mnemonic (``ZN136`` -> ZNF136); unknown ones as given."""
    upper = entry.upper()
    if upper in UNIPROT_SYMBOLS:
        return UNIPROT_SYMBOLS[upper]
    for pattern, symbol in _UNIPROT_RULES:
        if pattern.match(upper):
            return pattern.sub(symbol, upper)
    return entry


def _factors(word: str) -> list[str]:
    """The factors of one name word: ``::`` and ``+`` joins split, ``(var.N)`` and ``.mouse`` dropped,
    ``GATA1/2/3`` expanded."""
    found = []
    for part in re.split(r"::|\+", _VARIANT.sub("", word)):
        part = _SPECIES.sub("", part)
        family = part.split("/")
        first = _FAMILY.match(family[0])
        if len(family) > 1 and first and all(p.isdigit() for p in family[1:]):
            found += [family[0]] + [first["stem"] + p for p in family[1:]]
        else:
            found += [p for p in family if p]
    return found


def tf_names(name: str) -> list[str]:
    """The TF names a motif's name carries (module docstring); case kept; [] for a bare ID or a bias motif."""
    words = [w for w in name.split() if not _DATABASE_ID.match(w)]
    if not words or is_bias_motif(name):
        return []
    word = words[-1]
    style = _HOCOMOCO.match(word) or _HOCOMOCO12.match(word)
    if style:
        return [_uniprot_symbol(style["tf"])]
    if len(name.split()) == 1:  # ENCODE / chrombpnet: one word, the TF first and IDs or families after "_"
        tokens = [t for t in word.split("_") if t and not _DATABASE_ID.match(t)]
        word = tokens[0] if tokens else ""
    return _factors(word) if word else []


def motif_genes(names, genes: list[str]) -> dict[str, list[str]]:
    """Per motif name, the model's genes its TF names are (:func:`tf_names`; ``A::B`` and ``A+B`` -> both),
    matched case-insensitively (JASPAR and chrombpnet write mouse profiles as ``Pou5f1::Sox2``); a fusion
    ``A-B`` that is no gene links to those of A and B that are."""
    by_upper = {g.upper(): g for g in genes}
    linked = {}
    for name in names:
        found = []
        for tf in tf_names(name):
            parts = [tf] if tf.upper() in by_upper else tf.split("-")
            found += [by_upper[p.upper()] for p in parts if p.upper() in by_upper]
        linked[name] = list(dict.fromkeys(found))
    return linked


def is_bias_motif(name: str) -> bool:
    """Whether a motif is a Tn5 or DNase I insertion-bias motif (chrombpnet's ``TN5_*``, ``DNASE_*``)."""
    return any(_BIAS.match(w) for w in name.split() if not _DATABASE_ID.match(w))
