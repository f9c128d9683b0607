"""Known-motif databases and Tomtom matching of discovered motifs against them.

A motif database is an ordered ``{name: (4, W) float64 PWM}`` (probabilities over A, C, G, T,
columns summing to 1), read from a MEME or JASPAR file (:mod:`chromtune.io.motifs`) or the planted
motifs of the demo data set (``truth/motif_pwm``). Names read ``"<ID> <TF name>"``.

Matching (memelite's Tomtom, complete scores, both strands) gives a (Q, T) p-value matrix;
q-values are Benjamini-Hochberg over all Q x T comparisons (MEME's Tomtom, too, computes its
q-values from the set of match p-values).
Tomtom builds its null from the target columns, so a database of fewer than ``FEW_TARGETS``
motifs gives p-values that depend on which motifs it holds.

Shape contract::

    planted_motifs(dataset)                 -> {name: (4, W)}, {name: [driver genes]}
    tf_names(name)                          -> TF names in a JASPAR, HOCOMOCO or ENCODE/chrombpnet motif name
    motif_genes(names, genes)               -> {name: [genes of the model named by the motif]}
    trim_pattern(ppm (W,4), cwm (W,4))      -> (start, end) of the informative core
    match_motifs(queries [(4,w)], db)       -> MatchTable: best (Q,) int, p (Q,), q (Q,), p_all (Q,T)
    benjamini_hochberg(p (...))             -> q of the same shape
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from chromtune.errors import UserError

FEW_TARGETS = 25         # memelite's (and MEME's 50) warning level for a small target set
TRIM_THRESHOLD = 0.2     # keep positions whose |CWM| mass is >= 20 % of the peak (modisco-lite's report: 30 %)


def planted_motifs(dataset) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """The demo data set's planted motifs ``{"<JASPAR ID> <name>": (4, W)}`` and each one's driver genes."""
    truth = dataset.truth
    if "motif_pwm" not in truth:
        raise UserError(f"--motifs: the data set {dataset.path} has no planted motifs; pass --motifs FILE "
                        "(MEME or JASPAR format)")
    text = [[v.decode() if isinstance(v, bytes) else str(v) for v in truth[key]]
            for key in ("motif_ids", "motif_names", "motif_tfs")]
    motifs, drivers = {}, {}
    for m, (jaspar_id, name, tfs) in enumerate(zip(*text)):
        key = f"{jaspar_id} {name}"
        motifs[key] = np.asarray(truth["motif_pwm"][m, :, :int(truth["motif_width"][m])], dtype=np.float64)
        drivers[key] = tfs.split("::")
    return motifs, drivers


_HOCOMOCO = re.compile(r"^(?P<tf>[^_.]+)_(?:HUMAN|MOUSE)\.H1\dMO\.", re.I)  # SPI1_MOUSE.H11MO.0.A
_HOCOMOCO12 = re.compile(r"^(?P<tf>[^_.]+)\.H12[A-Z]+\.", re.I)  # CTCF.H12CORE.0.P.B
_JASPAR_ID = re.compile(r"^MA\d{4}\.\d+$", re.I)


def tf_names(name: str) -> list[str]:
    """The TF names a motif's name carries, in the styles of the common databases.

    JASPAR (``MA0139.2 CTCF``; dimers ``MA0142.1 Pou5f1::Sox2`` -> both), HOCOMOCO v11
    (``SPI1_MOUSE.H11MO.0.A``) and v12 (``CTCF.H12CORE.0.P.B``), ENCODE/chrombpnet (``CTCF_MA0139.1``,
    ``MA0139.1_CTCF``, ``GATA3_GATA_2``: the TF first). Case is kept; matching is case-insensitive."""
    words = name.split()
    word = next((w for w in reversed(words) if not _JASPAR_ID.match(w)), "") if words else ""
    found = []
    for part in word.split("::"):
        style = _HOCOMOCO.match(part) or _HOCOMOCO12.match(part)
        if style:
            found.append(style["tf"])
            continue
        tokens = [t for t in part.split("_") if t]
        tokens = [t for t in tokens if not _JASPAR_ID.match(t)] or tokens
        if tokens:
            found.append(tokens[0])
    return found


def motif_genes(names, genes: list[str]) -> dict[str, list[str]]:
    """Per motif name, the model's genes its TF names name (:func:`tf_names`; ``A::B`` -> both),
    matched case-insensitively (JASPAR writes mouse profiles as ``Pou5f1::Sox2``)."""
    by_upper = {g.upper(): g for g in genes}
    return {name: [by_upper[t.upper()] for t in tf_names(name) if t.upper() in by_upper] for name in names}


def trim_pattern(ppm: np.ndarray, cwm: np.ndarray, threshold: float = TRIM_THRESHOLD) -> tuple[int, int]:
    """(start, end) of the positions from the first to the last whose summed |CWM| is >= threshold x its peak."""
    score = np.abs(cwm).sum(1)
    keep = np.flatnonzero(score >= threshold * score.max())
    return int(keep[0]), int(keep[-1]) + 1


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of all entries of `p` together, same shape."""
    flat = np.asarray(p, dtype=np.float64).ravel()
    order = np.argsort(flat)
    ranked = flat[order] * len(flat) / np.arange(1, len(flat) + 1)
    q = np.empty_like(flat)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q.reshape(np.shape(p))


@dataclass
class MatchTable:
    """Tomtom of Q queries against T database motifs: each query's best target, its p and q, and all p."""

    best: np.ndarray      # (Q,) int index into the database
    p_value: np.ndarray   # (Q,)
    q_value: np.ndarray   # (Q,)
    p_all: np.ndarray     # (Q, T)


def match_motifs(queries: list[np.ndarray], database: dict[str, np.ndarray]) -> MatchTable:
    """Tomtom (memelite) of (4, w) probability matrices against every database motif, both strands."""
    from memelite import tomtom

    targets = [np.ascontiguousarray(pwm) for pwm in database.values()]
    if not queries:
        empty = np.zeros(0)
        return MatchTable(empty.astype(np.int64), empty, empty, np.zeros((0, len(targets))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-target-set warning: the caller words its own
        p_all = tomtom([np.ascontiguousarray(q, dtype=np.float64) for q in queries], targets, n_jobs=-1)[0]
    p_all = np.asarray(p_all, dtype=np.float64)
    q_all = benjamini_hochberg(p_all)
    best = np.argmin(p_all, axis=1)
    rows = np.arange(len(queries))
    return MatchTable(best, p_all[rows, best], q_all[rows, best], p_all)
