"""Variant effects on accessibility in any cell type with expression (``chromtune variants``; user guide there).

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

import contextlib
import gzip
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from chromtune.atomic import atomic_path
from chromtune.data.dataset import Dataset
from chromtune.data.encoding import one_hot
from chromtune.errors import SHOWN, UserError, listing
from chromtune.data.alleles import WindowIndex, genome_windows, substitute, window_starts
from chromtune.io.fasta import canonical_name, encode
from chromtune.io.tracks import write_header
from chromtune.io.vcf import Variants
from chromtune.models import SplitHead
from chromtune.predict.expression import pick_cells
from chromtune.predict.predictor import Predictor
from chromtune.predict.scoring import Member

MEASURES = ("ref_prob", "alt_prob", "delta_logit", "delta_prob", "max_abs_delta_logit", "max_abs_delta_prob")
FORMAT = "chromtune-variant-effects"
FORMAT_VERSION = 1
ISM_FORMAT = "chromtune-ism"
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


# -- outputs -----------------------------------------------------------------------------------
def write_effects(out: Path, blocks, placed: Placed, cells: list[str], attrs: dict) -> int:
    """Stream the blocks of :func:`score_blocks` into `out` (HDF5 for .h5/.hdf5, else TSV, gzipped for .gz),
    atomically; the number of (variant, cell type) rows written."""
    v = placed.variants
    rows = 0
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        if out.name.lower().endswith((".h5", ".hdf5")):
            import h5py

            f = stack.enter_context(h5py.File(tmp, "w"))
            write_header(f, attrs, FORMAT, FORMAT_VERSION)
            text = h5py.string_dtype()
            f["cell_types"] = np.asarray(cells, dtype=text)
            for name, values in (("chrom", v.chrom), ("id", v.ident), ("ref", v.ref), ("alt", v.alt)):
                f[f"variants/{name}"] = np.asarray(values, dtype=text)
            f["variants/pos"], f["variants/line"] = v.pos, v.line
            n_bins = f.create_dataset("variants/n_bins", shape=(len(v),), dtype=np.int64)
            shape = (len(v), len(cells))
            options = dict(chunks=(max(1, min(len(v), (1 << 18) // len(cells))), len(cells)), compression="gzip",
                           compression_opts=1) if len(v) else {}
            matrices = {m: f.create_dataset(m, shape=shape, dtype=np.float32, **options) for m in MEASURES}
            for lo, measures, counts in blocks:
                for m in MEASURES:
                    matrices[m][lo:lo + len(counts)] = measures[m]
                n_bins[lo:lo + len(counts)] = counts
                rows += len(counts) * len(cells)
            return rows
        opener = gzip.open if out.name.lower().endswith(".gz") else open
        handle = stack.enter_context(opener(tmp, "wt", encoding="utf-8", newline=""))
        handle.write("\t".join(["chrom", "pos", "id", "ref", "alt", "cell_type", *MEASURES, "n_bins"]) + "\n")
        for lo, measures, counts in blocks:
            values = np.stack([measures[m] for m in MEASURES], axis=2).tolist()  # (k, C, measures)
            for i, n_bins in enumerate(counts.tolist()):
                r = lo + i
                head = f"{v.chrom[r]}\t{v.pos[r]}\t{v.ident[r]}\t{v.ref[r]}\t{v.alt[r]}\t"
                handle.writelines(f"{head}{cell}\t" + "\t".join(f"{x:.6g}" for x in row) + f"\t{n_bins}\n"
                                  for cell, row in zip(cells, values[i]))
            rows += len(counts) * len(cells)
    return rows


def attributes(members: list[Member], ds: Dataset, source: dict, placed: Placed, total: int, note: str) -> dict:
    """The HDF5 output's attributes: what was scored with what."""
    return {"models": json.dumps([m.meta["checkpoint"] for m in members]),
            "run_ids": json.dumps([m.meta.get("run_id", "") for m in members]),
            "model_config": json.dumps(members[0].model.config), "data": str(ds.path), **source,
            "records": total, "scored": len(placed.position), "skipped": json.dumps(dict(placed.skipped)),
            "ensemble": note, "context": ds.context, "assembly": str(ds.attrs.get("assembly", "unknown"))}


def report(placed: Placed, where: str) -> None:
    """One warning line per kind of problem (on stderr): unknown chromosomes, REF mismatches, skipped kinds."""
    if placed.unknown_chroms:
        counts = ", ".join(f"{c} ({n})" for c, n in placed.unknown_chroms.most_common(SHOWN))
        more = ", ..." if len(placed.unknown_chroms) > SHOWN else ""
        print(f"chromtune: warning: {where}: {sum(placed.unknown_chroms.values())} SNV(s) on "
              f"{len(placed.unknown_chroms)} chromosome(s) the data set lacks are skipped: {counts}{more}",
              file=sys.stderr)
    if placed.mismatches:
        print(f"chromtune: warning: {where}: {placed.skipped['REF mismatch']} SNV(s) whose REF does not match the "
              f"genome are skipped (--strict makes this an error); first: {placed.mismatches[0]}", file=sys.stderr)
    kinds = {"indel": "indel", "mnv": "multi-base substitution", "other": "symbolic or N allele"}
    skipped = [f"{placed.skipped[k]} {label}" for k, label in kinds.items() if placed.skipped.get(k)]
    if skipped:
        print(f"chromtune: note: {where}: skipped: {', '.join(skipped)} (SNVs only are scored)", file=sys.stderr)


# -- saturation mutagenesis (--ism) ------------------------------------------------------------
ISM_MAX_BP = 10_000   # longest --ism region: 3 SNVs per base, each its own window pair
_REGION = re.compile(r"([^:\s]+):([0-9,]+)-([0-9,]+)")


def ism_region(text: str, ds: Dataset) -> tuple[int, int, int]:
    """(chromosome index, 0-based start, end) of ``--ism CHROM:START-END`` (1-based, inclusive, as samtools)."""
    m = _REGION.fullmatch(text.strip())
    if not m:
        raise UserError(f"--ism {text}: expected CHROM:START-END, 1-based and inclusive (e.g. chr1:1001-1100)")
    k = {canonical_name(c): k for k, c in enumerate(ds.chromosomes)}.get(canonical_name(m[1]))
    if k is None:
        raise UserError(f"--ism {text}: the data set {ds.path} has no chromosome {m[1]} ({listing(ds.chromosomes)})")
    start, end, length = int(m[2].replace(",", "")), int(m[3].replace(",", "")), len(ds.genome[ds.chromosomes[k]])
    if not 1 <= start <= end <= length:
        raise UserError(f"--ism {text}: needs 1 <= START <= END <= {length:,} (the length of {ds.chromosomes[k]})")
    if end - start + 1 > ISM_MAX_BP:
        raise UserError(f"--ism {text}: {end - start + 1:,} bp; at most {ISM_MAX_BP:,} bp per run")
    return k, start - 1, end


def ism_variants(ds: Dataset, chrom: int, start: int, end: int) -> Variants:
    """Every SNV of the region: per base that is A, C, G or T, the three others in ACGT order (N bases: none)."""
    codes = ds.genome[ds.chromosomes[chrom]][start:end]
    offset = np.flatnonzero(codes < 4)
    ref = np.repeat(codes[offset], 3)
    alt = (ref + np.tile(np.arange(1, 4), len(offset))) % 4
    letters, n = np.asarray(list("ACGT")), 3 * len(offset)
    return Variants(np.full(n, ds.chromosomes[chrom]), np.repeat(start + offset + 1, 3).astype(np.int64),
                    np.full(n, "."), letters[ref], letters[alt], np.full(n, "snv"), np.zeros(n, dtype=np.int64))


def write_ism(out: Path, blocks, placed: Placed, cells: list[str], ds: Dataset, region: tuple[int, int, int],
              attrs: dict) -> None:
    """The blocks of :func:`score_blocks` over :func:`ism_variants` as matrices (C, L, 4) of Δ logit and Δ prob
    of the window centred on each base (0 for the reference base, NaN at N), written atomically: HDF5 for
    .h5/.hdf5, else TSV (one row per cell type and base: ref_prob, then Δ logit for A, C, G, T)."""
    chrom, start, end = region
    codes = ds.genome[ds.chromosomes[chrom]][start:end]
    shape = (len(cells), end - start, 4)
    delta = {m: np.zeros(shape, dtype=np.float32) for m in ("delta_logit", "delta_prob")}
    for values in delta.values():
        values[:, codes >= 4] = np.nan
    ref_prob = np.full(shape[:2], np.nan, dtype=np.float32)
    for lo, measures, counts in blocks:
        offset, base = placed.position[lo:lo + len(counts)] - start, placed.alt_code[lo:lo + len(counts)]
        for m in delta:
            delta[m][:, offset, base] = measures[m].T
        ref_prob[:, offset] = measures["ref_prob"].T
    letters = np.asarray(list("ACGTN"))[np.minimum(codes, 4)]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        if out.name.lower().endswith((".h5", ".hdf5")):
            import h5py

            f = stack.enter_context(h5py.File(tmp, "w"))
            write_header(f, {**attrs, "chrom": ds.chromosomes[chrom], "start": start + 1, "end": end}, ISM_FORMAT,
                         FORMAT_VERSION)
            text = h5py.string_dtype()
            f["cell_types"] = np.asarray(cells, dtype=text)
            f["position"] = np.arange(start + 1, end + 1, dtype=np.int64)
            f["reference"] = letters.astype(text)
            f["ref_prob"] = ref_prob
            for m, values in delta.items():
                f[m] = values
            return
        opener = gzip.open if out.name.lower().endswith(".gz") else open
        handle = stack.enter_context(opener(tmp, "wt", encoding="utf-8", newline=""))
        handle.write("cell_type\tchrom\tpos\tref\tref_prob\tA\tC\tG\tT\n")
        for j, cell in enumerate(cells):
            for i in range(end - start):
                values = "\t".join(f"{x:.6g}" for x in (ref_prob[j, i], *delta["delta_logit"][j, i]))
                handle.write(f"{cell}\t{ds.chromosomes[chrom]}\t{start + i + 1}\t{letters[i]}\t{values}\n")


# -- the command -------------------------------------------------------------------------------
def choose_cells(predictor: Predictor, expression_path: Path | None, cells) -> tuple[np.ndarray, list[str]]:
    """(C, G) transformed expression in the model's gene order and the C names: the data set's cell types,
    then those of `expression_path`; `cells` (comma-separated or a list) picks among them."""
    ds = predictor.dataset
    expression, names = np.asarray(ds.expression, dtype=np.float32), list(ds.cell_types)
    if expression_path is not None:
        new, new_names = predictor.expression(expression_path)
        clash = sorted(set(new_names) & set(names))
        if clash:
            raise UserError(f"--expression {expression_path}: {listing(clash)} also name(s) cell types of --data "
                            f"{ds.path}; rename them")
        expression, names = np.concatenate([expression, new]), names + list(new_names)
    keep = pick_cells(names, cells, f"the data set{' and --expression' if expression_path else ''}")
    return expression[keep], [names[k] for k in keep]


def write_variant_effects(model, out, *, vcf=None, ism: str | None = None, data=None, expression=None, cells=None,
                          strict: bool = False, tracking_uri: str | None = None, batch_size: int = 64,
                          device: str = "auto") -> Path:
    """``chromtune variants``: the effects of the SNVs of `vcf` (or of every SNV of the region `ism`,
    ``CHROM:START-END``) in the chosen cell types, written to `out` (.tsv, .tsv.gz or .h5); returns `out`.
    `model` is anything :meth:`Predictor.load` takes (a sweep run id: its fold ensemble)."""
    from chromtune.io.vcf import read_vcf

    if (vcf is None) == (ism is None):
        raise UserError("--vcf or --ism: give exactly one")
    out = Path(out)
    variants = read_vcf(vcf) if vcf is not None else None
    predictor = Predictor.load(model, data, tracking_uri=tracking_uri, device=device)
    ds, members, note = predictor.dataset, predictor.members, predictor.description
    expression, names = choose_cells(predictor, expression, cells)
    if variants is None:
        where = f"--ism {ism}"
        region = ism_region(ism, ds)
        variants = ism_variants(ds, *region)
    else:
        where = f"--vcf {vcf}"
    placed = place_variants(variants, ds, WindowIndex(ds), strict, where)
    report(placed, where)
    print(f"{where}: {len(variants)} record(s), {len(placed.position)} SNV(s) scored in {len(names)} cell type(s) "
          f"with {note}", file=sys.stderr)
    torch.set_flush_denormal(True)
    attrs = attributes(members, ds, {"ism": ism} if ism else {"vcf": str(vcf)}, placed, len(variants), note)
    if ism:
        blocks = score_blocks(members, ds, placed, expression, batch_size, predictor.device, bins=False)
        write_ism(out, blocks, placed, names, ds, region, attrs)
        print(f"{out}: {region[2] - region[1]:,} bases x 4 x {len(names)} cell types")
        return out
    blocks = score_blocks(members, ds, placed, expression, batch_size, predictor.device)
    rows = write_effects(out, blocks, placed, names, attrs)
    print(f"{out}: {len(placed.position):,} variants x {len(names)} cell types ({rows:,} rows)")
    return out
