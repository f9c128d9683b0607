"""``chromtune variants`` as functions: effects of a VCF's (or a region's) SNVs written to a file, or of a
VCF or DataFrame's SNVs returned as a pandas DataFrame."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chromtune.data.alleles import WindowIndex
from chromtune.errors import UserError, listing
from chromtune.io.vcf import read_vcf, variants_from_frame
from chromtune.predict.expression import pick_cells
from chromtune.predict.predictor import Predictor
from chromtune.progress import Progress, clock, line_for, rate_text
from chromtune.variants.effects import MEASURES, place_variants, score_blocks
from chromtune.variants.ism import ism_region, ism_variants, write_ism
from chromtune.variants.outputs import attributes, report, write_effects


def choose_cells(predictor: Predictor, expression_path, cells) -> tuple[np.ndarray, list[str]]:
    """(C, G) transformed expression in the model's gene order and the C names: the data set's cell types,
    then those of `expression_path` (a TPM table file or DataFrame); `cells` (comma-separated or a list) picks
    among them."""
    ds = predictor.dataset
    expression, names = np.asarray(ds.expression, dtype=np.float32), list(ds.cell_types)
    if expression_path is not None:
        new, new_names = predictor.expression(expression_path)
        clash = sorted(set(new_names) & set(names))
        if clash:
            raise UserError(f"--expression {expression_path}: {listing(clash)} also name(s) cell types of --data "
                            f"{ds.path}; rename them")
        expression, names = np.concatenate([expression, new]), names + list(new_names)
    keep = pick_cells(names, cells, f"the data set{' and --expression' if expression_path is not None else ''}")
    return expression[keep], [names[k] for k in keep]


def place(predictor: Predictor, variants, where: str, strict: bool, n_cells: int, progress: Progress | None = None):
    """The SNVs of `variants` placed on the predictor's data set (:func:`place_variants`), what was skipped
    said on stderr, and the line saying what is scored with which model(s) (above ``progress``'s line)."""
    ds = predictor.dataset
    placed = place_variants(variants, ds, WindowIndex(ds), strict, where)
    report(placed, where)
    text = (f"{where}: {len(variants)} record(s), {len(placed.position)} SNV(s) scored in {n_cells} cell type(s) "
            f"with {predictor.description}")
    if progress is not None:
        progress.write_line(text)  # on stderr, above the line
    else:
        print(text, file=sys.stderr)
    torch.set_flush_denormal(True)
    return placed


def write_variant_effects(model, out, *, vcf=None, ism: str | None = None, data=None, expression=None, cells=None,
                          strict: bool = False, tracking_uri: str | None = None, batch_size: int = 64,
                          device: str = "auto", progress: Progress | None = None) -> Path:
    """``chromtune variants``: the effects of the SNVs of `vcf` (or of every SNV of the region `ism`,
    ``CHROM:START-END``) in the chosen cell types, written to `out` (.tsv, .tsv.gz or .h5); returns `out`.
    `model` is anything :meth:`Predictor.load` takes (a sweep run id: its fold ensemble). A progress
    line on stderr (``progress``, or one opened here) counts the variants scored."""
    if (vcf is None) == (ism is None):
        raise UserError("--vcf or --ism: give exactly one")
    with line_for(progress, "variants") as line:
        summary = _write_variant_effects(model, Path(out), vcf, ism, data, expression, cells, strict, tracking_uri,
                                         batch_size, device, line)
    print(summary)
    return Path(out)


def _write_variant_effects(model, out: Path, vcf, ism, data, expression, cells, strict, tracking_uri, batch_size,
                           device, progress: Progress) -> str:
    """:func:`write_variant_effects` under its progress line; the closing line."""
    progress.update(phase="loading the model")
    variants = read_vcf(vcf) if vcf is not None else None
    predictor = Predictor.load(model, data, tracking_uri=tracking_uri, device=device)
    ds, members, note = predictor.dataset, predictor.members, predictor.description
    values, names = choose_cells(predictor, expression, cells)
    if variants is None:
        where = f"--ism {ism}"
        region = ism_region(ism, ds)
        variants = ism_variants(ds, *region)
    else:
        where = f"--vcf {vcf}"
    progress.update(phase="placing the variants")
    placed = place(predictor, variants, where, strict, len(names), progress)
    attrs = attributes(members, ds, {"ism": ism} if ism else {"vcf": str(vcf)}, placed, len(variants), note)
    progress.begin(len(placed.position), "variants", phase="scoring")
    blocks = progress.counting(score_blocks(members, ds, placed, values, batch_size, predictor.device,
                                            bins=not ism), lambda block: len(block[2]))
    if ism:
        write_ism(out, blocks, placed, names, ds, region, attrs)
        what = f"{region[2] - region[1]:,} bases x 4 x {len(names)} cell types"
    else:
        rows = write_effects(out, blocks, placed, names, attrs)
        what = f"{len(placed.position):,} variants x {len(names)} cell types ({rows:,} rows)"
    rate = progress.rate()
    return (f"{out}: {what}; scored in {clock(progress.counted_seconds())}"
            + (f", {rate_text(rate, 'variants')}" if rate else ""))


def predict_variant_effects(variants, model, *, cells=None, expression=None, data=None, strict: bool = False,
                            tracking_uri: str | None = None, batch_size: int = 64, device: str = "auto") -> pd.DataFrame:
    """The effects of SNVs on accessibility, one row per (variant, cell type): chrom, pos, id, ref, alt,
    cell_type, every measure of :data:`~chromtune.variants.effects.MEASURES` and n_bins.

    `variants` is a VCF file or a pandas DataFrame (chrom, pos 1-based, ref, alt, optionally id); `model`
    a Predictor or anything :meth:`Predictor.load` takes; `cells` picks among the data set's cell types and
    those of the TPM table or DataFrame `expression`. SNVs that cannot be placed are skipped, as on the
    command line (with `strict` a REF mismatch is an error)."""
    if isinstance(variants, pd.DataFrame):
        records, where = variants_from_frame(variants), "variants (DataFrame)"
    else:
        records, where = read_vcf(variants), f"--vcf {variants}"
    predictor = model if isinstance(model, Predictor) else Predictor.load(model, data, tracking_uri=tracking_uri,
                                                                           device=device)
    values, names = choose_cells(predictor, expression, cells)
    placed = place(predictor, records, where, strict, len(names))
    v, frames = placed.variants, []
    for lo, measures, counts in score_blocks(predictor.members, predictor.dataset, placed, values, batch_size,
                                             predictor.device):
        rows = np.repeat(np.arange(lo, lo + len(counts)), len(names))
        frames.append(pd.DataFrame({"chrom": v.chrom[rows], "pos": v.pos[rows], "id": v.ident[rows],
                                    "ref": v.ref[rows], "alt": v.alt[rows], "cell_type": np.tile(names, len(counts)),
                                    **{m: measures[m].ravel() for m in MEASURES}, "n_bins": np.repeat(counts, len(names))}))
    columns = ["chrom", "pos", "id", "ref", "alt", "cell_type", *MEASURES, "n_bins"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
