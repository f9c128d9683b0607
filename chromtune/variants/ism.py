"""Saturation mutagenesis (``--ism``): every SNV of a region, scored on the window centred on it, as matrices."""

from __future__ import annotations

import contextlib
import gzip
import re
from pathlib import Path

import numpy as np

from chromtune.atomic import atomic_path
from chromtune.data.dataset import Dataset
from chromtune.errors import UserError, listing
from chromtune.io.fasta import canonical_name
from chromtune.io.tracks import write_header
from chromtune.io.vcf import Variants
from chromtune.variants.effects import Placed
from chromtune.variants.outputs import FORMAT_VERSION

ISM_FORMAT = "chromtune-ism"
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
