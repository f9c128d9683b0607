"""Known-motif databases and Tomtom matching of discovered motifs against them.

A motif database is an ordered ``{name: (4, W) float64 PWM}`` (probabilities over A, C, G, T,
columns summing to 1), read from a MEME or JASPAR file (:mod:`chromtune.io.motifs`) or the planted
motifs of the demo data set (``truth/motif_pwm``). What the names say (TFs, bias motifs) is read by
:mod:`chromtune.interpret.motif_names`.

Matching (memelite's Tomtom, complete scores, both strands) gives a (Q, T) p-value matrix;
q-values are Benjamini-Hochberg over all Q x T comparisons (MEME's Tomtom, too, computes its
q-values from the set of match p-values).
Tomtom builds its null from the target columns, so a database of fewer than ``FEW_TARGETS``
motifs gives p-values that depend on which motifs it holds. Bias motifs (Tn5 / DNase I insertion
preferences, as chrombpnet's database holds) are matched like the others; each query's best match
among the TF motifs is kept beside its best match overall.

Shape contract::

    planted_motifs(dataset)                 -> {name: (4, W)}, {name: [driver genes]}
    trim_pattern(ppm (W,4), cwm (W,4))      -> (start, end) of the informative core
    match_motifs(queries [(4,w)], db)       -> MatchTable: best (Q,) int, p (Q,), q (Q,), p_all (Q,T),
                                               bias (T,) bool, best_tf (Q,) int, tf p (Q,), tf q (Q,)
    benjamini_hochberg(p (...))             -> q of the same shape
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from chromtune.errors import UserError
from chromtune.interpret.motif_names import is_bias_motif

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
    """Tomtom of Q queries against T database motifs: each query's best target, its p and q, and all p;
    and its best target among the TF motifs (not a Tn5 / DNase bias motif: :func:`is_bias_motif`)."""

    best: np.ndarray      # (Q,) int index into the database
    p_value: np.ndarray   # (Q,)
    q_value: np.ndarray   # (Q,)
    p_all: np.ndarray     # (Q, T)
    bias: np.ndarray      # (T,) bool: the database motif is a bias motif
    best_tf: np.ndarray   # (Q,) int index of the best TF motif; -1 when the database holds only bias motifs
    tf_p_value: np.ndarray  # (Q,) its p (NaN without TF motifs)
    tf_q_value: np.ndarray  # (Q,) its q

    @property
    def best_is_bias(self) -> np.ndarray:
        """(Q,) bool: the query's best match is a bias motif."""
        return self.bias[self.best] if len(self.best) else np.zeros(0, dtype=bool)


def match_motifs(queries: list[np.ndarray], database: dict[str, np.ndarray]) -> MatchTable:
    """Tomtom (memelite) of (4, w) probability matrices against every database motif, both strands.

    The q-values count every comparison, bias motifs included; the best TF match is the best among
    the motifs that are not bias motifs, with its p and q from the same matrices."""
    from memelite import tomtom

    targets = [np.ascontiguousarray(pwm) for pwm in database.values()]
    bias = np.asarray([is_bias_motif(name) for name in database], dtype=bool)
    if not queries:
        empty = np.zeros(0)
        return MatchTable(empty.astype(np.int64), empty, empty, np.zeros((0, len(targets))), bias,
                          empty.astype(np.int64), empty, empty)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-target-set warning: the caller words its own
        p_all = tomtom([np.ascontiguousarray(q, dtype=np.float64) for q in queries], targets, n_jobs=-1)[0]
    p_all = np.asarray(p_all, dtype=np.float64)
    q_all = benjamini_hochberg(p_all)
    rows = np.arange(len(queries))
    best = np.argmin(p_all, axis=1)
    if bias.all():
        best_tf, tf_p, tf_q = np.full(len(queries), -1), np.full(len(queries), np.nan), np.full(len(queries), np.nan)
    else:
        best_tf = np.argmin(np.where(bias, np.inf, p_all), axis=1)
        tf_p, tf_q = p_all[rows, best_tf], q_all[rows, best_tf]
    return MatchTable(best, p_all[rows, best], q_all[rows, best], p_all, bias, best_tf, tf_p, tf_q)


MATCH_COLUMNS = ["best_match", "p_value", "q_value", "matched", "best_is_bias", "best_tf_match", "tf_p_value",
                 "tf_q_value", "tf_matched"]


def match_rows(table: MatchTable, names: list[str], threshold: float) -> list[dict]:
    """Per query, the :data:`MATCH_COLUMNS` (matched: q < threshold) and ``motif``, the TF motif the query is
    taken as an instance of: its best TF match when that matches and the best match overall is no bias
    motif (a pattern that looks most like Tn5's or DNase I's preference is not credited to a TF); else ""."""
    rows = []
    for k in range(len(table.best)):
        has_tf = table.best_tf[k] >= 0
        row = dict(best_match=names[table.best[k]], p_value=float(table.p_value[k]),
                   q_value=float(table.q_value[k]), matched=bool(table.q_value[k] < threshold),
                   best_is_bias=bool(table.best_is_bias[k]), best_tf_match=names[table.best_tf[k]] if has_tf else "",
                   tf_p_value=float(table.tf_p_value[k]), tf_q_value=float(table.tf_q_value[k]),
                   tf_matched=bool(has_tf and table.tf_q_value[k] < threshold))
        row["motif"] = row["best_tf_match"] if row["tf_matched"] and not row["best_is_bias"] else ""
        rows.append(row)
    return rows
