"""``chromtune predict``: impute accessibility for cell types that have only RNA-seq.

    chromtune predict --model RUN_ID --expression new_tpm.tsv --out preds.h5
    chromtune predict --model runs/s2/best.pt --expression new.tsv --out preds.h5 --bed beds --bigwig tracks
    chromtune predict --model runs/s2 --expression new.tsv --regions enhancers.bed --fill-missing median --out p.h5

**Model** (``--model``): a stage-2 checkpoint file (``best.pt`` of ``chromtune train``, or of one of
its epochs, ``RUN/ray/train/epoch_N/best.pt``, which a stopped run leaves), a run folder
holding one, the MLflow run id of a sweep's fold run (tag ``chromtune.level=fold``), whose
artifact ``best.pt`` is fetched from ``--tracking-uri`` (default ``sqlite:///mlflow.db``), or the
run id of a sweep (tag ``chromtune.level=sweep``): then every finished fold's selected model
predicts, each with its own training cell types' mean feature, and the output is the mean of their
probabilities (a fold ensemble; each member runs the fast path). Besides
the weights the checkpoint names the model's genes (in input order), the expression transform, the
training cell types (for the mean-accessibility feature and ``--fill-missing median``) and the
training data set, the default ``--data``. ``--data`` supplies the bins and their sequence; its gene
list must be the model's.

**Expression** (``--expression``): a TPM table, tab- or comma-separated, row names in the first
column, genes x cell types or cell types x genes. No sample sheet names the new cell types, so the
axis whose names overlap the model's genes more is the gene axis, and every name on the other axis
is a cell type to predict. Genes are matched by name; extra genes are ignored; a missing gene is
an error unless ``--fill-missing`` fills it (``median``: the training cell types' median,
``zero``: 0 TPM). The data set's transform is applied (``as-imported``: values used as given).

**Fast path**: scores go through :class:`chromtune.models.SplitHead` (shape contracts there): the
trunk runs once per bin, the stage-2 head's first layer is split into a per-bin and a per-cell-type
product, and only the rest of the head runs per (bin, cell type) pair, so an extra cell type costs
the rest of the head, not the trunk. Training's validation and test evaluation score the same way.

**Output** (``--out``, HDF5, written atomically; rows sorted by chromosome, then start)::

    attrs            format="chromtune-predictions", format_version, chromtune_version, model (the
                     checkpoint's path, or runs:/ID/best.pt; for an ensemble every member's, comma-separated),
                     run_id, members (models averaged), model_config (JSON), data,
                     expression, expression_transform, fill_missing, regions, assembly, bin_size, stride
    probabilities    (n, C) float16  P(accessible), bins x cell types
    cell_types       (C,)   str
    chromosomes      (K,)   str      the data set's chromosomes
    bins/index       (n,)   int64    row of the bin in the data set
    bins/chrom       (n,)   int32    index into chromosomes
    bins/start, end  (n,)   int64    0-based, half-open; -1 where the data set has no coordinates
    bins/name        (n,)   str      "chr1:1000-1200", or "chr1:bin<index>" without coordinates

``--bed DIR``: ``DIR/<cell type>.bed`` per cell type, the bins whose stored probability is
>= ``--threshold`` (BED5: chrom, start, end, cell type, round(1000 p)); neighbouring bins overlap
when the stride is shorter than the bin. ``--bigwig DIR``: ``DIR/<cell type>.bw``, each bin's
probability over its central ``min(stride, bin_size)`` bases, so the track tiles without overlaps
(needs the optional package pyBigWig). Both need genome coordinates, which imported reference
data sets lack. ``--regions BED`` keeps the bins overlapping its regions by at least 1 bp.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from chromtune import __version__
from chromtune.atomic import atomic_path, check_output_file, check_output_folder
from chromtune.data.dataset import Dataset, open_dataset
from chromtune.data.prepare import TRANSFORMS, covered_before, merge_intervals
from chromtune.io.expression import read_expression
from chromtune.io.fasta import canonical_name
from chromtune.io.files import read_text, require_file
from chromtune.io.peaks import read_peaks
from chromtune.errors import UserError, run_cli
from chromtune.models import Stage2Model
from chromtune.models.checkpoint import load_model
from chromtune.models.split import MAX_PAIRS
from chromtune.train.baselines import mean_accessibility
from chromtune.train.evaluate import score_blocks

FORMAT = "chromtune-predictions"
FORMAT_VERSION = 1
FILLS = ("median", "zero")
AS_IMPORTED = "as-imported"
INSTALL_HINT = "pip install 'chromtune[interpret]'"
PAIR_ROWS = MAX_PAIRS  # (bin, cell type) pairs per pass through the rest of the head
BLOCK_BINS = 1 << 13  # bins per block written to the outputs
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_SHOWN = 5  # names listed in a message before "..."


def _listing(names: Sequence[str]) -> str:
    return ", ".join(map(str, names[:_SHOWN])) + (", ..." if len(names) > _SHOWN else "")


# -- the model ---------------------------------------------------------------------------------
def load_predictor(source: str, tracking_uri: str | None = None) -> tuple[torch.nn.Module, dict]:
    """A stage-2 model in eval mode (on the CPU) and its checkpoint's metadata (all but the weights).

    `source` is a checkpoint file, a run folder holding ``best.pt``, or an MLflow run id whose
    artifact ``best.pt`` is downloaded from `tracking_uri`. The metadata gains ``source`` and, for a
    run id, ``run_id``; ``checkpoint`` is the file's absolute path (``runs:/ID/best.pt`` for a run).
    Anything unusable is a one-line :class:`UserError`.
    """
    path = Path(source)
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise UserError(f"--model {source}: the folder holds no best.pt")
        return _load_checkpoint(path / "best.pt", source)
    if path.is_file():
        return _load_checkpoint(path, source)
    if _RUN_ID.fullmatch(source):
        with tempfile.TemporaryDirectory(prefix="chromtune-predict-") as tmp:
            model, meta = _load_checkpoint(_download_checkpoint(source, tracking_uri, tmp), source)
        meta.update(run_id=source, checkpoint=f"runs:/{source}/best.pt")
        return model, meta
    raise UserError(f"--model {source}: no such checkpoint file or run folder, and not an MLflow run id "
                    "(32 hex digits)")


def load_predictors(source: str, tracking_uri: str | None = None) -> list[tuple[torch.nn.Module, dict]]:
    """The models `source` names: every finished fold's selected model (in fold order) when it is a
    sweep's MLflow run id, else the one model of :func:`load_predictor`. Each member's metadata
    gains ``fold``; an ensemble's members must share genes and expression transform."""
    folds = _sweep_folds(source, tracking_uri) if _RUN_ID.fullmatch(source) and not Path(source).exists() else None
    if folds is None:
        return [load_predictor(source, tracking_uri)]
    members = [load_predictor(run_id, tracking_uri) for run_id in folds]
    for model, meta in members[1:]:
        for key in ("genes", "expression_transform"):
            if meta[key] != members[0][1][key]:
                raise UserError(f"--model {source}: the sweep's fold models differ in {key}; predict with one "
                                "fold's run id")
    return members


def _sweep_folds(run_id: str, tracking_uri: str | None) -> list[str] | None:
    """Run ids of a sweep run's FINISHED fold runs in fold order; None when `run_id` is no sweep run."""
    from chromtune import tracking

    tracking_uri = tracking_uri or tracking.DEFAULT_TRACKING_URI
    if tracking_uri.startswith(tracking.SQLITE) and not Path(tracking_uri[len(tracking.SQLITE):]).is_file():
        return None  # load_predictor says what is missing
    from mlflow.exceptions import MlflowException

    client = tracking.client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    if run.data.tags.get("chromtune.level") != "sweep":
        return None
    folds = client.search_runs([run.info.experiment_id], max_results=10_000, filter_string=(
        f"tags.`mlflow.parentRunId` = '{run_id}' and tags.`chromtune.level` = 'fold' "
        "and attributes.status = 'FINISHED'"))
    if not folds:
        raise UserError(f"--model {run_id}: a sweep run with no finished fold; wait for one, or name a fold's run id")
    return [r.info.run_id for r in sorted(folds, key=lambda r: int(r.data.tags.get("fold", 0)))]


def _load_checkpoint(path: Path, source: str) -> tuple[nn.Module, dict]:
    try:
        model, checkpoint = load_model(path)
    except ValueError as err:
        raise UserError(f"--model {err}") from None
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    if not isinstance(model, Stage2Model):
        raise UserError(f"--model {source}: a stage-{model.config.get('stage')} model; predict needs a stage-2 "
                        "(sequence + expression) model such as a sweep's selected model")
    missing = [k for k in ("genes", "expression_transform") if k not in meta]
    if missing and "train_cells" in meta:
        raise UserError(f"--model {source}: an epoch checkpoint of a training run, written by a chromtune that kept "
                        f"no gene list in it; {_finished_run(path)}")
    if missing:
        raise UserError(f"--model {source}: the checkpoint lacks {' and '.join(missing)} (written by an older "
                        "chromtune?); use the best.pt of a `chromtune train` run or a sweep's fold run")
    if len(meta["genes"]) != model.config["n_genes"]:
        raise UserError(f"--model {source}: the checkpoint names {len(meta['genes'])} genes but the model takes "
                        f"{model.config['n_genes']}")
    meta.update(source=str(source), checkpoint=str(path.resolve()))
    return model.eval(), meta


def _finished_run(path: Path) -> str:
    """Which file to give instead of an old epoch checkpoint ``RUN/ray/train/epoch_N/best.pt``."""
    parts = path.resolve().parts
    if len(parts) < 5 or parts[-4:-2] != ("ray", "train"):
        return "give the best.pt of the run folder (written when the run ends) or a sweep's fold run id"
    run = Path(*parts[:-4])
    if (run / "best.pt").is_file():
        return f"give the run folder {run} (its best.pt holds the genes) instead"
    return (f"finish the run with `chromtune train --resume --out {run}` and its other flags, then give that "
            "folder")


def _download_checkpoint(run_id: str, tracking_uri: str | None, folder: str) -> Path:
    """The run's artifact ``best.pt``, downloaded into `folder`."""
    from chromtune import tracking  # imported here: only a run id needs MLflow (slow)

    tracking_uri = tracking.require_store(tracking_uri, "a sweep writes sqlite:///mlflow.db in the folder it ran in")
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        tracking.client(tracking_uri).get_run(run_id)
    except MlflowException:
        raise UserError(f"--model {run_id}: no such run in the MLflow store {tracking_uri}") from None
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="best.pt", dst_path=folder,
                                                    tracking_uri=tracking_uri)
    except (MlflowException, OSError):
        raise UserError(f"--model {run_id}: the run has no artifact best.pt; use a sweep's fold run "
                        "(tag chromtune.level=fold), which holds the selected model") from None
    return Path(local)


# -- the expression table ----------------------------------------------------------------------
def _table_names(path: Path) -> tuple[list[str], list[str]]:
    """(row names, column names) of an expression table, the first column being the row names."""
    text = read_text(require_file(path, "--expression"), "--expression")
    sep = "\t" if "\t" in text.split("\n", 1)[0] else ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=sep) if any(f.strip() for f in r)]
    if not rows:
        raise UserError(f"--expression {path}: the table is empty")
    return [r[0].strip() for r in rows[1:]], [f.strip() for f in rows[0][1:]]


def _transform_function(name: str):
    """The function applying the expression transform `name` to TPM (``as-imported``: identity)."""
    if name == AS_IMPORTED:
        return TRANSFORMS["none"]
    if name not in TRANSFORMS:
        raise UserError(f"--model: its expression transform {name!r} is not one chromtune can apply "
                        f"({', '.join([*TRANSFORMS, AS_IMPORTED])})")
    return TRANSFORMS[name]


def align_expression(path, genes: list[str], transform: str, fill: str | None = None,
                     train_expression: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """(C, G) float32 transformed expression in the order of `genes`, and the C cell-type names.

    The table's gene axis is the one whose names overlap `genes` more; the other axis lists the
    cell types. Missing genes are a :class:`UserError` unless `fill` is ``"zero"`` (0 TPM) or
    ``"median"`` (the per-gene median of `train_expression`, the training cell types' already
    transformed (n_train, G) expression). NaN or negative values are one-line errors naming the
    file, gene and cell type.
    """
    if fill not in (None, *FILLS):
        raise ValueError(f"fill must be None or one of {FILLS}, got {fill!r}")
    apply = _transform_function(transform)
    path = Path(path)
    rows, columns = _table_names(path)
    wanted = set(genes)
    in_rows, in_columns = sum(r in wanted for r in rows), sum(c in wanted for c in columns)
    if in_rows == in_columns:
        if not in_rows:
            raise UserError(f"--expression {path}: none of the model's {len(genes)} genes ({_listing(genes)}) is a "
                            "row or column name of the table")
        raise UserError(f"--expression {path}: as many of the model's genes name rows as columns ({in_rows}), "
                        "so the cell-type axis is unclear")
    cells = columns if in_rows > in_columns else rows
    if not cells:
        raise UserError(f"--expression {path}: the table holds genes but no cell types")
    tpm, found, absent = read_expression(path, cells, list(genes))
    if absent and fill is None:
        raise UserError(f"--expression {path}: {len(absent)} of the model's {len(genes)} genes are missing "
                        f"({_listing(absent)}); add them, or pass --fill-missing {' or '.join(FILLS)}")
    column = {g: k for k, g in enumerate(genes)}
    out = np.empty((len(cells), len(genes)), dtype=np.float32)
    out[:, [column[g] for g in found]] = apply(tpm)
    if absent:
        where = [column[g] for g in absent]
        if fill == "median":
            if train_expression is None:
                raise ValueError("fill='median' needs train_expression")
            out[:, where] = np.median(np.asarray(train_expression)[:, where], axis=0)
        else:
            out[:, where] = apply(np.zeros(len(where)))
        print(f"chromtune: warning: --expression {path}: {len(absent)} of the model's {len(genes)} genes are "
              f"missing and filled with the {'training median' if fill == 'median' else 'value of 0 TPM'} "
              f"({_listing(absent)})", file=sys.stderr)
    return out, list(cells)


# -- the fast path -----------------------------------------------------------------------------
@torch.inference_mode()
def predict_accessibility(model, dataset: Dataset, expression: np.ndarray, bins: np.ndarray,
                          mean: np.ndarray | None, batch_size: int = 512, device="cpu") -> np.ndarray:
    """(len(bins), C) float32 probabilities for every (bin, cell type) pair: the fast path.

    `expression` is (C, G) in the model's gene order, already transformed; `bins` index the data
    set's bins; `mean` is the (dataset.n_bins,) mean accessibility over the model's training cell
    types (:func:`chromtune.train.baselines.mean_accessibility`), or None for a model without the
    mean feature. The trunk runs once per bin in batches of `batch_size` bins. The model is moved
    to `device` and put in eval mode (in place). Raises ValueError for inconsistent inputs.
    """
    config = model.config
    expression = np.asarray(expression, dtype=np.float32)
    bins = np.asarray(bins, dtype=np.int64)
    if config.get("stage") != 2:
        raise ValueError("predict_accessibility needs a stage-2 model")
    if expression.ndim != 2 or expression.shape[1] != config["n_genes"] or not len(expression):
        raise ValueError(f"expression has shape {expression.shape}, expected (C >= 1, {config['n_genes']})")
    if dataset.context != config["seq_len"]:
        raise ValueError(f"the data set's windows are {dataset.context} bp, the model takes {config['seq_len']} bp")
    if (mean is None) == config["with_mean"]:
        raise ValueError("this model takes the mean-accessibility feature: pass mean" if mean is None
                         else "this model takes no mean-accessibility feature: mean must be None")
    if mean is not None and np.shape(mean) != (dataset.n_bins,):
        raise ValueError(f"mean has shape {np.shape(mean)}, expected ({dataset.n_bins},)")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    device = torch.device(device)
    model = model.to(device).eval()
    out = np.empty((len(bins), len(expression)), dtype=np.float32)
    done = 0
    for chunk, logits in score_blocks(model, dataset, bins, expression, mean, device, batch_size,
                                      max_pairs=PAIR_ROWS):
        out[done:done + len(chunk)] = torch.sigmoid(logits).cpu().numpy()
        done += len(chunk)
    return out


def predict_ensemble(members: list[tuple[torch.nn.Module, np.ndarray | None]], dataset: Dataset,
                     expression: np.ndarray, bins: np.ndarray, batch_size: int = 512, device="cpu") -> np.ndarray:
    """(len(bins), C) float32: the mean over `members` (model, its mean feature or None) of
    :func:`predict_accessibility`, a fold ensemble's probabilities."""
    total = None
    for model, mean in members:
        p = predict_accessibility(model, dataset, expression, bins, mean, batch_size, device)
        total = p if total is None else total + p
    return total / len(members)


# -- bins --------------------------------------------------------------------------------------
def has_coordinates(ds: Dataset) -> bool:
    """Whether the bins have genome coordinates (imported reference data sets have start -1)."""
    return ds.genome is not None and bool((ds.bin_start >= 0).all())


def bins_in_regions(ds: Dataset, path) -> np.ndarray:
    """Sorted indices of the bins that overlap a region of the BED file `path` by at least 1 bp.

    Chromosome names match in either style (``chr1`` / ``1``); regions on chromosomes the data set
    lacks are skipped with a warning.
    """
    path = require_file(path, "--regions")
    if not has_coordinates(ds):
        raise UserError(f"--regions {path}: the data set {ds.path} has no genome coordinates (an imported "
                        "reference data set?), so bins cannot be matched to regions")
    chrom_of = {canonical_name(c): k for k, c in enumerate(ds.chromosomes)}
    order = np.argsort(ds.bin_chrom, kind="stable")
    bounds = np.searchsorted(ds.bin_chrom[order], np.arange(len(ds.chromosomes) + 1))
    hits, unknown = [np.zeros(0, dtype=np.int64)], []
    for name, regions in read_peaks(path).items():
        k = chrom_of.get(canonical_name(name))
        if k is None:
            unknown.append(name)
            continue
        starts, ends = merge_intervals(regions.starts, regions.ends)
        rows = order[bounds[k]:bounds[k + 1]]
        left = ds.bin_start[rows]
        overlap = covered_before(left + ds.bin_size, starts, ends) - covered_before(left, starts, ends)
        hits.append(rows[overlap > 0])
    if unknown:
        print(f"chromtune: warning: --regions {path}: regions on {len(unknown)} chromosome(s) the data set lacks "
              f"are skipped ({_listing(sorted(unknown))})", file=sys.stderr)
    selected = np.unique(np.concatenate(hits))
    if not len(selected):
        raise UserError(f"--regions {path}: no bin of the data set {ds.path} overlaps its regions")
    return selected


def sort_bins(ds: Dataset, bins: np.ndarray) -> np.ndarray:
    """`bins` ordered by chromosome (the data set's order), then start."""
    bins = np.asarray(bins, dtype=np.int64)
    return bins[np.lexsort((ds.bin_start[bins], ds.bin_chrom[bins]))]


def bin_names(ds: Dataset, bins: np.ndarray) -> np.ndarray:
    """(len(bins),) str: ``chrom:start-end``, or ``chrom:bin<index>`` where coordinates are unknown."""
    chrom = np.asarray(ds.chromosomes, dtype=str)[ds.bin_chrom[bins]]
    start = ds.bin_start[bins]
    located = np.char.add(np.char.add(np.char.add(chrom, ":"), start.astype(str)),
                          np.char.add("-", (start + ds.bin_size).astype(str)))
    unlocated = np.char.add(np.char.add(chrom, ":bin"), np.asarray(bins).astype(str))
    return np.where(start >= 0, located, unlocated)


# -- outputs -----------------------------------------------------------------------------------
def file_stems(cells: list[str], flag: str) -> list[str]:
    """Safe, distinct file names for the cell types."""
    stems = [re.sub(r"[^A-Za-z0-9._+-]", "_", c).lstrip(".") or "_" for c in cells]
    seen: dict[str, str] = {}
    for cell, stem in zip(cells, stems):
        if stem in seen:
            raise UserError(f"{flag}: cell types {seen[stem]!r} and {cell!r} would share the file name {stem!r}")
        seen[stem] = cell
    return stems


def import_pybigwig():
    """The pyBigWig module, or a one-line UserError saying how to install it."""
    try:
        import pyBigWig
    except ImportError:
        raise UserError(f"--bigwig needs the optional package pyBigWig; install it with: {INSTALL_HINT}") from None
    return pyBigWig


def _open_hdf5(stack: contextlib.ExitStack, out: Path, ds: Dataset, cells: list[str], bins: np.ndarray,
               attrs: dict) -> tuple[h5py.Dataset, h5py.Dataset]:
    """Create the output file with everything but the predictions; return its probabilities and names."""
    f = stack.enter_context(h5py.File(stack.enter_context(atomic_path(out)), "w"))
    for key, value in {**attrs, "format": FORMAT, "format_version": FORMAT_VERSION,
                       "chromtune_version": __version__}.items():
        f.attrs[key] = value
    text = h5py.string_dtype()
    f["cell_types"] = np.asarray(cells, dtype=text)
    f["chromosomes"] = np.asarray(ds.chromosomes, dtype=text)
    start = ds.bin_start[bins]
    f["bins/index"] = bins
    f["bins/chrom"] = ds.bin_chrom[bins].astype(np.int32)
    f["bins/start"] = start
    f["bins/end"] = np.where(start >= 0, start + ds.bin_size, -1)
    rows = max(1, min(len(bins), (1 << 19) // len(cells)))  # about 1 MiB of float16 per chunk
    probabilities = f.create_dataset("probabilities", shape=(len(bins), len(cells)), dtype=np.float16,
                                     chunks=(rows, len(cells)), compression="gzip", compression_opts=1)
    return probabilities, f.create_dataset("bins/name", shape=(len(bins),), dtype=text)


def _write_bed_block(handles: list, ds: Dataset, cells: list[str], block: np.ndarray, p: np.ndarray,
                     threshold: float) -> None:
    """Append the block's bins with p >= threshold to each cell type's BED file."""
    chrom, start = np.asarray(ds.chromosomes, dtype=str)[ds.bin_chrom[block]], ds.bin_start[block]
    prefix = np.char.add(np.char.add(np.char.add(chrom, "\t"), start.astype(str)),
                         np.char.add("\t", (start + ds.bin_size).astype(str)))
    for j, handle in enumerate(handles):
        rows = p[:, j] >= threshold
        if rows.any():
            score = np.rint(1000 * p[rows, j]).astype(np.int64).astype(str)
            handle.write("\n".join(np.char.add(np.char.add(prefix[rows], f"\t{cells[j]}\t"), score).tolist()) + "\n")


def _write_bigwig_block(tracks: list, ds: Dataset, block: np.ndarray, p: np.ndarray, folder: Path) -> None:
    """Add each bin's value over its central min(stride, bin_size) bases to each cell type's track."""
    span = min(ds.stride, ds.bin_size)
    left = ds.bin_start[block] + (ds.bin_size - span) // 2
    chrom = np.asarray(ds.chromosomes, dtype=str)[ds.bin_chrom[block]].tolist()
    for j, track in enumerate(tracks):
        try:
            track.addEntries(chrom, left.tolist(), ends=(left + span).tolist(), values=p[:, j].tolist())
        except RuntimeError:
            raise UserError(f"--bigwig {folder}: the data set's bins are not evenly spaced, so their values "
                            "would overlap in a bigWig track") from None


def write_predictions(out: Path, members: list, ds: Dataset, expression: np.ndarray, cells: list[str],
                      bins: np.ndarray, attrs: dict, bed_dir: Path | None = None,
                      bigwig_dir: Path | None = None, threshold: float = 0.5, batch_size: int = 512,
                      device="cpu") -> None:
    """Predict `bins` (sorted here by chromosome, then start) block by block and stream the outputs;
    `members` are (model, mean feature or None) pairs whose probabilities are averaged (one for one model).

    Every file is written under a temporary name and renamed into place only after the last block.
    BED rows and bigWig values use the stored float16 probabilities, so the three outputs agree.
    """
    bins = sort_bins(ds, bins)
    pybigwig = import_pybigwig() if bigwig_dir is not None else None
    with contextlib.ExitStack() as stack:
        probabilities, names = _open_hdf5(stack, out, ds, cells, bins, attrs)
        beds = [stack.enter_context(open(stack.enter_context(atomic_path(bed_dir / f"{stem}.bed")), "w"))
                for stem in (file_stems(cells, "--bed") if bed_dir is not None else [])]
        tracks = []
        for stem in file_stems(cells, "--bigwig") if bigwig_dir is not None else []:
            track = pybigwig.open(str(stack.enter_context(atomic_path(bigwig_dir / f"{stem}.bw"))), "w")
            stack.callback(track.close)
            track.addHeader([(c, len(ds.genome[c])) for c in ds.chromosomes])
            tracks.append(track)
        progress = stack.enter_context(tqdm(total=len(bins), desc="predicting", unit="bin", disable=None,
                                            leave=False))
        for lo in range(0, len(bins), BLOCK_BINS):
            block = bins[lo:lo + BLOCK_BINS]
            p16 = predict_ensemble(members, ds, expression, block, batch_size, device).astype(np.float16)
            probabilities[lo:lo + len(block)] = p16
            names[lo:lo + len(block)] = bin_names(ds, block).astype(object)
            if beds:
                _write_bed_block(beds, ds, cells, block, p16.astype(np.float32), threshold)
            if tracks:
                _write_bigwig_block(tracks, ds, block, p16.astype(np.float32), bigwig_dir)
            progress.update(len(block))


# -- the command -------------------------------------------------------------------------------
def _check_args(args: argparse.Namespace) -> torch.device:
    if not 0 < args.threshold <= 1:
        raise UserError(f"--threshold {args.threshold}: must lie in (0, 1]")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    check_output_file(args.out, "--out")
    for flag, folder in (("--bed", args.bed), ("--bigwig", args.bigwig)):
        if folder is not None:
            check_output_folder(folder, flag)
    if args.bigwig is not None:
        import_pybigwig()
    return resolve_device(args.device)


def resolve_device(name: str) -> torch.device:
    """``--device``: ``auto`` -> cuda when available, else cpu; ``cuda`` without a CUDA device is a UserError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def open_data(data: Path | None, meta: dict) -> Dataset:
    """The data set named by --data, else the one the checkpoint was trained on."""
    if data is not None:
        return open_dataset(data)
    if not meta.get("data"):
        raise UserError(f"--data: the checkpoint {meta['source']} does not name its training data set; pass --data")
    if not Path(meta["data"]).is_file():
        raise UserError(f"--data: the model's training data set {meta['data']} is not on this machine; pass --data")
    return open_dataset(meta["data"])


def check_data(ds: Dataset, model, meta: dict) -> None:
    """Refuse a data set whose genes or window length differ from the model's."""
    genes = list(meta["genes"])
    if ds.genes != genes:
        k = next((i for i, (a, b) in enumerate(zip(genes, ds.genes)) if a != b), min(len(genes), len(ds.genes)))
        difference = (f"gene {k + 1}: {genes[k]!r} vs {ds.genes[k]!r}" if k < min(len(genes), len(ds.genes))
                      else "one list extends the other")
        raise UserError(f"--model {meta['source']}: was trained on another gene list than --data {ds.path} "
                        f"({len(genes)} vs {len(ds.genes)} genes; first difference at {difference})")
    if ds.context != model.config["seq_len"]:
        raise UserError(f"--data {ds.path}: windows of {ds.context} bp, but the model takes {model.config['seq_len']} bp")


def train_cells(ds: Dataset, meta: dict, why: str) -> np.ndarray:
    """Indices in the data set of the model's training cell types."""
    names = meta.get("train_cells")
    if not names:
        raise UserError(f"--model {meta['source']}: the checkpoint does not name its training cell types, "
                        f"which {why} needs")
    index = {c: j for j, c in enumerate(ds.cell_types)}
    absent = [c for c in names if c not in index]
    if absent:
        raise UserError(f"--data {ds.path}: lacks {len(absent)} of the model's training cell types "
                        f"({_listing(absent)}), which {why} needs")
    return np.asarray([index[c] for c in names], dtype=np.int64)


def run(args: argparse.Namespace) -> int:
    """``chromtune predict`` with parsed flags (:mod:`chromtune.cli.predict`): check, predict, write."""
    device = _check_args(args)
    loaded = load_predictors(args.model, args.tracking_uri)
    model, meta = loaded[0]
    ds = open_data(args.data, meta)
    for member, member_meta in loaded:
        check_data(ds, member, member_meta)
    train_expression = (ds.expression[train_cells(ds, meta, "--fill-missing median")]
                        if args.fill_missing == "median" else None)
    expression, cells = align_expression(args.expression, meta["genes"], meta["expression_transform"],
                                         args.fill_missing, train_expression)
    bins = bins_in_regions(ds, args.regions) if args.regions else np.arange(ds.n_bins)
    if (args.bed or args.bigwig) and not has_coordinates(ds):
        flag = "--bed" if args.bed else "--bigwig"
        raise UserError(f"{flag}: the data set {ds.path} has no genome coordinates (an imported reference data set?)")
    why = "the model's mean-accessibility feature"
    members = [(member, mean_accessibility(ds.labels, train_cells(ds, member_meta, why))
                if member.config["with_mean"] else None) for member, member_meta in loaded]
    attrs = {"model": ",".join(m["checkpoint"] for _, m in loaded),
             "run_id": args.model if len(loaded) > 1 else meta.get("run_id", ""), "members": len(loaded),
             "model_config": json.dumps(model.config),
             "data": str(ds.path), "expression": str(args.expression.resolve()),
             "expression_transform": meta["expression_transform"], "fill_missing": args.fill_missing or "",
             "regions": str(args.regions.resolve()) if args.regions else "",
             "assembly": str(ds.attrs.get("assembly", "unknown")), "bin_size": ds.bin_size, "stride": ds.stride}
    write_predictions(args.out, members, ds, expression, cells, bins, attrs, args.bed, args.bigwig,
                      args.threshold, args.batch_size, device)
    extras = "".join(f"; {kind} files in {folder}" for kind, folder in (("BED", args.bed), ("bigWig", args.bigwig))
                     if folder is not None)
    ensemble = f" (mean of {len(loaded)} fold models)" if len(loaded) > 1 else ""
    print(f"{args.out}: {len(bins):,} bins x {len(cells)} cell types{ensemble}{extras}")
    return 0


if __name__ == "__main__":
    from chromtune.cli.predict import main

    sys.exit(run_cli(main))
