"""Scoring SNVs: placing them on the data set's genome, their allele windows, and their effects per cell type.

For a block of SNVs (0-based position p on a data set chromosome, alternate base b): the windows
are the one centred on p and every data set bin window holding p (:mod:`chromtune.data.alleles`),
each as a reference and an alternate window differing at one base. The trunk runs once per allele
and window, both alleles of ``batch_size`` windows in one pass; the head runs through
:class:`chromtune.models.SplitHead` (the per-window product once per allele and window, the
per-cell-type product once per cell type, the rest per (window, cell type)). A window that does
not hold p is never built: its Δ would be 0. Several models (a fold ensemble) average their
probabilities; Δ logit is then that of the averaged probabilities.

Shape contract (V variants in a block, J windows, C cell types, L = context)::

    place_variants(variants, ds, index, strict, where)   -> Placed: the SNVs to score (n,), counts of the rest
    allele_windows(ds, index, chrom, pos, alt)           -> AlleleWindows: variant (J,), bin (J,) (-1: centred),
                                                            ref (J, L), alt (J, L), mean_bin (J,)
    allele_logits(model, split, ref, alt, mean, per_cell, batch_size, device) -> (J, C), (J, C) logits
    summarise(windows, ref_logit, alt_logit, V)          -> {measure: (V, C)}, n_bins (V,)
    score_blocks(members, ds, placed, expression, ...)   -> yields (first variant, measures, n_bins)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from chromtune.data.alleles import WindowIndex, genome_windows, substitute, window_starts
from chromtune.data.dataset import Dataset
from chromtune.data.encoding import one_hot
from chromtune.errors import SHOWN, UserError
from chromtune.io.fasta import canonical_name, encode
from chromtune.io.vcf import Variants
from chromtune.models import SplitHead
from chromtune.predict.scoring import Member

MEASURES = ("ref_prob", "alt_prob", "delta_logit", "delta_prob", "max_abs_delta_logit", "max_abs_delta_prob")
BLOCK_VARIANTS = 512   # variants scored and written per block (bounds memory: ~21 windows each)


# -- placing the VCF's records on the data set's genome ----------------------------------------
@dataclass
class Placed:
    """The SNVs that will be scored, on the data set's genome, and what happened to the other records."""

    variants: Variants            # the scored records
    chrom: np.ndarray             # (n,) int64 index into the data set's chromosomes
    position: np.ndarray          # (n,) int64 0-based
    alt_code: np.ndarray          # (n,) uint8 code of the alternate base
    skipped: Counter = field(default_factory=Counter)   # reason -> records
    unknown_chroms: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)  # the first few REF mismatches, described


def place_variants(variants: Variants, ds: Dataset, index: WindowIndex, strict: bool, where: str) -> Placed:
    """The SNVs of `variants` whose chromosome the data set has and whose REF matches its genome.

    Everything else is counted in :attr:`Placed.skipped`; with `strict`, a REF mismatch is a
    UserError naming the record's line.
    """
    if ds.genome is None:
        raise UserError(f"--data {ds.path}: stores windows without a genome (an imported reference data set?), so "
                        "variants cannot be placed; use a data set built by `chromtune prepare` or the demo")
    skipped: Counter = Counter(kind for kind in variants.kind if kind != "snv")
    snv = variants.subset(variants.kind == "snv")
    chrom_of = {canonical_name(c): k for k, c in enumerate(ds.chromosomes) if index.bins_in(k)}
    chrom = np.asarray([chrom_of.get(canonical_name(c), -1) for c in snv.chrom], dtype=np.int64)
    unknown = Counter(snv.chrom[chrom < 0].tolist())
    if unknown:
        skipped["chromosome not in the data set"] = sum(unknown.values())
    known = chrom >= 0
    snv, chrom = snv.subset(known), chrom[known]
    position = snv.pos - 1
    genome_base = np.full(len(snv), 4, dtype=np.uint8)
    for k in np.unique(chrom):
        rows = np.flatnonzero(chrom == k)
        sequence = ds.genome[ds.chromosomes[k]]
        inside = rows[position[rows] < len(sequence)]
        genome_base[inside] = sequence[position[inside]]
    ref_code = encode("".join(snv.ref)) if len(snv) else np.zeros(0, dtype=np.uint8)
    bad = np.flatnonzero(genome_base != ref_code)
    mismatches = []
    for r in bad[:SHOWN]:
        found = "ACGTN"[genome_base[r]] if snv.pos[r] <= len(ds.genome[ds.chromosomes[chrom[r]]]) else \
            "nothing (past the chromosome's end)"
        mismatches.append(f"line {snv.line[r]} {snv.chrom[r]}:{snv.pos[r]} REF {snv.ref[r]}, genome {found}")
    if len(bad) and strict:
        raise UserError(f"{where} {mismatches[0]}: REF does not match the genome of --data {ds.path} (--strict)")
    if len(bad):
        skipped["REF mismatch"] = len(bad)
    keep = np.ones(len(snv), dtype=bool)
    keep[bad] = False
    snv = snv.subset(keep)
    return Placed(snv, chrom[keep], position[keep], encode("".join(snv.alt)) if len(snv) else np.zeros(0, np.uint8),
                  skipped, unknown, mismatches)


# -- windows and scores ------------------------------------------------------------------------
@dataclass
class AlleleWindows:
    """For a block of variants: each window's variant, its data set bin (-1: the centred bin) and both alleles."""

    variant: np.ndarray   # (J,) int64 index into the block
    bin: np.ndarray       # (J,) int64 data set bin, -1 for the window centred on the variant
    ref: np.ndarray       # (J, L) uint8
    alt: np.ndarray       # (J, L) uint8
    mean_bin: np.ndarray  # (J,) int64 the bin whose mean-accessibility feature the window takes


def allele_windows(ds: Dataset, index: WindowIndex, chrom: np.ndarray, position: np.ndarray,
                   alt_code: np.ndarray, bins: bool = True) -> AlleleWindows:
    """Per variant, the centred window first, then (unless not `bins`) every data set bin whose window holds it."""
    starts_of_bins = window_starts(ds)
    variant, window_bin, starts, chroms, mean_bin = [], [], [], [], []
    for v, (k, p) in enumerate(zip(chrom.tolist(), position.tolist())):
        holding = index.bins_holding(k, p) if bins else np.zeros(0, dtype=np.int64)
        variant.append(np.full(len(holding) + 1, v, dtype=np.int64))
        window_bin.append(np.concatenate([[-1], holding]))
        starts.append(np.concatenate([[p - ds.context // 2], starts_of_bins[holding]]))
        chroms.append(np.full(len(holding) + 1, k, dtype=np.int64))
        mean_bin.append(np.concatenate([[index.nearest_bin(k, p)], holding]))
    variant, window_bin, starts, chroms, mean_bin = (np.concatenate(x).astype(np.int64) if x else np.zeros(0, np.int64)
                                                     for x in (variant, window_bin, starts, chroms, mean_bin))
    ref = np.empty((len(window_bin), ds.context), dtype=np.uint8)
    for k in np.unique(chroms):
        rows = np.flatnonzero(chroms == k)
        ref[rows] = genome_windows(ds, int(k), starts[rows])
    alt = substitute(ref, position[variant] - starts, alt_code[variant])
    return AlleleWindows(variant, window_bin, ref, alt, mean_bin)


@torch.inference_mode()
def allele_logits(model: torch.nn.Module, split: SplitHead, ref: np.ndarray, alt: np.ndarray,
                  mean: np.ndarray | None, per_cell: torch.Tensor, batch_size: int,
                  device) -> tuple[np.ndarray, np.ndarray]:
    """(J, C) reference and alternate logits; the trunk sees `batch_size` windows' two alleles per pass."""
    n_cells = len(per_cell)
    out_ref = np.empty((len(ref), n_cells), dtype=np.float32)
    out_alt = np.empty((len(ref), n_cells), dtype=np.float32)
    for lo in range(0, len(ref), batch_size):
        hi = min(lo + batch_size, len(ref))
        feat = model.trunk(one_hot(np.concatenate([ref[lo:hi], alt[lo:hi]]), device))
        m = None if mean is None else torch.as_tensor(np.tile(mean[lo:hi], 2), device=device)
        z = split.logits(feat, m, per_cell).float().cpu().numpy()
        out_ref[lo:hi], out_alt[lo:hi] = z[:hi - lo], z[hi - lo:]
    return out_ref, out_alt


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-z.astype(np.float64)))).astype(np.float32)


def window_effects(members: list[Member], windows: AlleleWindows, expression: np.ndarray, batch_size: int,
                   device) -> tuple[np.ndarray, np.ndarray]:
    """(J, C) reference and alternate logits of every window; several models: the logit of their mean probability."""
    logits = []
    for member in members:
        model = member.model.to(device).eval()
        split = SplitHead(model)
        with torch.inference_mode():
            per_cell = split.per_cell(torch.as_tensor(expression, dtype=torch.float32, device=device))
        mean = None if member.mean is None else member.mean[windows.mean_bin].astype(np.float32)
        logits.append(allele_logits(model, split, windows.ref, windows.alt, mean, per_cell, batch_size, device))
    if len(logits) == 1:
        return logits[0]
    return tuple(_logit(np.mean([_sigmoid(pair[a]) for pair in logits], axis=0)) for a in (0, 1))


def summarise(windows: AlleleWindows, ref_logit: np.ndarray, alt_logit: np.ndarray,
              n_variants: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per (variant, cell type) every measure of :data:`MEASURES` as (V, C) float32, and n_bins (V,)."""
    ref_p, alt_p = _sigmoid(ref_logit), _sigmoid(alt_logit)
    d_logit, d_prob = alt_logit - ref_logit, alt_p - ref_p
    centred = np.flatnonzero(windows.bin < 0)
    order = centred[np.argsort(windows.variant[centred], kind="stable")]
    out = {"ref_prob": ref_p[order], "alt_prob": alt_p[order], "delta_logit": d_logit[order],
           "delta_prob": d_prob[order]}
    bins = np.flatnonzero(windows.bin >= 0)
    for name, delta in (("max_abs_delta_logit", d_logit), ("max_abs_delta_prob", d_prob)):
        peak = np.zeros((n_variants, ref_logit.shape[1]), dtype=np.float32)
        np.maximum.at(peak, windows.variant[bins], np.abs(delta[bins]))
        out[name] = peak
    return out, np.bincount(windows.variant[bins], minlength=n_variants)


def score_blocks(members: list[Member], ds: Dataset, placed: Placed, expression: np.ndarray, batch_size: int,
                 device, block: int = BLOCK_VARIANTS, bins: bool = True):
    """Yield (first variant, measures, n_bins) per block of `block` variants (see :func:`summarise`); without
    `bins` only the centred windows are scored (the max |Δ| measures and n_bins are then 0)."""
    index = WindowIndex(ds)
    for lo in range(0, len(placed.position), block):
        sl = slice(lo, lo + block)
        windows = allele_windows(ds, index, placed.chrom[sl], placed.position[sl], placed.alt_code[sl], bins)
        ref_logit, alt_logit = window_effects(members, windows, expression, batch_size, device)
        measures, n_bins = summarise(windows, ref_logit, alt_logit, len(placed.position[sl]))
        yield lo, measures, n_bins
