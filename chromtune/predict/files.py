"""``chromtune predict`` as a function: a Predictor's probabilities streamed into HDF5 (and BED / bigWig) files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from chromtune.atomic import check_output_file, check_output_folder
from chromtune.errors import UserError, listing
from chromtune.io.tracks import Bins, TrackWriter, file_stems, import_pybigwig, open_tracks
from chromtune.progress import Progress, clock, line_for, rate_text
from chromtune.predict.bins import bin_names, bins_in_regions, has_coordinates, sort_bins
from chromtune.predict.expression import FILLS
from chromtune.predict.predictor import Predictor, resolve_device

BLOCK_BINS = 1 << 13  # bins per block written to the outputs


def write_predictions(out: Path, predictor: Predictor, expression: np.ndarray, cells: list[str], bins: np.ndarray,
                      attrs: dict, bed_dir: Path | None = None, bigwig_dir: Path | None = None, threshold: float = 0.5,
                      batch_size: int = 512, progress: Progress | None = None) -> TrackWriter:
    """Predict `bins` (sorted here by chromosome, then start) block by block and stream the outputs
    (:mod:`chromtune.io.tracks`), each written under a temporary name and renamed into place at the end;
    ``progress`` counts the bins. Returns the writer, whose counts say what passed the threshold."""
    progress = progress if progress is not None else Progress("predict")  # not opened: counts, draws nothing
    ds = predictor.dataset
    bins = sort_bins(ds, bins)
    table = Bins(bins, ds.bin_chrom[bins], ds.bin_start[bins], list(ds.chromosomes),
                 [len(ds.genome[c]) for c in ds.chromosomes] if ds.genome is not None else None, ds.bin_size, ds.stride)
    with open_tracks(out, table, cells, attrs, bed_dir, bigwig_dir, threshold) as writer:
        progress.begin(len(bins), "bins", phase="predicting")
        for lo in range(0, len(bins), BLOCK_BINS):
            block = bins[lo:lo + BLOCK_BINS]
            writer.write(lo, predictor.probabilities(expression, block, batch_size).astype(np.float16),
                         bin_names(ds, block))
            progress.advance(len(block))
        progress.update(phase="writing the files")
    return writer


def bed_report(writer: TrackWriter, bed_dir: Path, n_bins: int) -> list[str]:
    """Per cell type, how many bins passed --threshold into its BED file; and one warning naming the
    cell types with none (an empty BED file), with their highest probability."""
    lines = [f"{bed_dir / stem}.bed: {passed:,} of {n_bins:,} bins at p >= {writer.threshold:g}"
             for stem, passed in zip(file_stems(writer.cells, "--bed"), writer.passed.tolist())]
    empty = [f"{cell} {highest:.3g}" for cell, passed, highest in
             zip(writer.cells, writer.passed.tolist(), writer.highest.tolist()) if not passed]
    if empty:
        lines.append(f"chromtune: warning: --bed {bed_dir}: {len(empty)} of {len(writer.cells)} cell types have no bin "
                     f"at p >= --threshold {writer.threshold:g}, so their BED files are empty (highest p: "
                     f"{listing(empty)}); a lower --threshold keeps more bins")
    return lines


def predict_files(model: str, expression: str | os.PathLike, out: str | os.PathLike, *,
                  data: str | os.PathLike | None = None, regions: str | os.PathLike | None = None,
                  bed: str | os.PathLike | None = None, bigwig: str | os.PathLike | None = None,
                  threshold: float = 0.5, fill_missing: str | None = None, tracking_uri: str | None = None,
                  batch_size: int = 512, device: str = "auto", precision: str = "fp32",
                  progress: Progress | None = None) -> Path:
    """``chromtune predict``: check the arguments, load the model (a sweep run id: its fold ensemble),
    predict every bin (or those overlapping `regions`) in the cell types of the table `expression`,
    and write `out` (plus one BED / bigWig file per cell type into `bed` / `bigwig`); returns `out`.
    The layout of the files is described in :mod:`chromtune.predict`. A progress line on stderr
    (``progress``, or one opened here) counts the bins; the closing lines give the rate and, with
    `bed`, each cell type's bins at p >= `threshold`."""
    with line_for(progress, "predict") as line:
        writer, summary = _predict_files(model, expression, out, data, regions, bed, bigwig, threshold, fill_missing,
                                         tracking_uri, batch_size, device, precision, line)
    print(summary)  # after the progress line's last state
    for text in bed_report(writer, Path(bed), len(writer.bins.index)) if bed is not None else []:
        print(text, file=sys.stderr if text.startswith("chromtune: warning") else sys.stdout)
    return Path(out)


def _predict_files(model, expression, out, data, regions, bed, bigwig, threshold, fill_missing, tracking_uri,
                   batch_size, device, precision, progress: Progress) -> tuple[TrackWriter, str]:
    """:func:`predict_files` under its progress line: the writer and the closing summary."""
    out, expression = Path(out), Path(expression)
    bed, bigwig, regions = (None if x is None else Path(x) for x in (bed, bigwig, regions))
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold {threshold}: must lie in (0, 1]")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be >= 1")
    if fill_missing not in (None, *FILLS):
        raise UserError(f"--fill-missing {fill_missing}: choose from {', '.join(FILLS)}")
    check_output_file(out, "--out")
    for flag, folder in (("--bed", bed), ("--bigwig", bigwig)):
        if folder is not None:
            check_output_folder(folder, flag)
    if bigwig is not None:
        import_pybigwig()
    resolve_device(device)
    progress.update(phase="loading the model")
    predictor = Predictor.load(model, data, tracking_uri=tracking_uri, device=device, precision=precision)
    ds, meta = predictor.dataset, predictor.meta
    progress.update(phase="reading the expression")
    values, cells = predictor.expression(expression, fill_missing)
    bins = bins_in_regions(ds, regions) if regions else np.arange(ds.n_bins)
    if (bed or bigwig) and not has_coordinates(ds):
        flag = "--bed" if bed else "--bigwig"
        raise UserError(f"{flag}: the data set {ds.path} has no genome coordinates (an imported reference data set?)")
    members = predictor.members
    attrs = {"model": ",".join(m.meta["checkpoint"] for m in members),
             "run_id": str(model) if len(members) > 1 else meta.get("run_id", ""), "members": len(members),
             "model_config": json.dumps(members[0].model.config),
             "data": str(ds.path), "expression": str(expression.resolve()),
             "expression_transform": meta["expression_transform"], "fill_missing": fill_missing or "",
             "regions": str(regions.resolve()) if regions else "",
             "assembly": str(ds.attrs.get("assembly", "unknown")), "bin_size": ds.bin_size, "stride": ds.stride,
             "precision": predictor.precision}
    writer = write_predictions(out, predictor, values, cells, bins, attrs, bed, bigwig, threshold, batch_size, progress)
    extras = "".join(f"; {kind} files in {folder}" for kind, folder in (("BED", bed), ("bigWig", bigwig))
                     if folder is not None)
    ensemble = f" (mean of {len(members)} fold models)" if len(members) > 1 else ""
    rate = progress.rate()
    return writer, (f"{out}: {len(bins):,} bins x {len(cells)} cell types{ensemble}{extras}; "
                    f"predicted in {clock(progress.counted_seconds())}" + (f", {rate_text(rate, 'bins')}" if rate else ""))
