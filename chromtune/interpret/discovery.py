"""Motif discovery: cell-type-specific accessible bins, TF-MoDISco on their contributions, patterns back to loci."""

from __future__ import annotations

import numpy as np

from chromtune.data.dataset import Dataset
from chromtune.interpret.motif_match import trim_pattern

SPECIFIC_FRACTION = 0.3   # a bin is cell-type specific when accessible in < 30 % of the cell types
MIN_MODISCO_BINS = 20     # fewer bins give too few seqlets for TF-MoDISco's null model
MODISCO_OPTIONS = dict(   # modisco-lite's defaults but for these (step 3 in chromtune.cli.interpret)
    sliding_window_size=15, flank_size=5, min_metacluster_size=30, n_leiden_runs=10,
    max_seqlets_per_metacluster=5000)


def select_bins(accessible: np.ndarray, fraction: np.ndarray, candidates: np.ndarray, max_bins: int,
                rng: np.random.Generator) -> list[np.ndarray]:
    """Per cell type, sorted bins accessible in it and specific (fraction < SPECIFIC_FRACTION).

    `accessible` is (len(candidates), C) bool over the candidate bins; `fraction` (n_bins,) the
    share of the data set's cell types each bin is accessible in. At most `max_bins` per cell
    type, drawn without replacement.
    """
    chosen = []
    specific = fraction[candidates] < SPECIFIC_FRACTION
    for j in range(accessible.shape[1]):
        bins = candidates[specific & accessible[:, j]]
        if len(bins) > max_bins:
            bins = rng.choice(bins, max_bins, replace=False)
        chosen.append(np.sort(bins))
    return chosen


def run_modisco(modisco, one_hot: np.ndarray, hypothetical: np.ndarray) -> tuple[list, list]:
    """TF-MoDISco on (n, W, 4) inputs: positive and negative patterns (empty lists when none)."""
    pos, neg = modisco.tfmodisco.TFMoDISco(one_hot, hypothetical, **MODISCO_OPTIONS)
    return pos or [], neg or []


def consensus(ppm: np.ndarray) -> str:
    """IUPAC-free consensus of a (w, 4) PPM: upper case where a base has >= 0.5, lower case >= 0.3, else n."""
    top = ppm.argmax(1)
    p = ppm[np.arange(len(ppm)), top]
    return "".join(np.where(p >= 0.5, np.asarray(list("ACGT"))[top],
                            np.where(p >= 0.3, np.asarray(list("acgt"))[top], "n")))


def pattern_records(cell: str, bins: np.ndarray, window_start: int, patterns: dict[str, list]) -> list[dict]:
    """One record per pattern: name, sign, trimmed PPM (4, w), and its seqlets' trimmed cores as loci
    (k, 3): data set bin, start and end in the context window."""
    records = []
    for group, members in patterns.items():
        for k, pattern in enumerate(members):
            ppm, cwm = np.asarray(pattern.sequence), np.asarray(pattern.contrib_scores)
            a, b = trim_pattern(ppm, cwm)
            idx = np.asarray([s.example_idx for s in pattern.seqlets], dtype=np.int64)
            start = np.asarray([s.start for s in pattern.seqlets], dtype=np.int64)
            end = np.asarray([s.end for s in pattern.seqlets], dtype=np.int64)
            rc = np.asarray([s.is_revcomp for s in pattern.seqlets], dtype=bool)
            core_start = np.where(rc, end - b, start + a)
            records.append(dict(cell_type=cell, pattern=f"{group}.pattern_{k}",
                                sign=-1 if group.startswith("neg") else 1, n_seqlets=len(pattern.seqlets),
                                query=ppm[a:b].T, consensus=consensus(ppm[a:b]),
                                loci=np.stack([bins[idx], window_start + core_start,
                                               window_start + core_start + (b - a)], axis=1)))
    return records


def window_one_hot(ds: Dataset, bins: np.ndarray, start: int, width: int) -> np.ndarray:
    """(n, width, 4) float32 one-hot of the windows' positions start..start+width (N all zero)."""
    codes = ds.window_codes(bins)[:, start:start + width]
    return (codes[:, :, None] == np.arange(4, dtype=np.uint8)).astype(np.float32)
