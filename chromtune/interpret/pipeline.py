"""The ``chromtune interpret`` pipeline: bins, contributions, TF-MoDISco, Tomtom, motif activity, t-SNE.

The steps and outputs are described for users in :mod:`chromtune.cli.interpret`; this module runs them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from chromtune.atomic import atomic_path
from chromtune.data.dataset import Dataset
from chromtune.errors import UserError
from chromtune.progress import Progress, line_for
from chromtune.interpret.activity import (instance_loci, motif_activity, motif_base, motif_label, pearson_columns,
                                          plot_correlation)
from chromtune.interpret.attribution import hypothetical_contributions
from chromtune.interpret.discovery import (MIN_MODISCO_BINS, MODISCO_OPTIONS, SPECIFIC_FRACTION, pattern_records,
                                           run_modisco, select_bins, window_one_hot)
from chromtune.interpret.embedding import plot_tsne, tsne_embedding
from chromtune.interpret.motif_match import FEW_TARGETS, MATCH_COLUMNS, match_motifs, match_rows, planted_motifs
from chromtune.interpret.motif_names import motif_genes
from chromtune.io.motifs import read_motif_file
from chromtune.io.tracks import INSTALL_HINT, file_stems, write_header
from chromtune.predict.bins import bins_in_regions
from chromtune.predict.expression import pick_cells
from chromtune.predict.predictor import Predictor
from chromtune.predict.scoring import predict_accessibility
from chromtune.train.baselines import mean_accessibility

MATCH_Q = 0.05            # Tomtom q-value at which a pattern matches a database motif
TSNE_BINS = 5000          # bins whose predicted accessibility embeds the cell types
MIN_TSNE_CELLS = 5
NO_PATTERN = "no pattern: TF-MoDISco found no recurring motif in their contributions"


# -- set-up ------------------------------------------------------------------------------------
EXTRAS = {"modisco-lite": "modiscolite", "memelite": "memelite"}  # package -> module: TF-MoDISco, Tomtom


def require_extras():
    """modisco-lite's tfmodisco and io modules, once both optional packages are known to be installed (memelite
    is imported where Tomtom runs, after the slow steps); a missing one is a one-line UserError with the install
    command."""
    missing = [package for package, module in EXTRAS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UserError(f"chromtune interpret needs the optional packages modisco-lite and memelite "
                        f"({' and '.join(missing)} missing); install them with: {INSTALL_HINT}")
    import modiscolite.io
    import modiscolite.tfmodisco

    return modiscolite


def named(table) -> str:
    """How a table argument is named in messages and parameters: its path, or ``(DataFrame)``."""
    return "(DataFrame)" if isinstance(table, pd.DataFrame) else str(table or "")


def choose_cells(predictor: Predictor, expression_table, wanted) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """(C, G) expression, the C cell-type names, and their column in the labels (None: new cell types)."""
    ds = predictor.dataset
    if expression_table is not None:
        expression, names = predictor.expression(expression_table)
        where = f"--expression {named(expression_table)}"
        columns = None
    else:
        expression, names, where = ds.expression, list(ds.cell_types), f"--data {ds.path}"
        columns = np.arange(len(names))
    keep = pick_cells(names, wanted, where)
    cells = [names[k] for k in keep]
    file_stems(cells, "--cells")  # two cell types whose TF-MoDISco files would share a name fail here, up front
    return np.asarray(expression, dtype=np.float32)[keep], cells, None if columns is None else columns[keep]


def load_database(path: Path | None, ds: Dataset) -> tuple[dict[str, np.ndarray], dict[str, list[str]] | None]:
    """The motif database and, for the demo's planted motifs, each motif's driver genes."""
    if path is not None:
        database = read_motif_file(path)
        if len(database) < FEW_TARGETS:
            print(f"chromtune: warning: --motifs {path}: {len(database)} motifs; Tomtom's null comes from the "
                  f"database's columns, so with fewer than {FEW_TARGETS} its p-values depend on which motifs "
                  "it holds", file=sys.stderr)
        return database, None
    return planted_motifs(ds)


# -- outputs -----------------------------------------------------------------------------------
def write_contributions(path: Path, cells: list[str], bins: list[np.ndarray], hypothetical: list[np.ndarray],
                        one_hot: list[np.ndarray], attrs: dict) -> None:
    """contributions.h5 (layout in :mod:`chromtune.cli.interpret`)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write_header(f, attrs, "chromtune-contributions", 1)
        f["cell_types"] = np.asarray(cells, dtype=h5py.string_dtype())
        for k, (cell, b, hyp, oh) in enumerate(zip(cells, bins, hypothetical, one_hot)):
            group = f.create_group(f"cells/{k}")
            group.attrs["name"] = cell
            group["bins"] = b
            options = dict(compression="gzip", compression_opts=4) if len(b) else {}
            group.create_dataset("hypothetical", data=hyp.transpose(0, 2, 1), **options)
            group.create_dataset("contributions", data=(hyp * oh).sum(2, dtype=np.float32), **options)


def write_table(path: Path, table: pd.DataFrame, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=index, float_format="%.6g")


def log_to_mlflow(run_id: str, tracking_uri: str | None, out: Path, files: list[Path], params: dict,
                  metrics: dict) -> str:
    """A new MLflow run ``interpret`` nested under `run_id`, holding `files` as artifacts; its id."""
    from mlflow.entities import Metric, Param

    from chromtune import tracking

    client = tracking.client(tracking_uri)
    parent = client.get_run(run_id)
    tags = {tracking.PARENT_TAG: run_id, "chromtune.level": "interpret",
            "mlflow.note.content": f"chromtune interpret of run {run_id}"}
    if "chromtune.sweep" in parent.data.tags:
        tags["chromtune.sweep"] = parent.data.tags["chromtune.sweep"]
    run = client.create_run(parent.info.experiment_id, run_name="interpret", tags=tags)
    child = run.info.run_id
    client.log_batch(child, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                     metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items() if np.isfinite(v)])
    for path in files:
        folder = os.path.dirname(os.path.relpath(path, out))
        client.log_artifact(child, str(path), artifact_path=folder or None)
    client.set_terminated(child)
    return child


@dataclass
class Setting:
    """What every step reads: the model, the data set, the cell types and the window."""

    model: torch.nn.Module
    meta: dict
    ds: Dataset
    expression: np.ndarray          # (C, G) transformed, the model's gene order
    cells: list[str]
    columns: np.ndarray | None      # the cell types' label columns; None for new cell types
    mean: np.ndarray | None         # (n_bins,) mean-accessibility feature, or None
    candidates: np.ndarray          # bins that may be interpreted (all, or those in --regions)
    window_start: int
    window: int
    device: torch.device
    batch_size: int
    steps: int                      # points on the path from the uniform background (1: plain gradient x input)
    progress: Progress              # the command's line: the cell types done, the step running


def discover(s: Setting, modisco, database: dict[str, np.ndarray], max_bins: int, rng: np.random.Generator,
             out: Path) -> tuple[list[dict], list[Path]]:
    """Steps 1-4: bins, contributions, TF-MoDISco per cell type, Tomtom; the pattern records and the files written."""
    fraction = mean_accessibility(s.ds.labels, np.arange(s.ds.n_cell_types))
    if s.columns is not None:
        accessible = s.ds.labels[np.ix_(s.candidates, s.columns)] == 1
    else:
        s.progress.update(phase="predicting the new cell types' accessible bins")
        specific = np.isin(s.candidates, s.candidates[fraction[s.candidates] < SPECIFIC_FRACTION])
        accessible = np.zeros((len(s.candidates), len(s.cells)), dtype=bool)
        accessible[specific] = predict_accessibility(s.model, s.ds, s.expression, s.candidates[specific], s.mean,
                                                     device=s.device) >= 0.5
    chosen = select_bins(accessible, fraction, s.candidates, max_bins, rng)
    stems = file_stems(s.cells, "--cells")
    written, hyps, one_hots, records, per_cell = [], [], [], [], []
    s.progress.begin(len(s.cells), "cell types")
    for j, (cell, bins) in s.progress.counting(enumerate(zip(s.cells, chosen))):
        s.progress.update(phase=f"{cell}: contributions of {len(bins)} bins")
        hyp = hypothetical_contributions(s.model, s.ds, bins, s.expression[j:j + 1], s.mean, s.batch_size, s.device,
                                         s.steps)
        hyp = np.ascontiguousarray(hyp[:, 0, :, s.window_start:s.window_start + s.window].transpose(0, 2, 1))
        oh = window_one_hot(s.ds, bins, s.window_start, s.window)
        hyps.append(hyp)
        one_hots.append(oh)
        if len(bins) < MIN_MODISCO_BINS:
            s.progress.write_line(f"chromtune: note: {cell}: {len(bins)} specific accessible bins, too few for "
                                  "TF-MoDISco; skipped")
            per_cell.append((cell, len(bins), 0, 0, f"skipped: fewer than {MIN_MODISCO_BINS} bins"))
            continue
        s.progress.update(phase=f"{cell}: TF-MoDISco")
        pos, neg = run_modisco(modisco, oh, hyp)
        per_cell.append((cell, len(bins), len(pos), len(neg), "" if pos or neg else NO_PATTERN))
        path = out / "modisco" / f"{stems[j]}.h5"
        with atomic_path(path) as tmp:
            modisco.io.save_hdf5(str(tmp), pos or None, neg or None, s.window)
        written.append(path)
        records += pattern_records(cell, bins, s.window_start, {"pos_patterns": pos, "neg_patterns": neg})
        s.progress.write_line(f"{cell}: {len(bins)} bins, " + (f"{len(pos)} positive and {len(neg)} negative patterns"
                                                               if pos or neg else NO_PATTERN), sys.stdout)
    write_contributions(out / "contributions.h5", s.cells, chosen, hyps, one_hots,
                        dict(model=s.meta["checkpoint"], data=str(s.ds.path), window_start=s.window_start,
                             window=s.window, context=s.ds.context,
                             expression_transform=s.meta["expression_transform"]))
    written.append(out / "contributions.h5")
    write_table(out / "cell_types.tsv", pd.DataFrame(per_cell, columns=[
        "cell_type", "n_bins", "n_positive_patterns", "n_negative_patterns", "note"]))
    written.append(out / "cell_types.tsv")
    s.progress.update(phase="matching the patterns (Tomtom)")
    match = match_motifs([r["query"] for r in records], database)
    for r, row in zip(records, match_rows(match, list(database), MATCH_Q)):
        r.update(row)
    columns = ["cell_type", "pattern", "n_seqlets", "consensus", *MATCH_COLUMNS]
    write_table(out / "motifs.tsv", pd.DataFrame([{k: r[k] for k in columns} for r in records], columns=columns))
    written.append(out / "motifs.tsv")
    bias = [r for r in records if r["best_is_bias"]]
    if bias:
        s.progress.write_line(f"{len(bias)} of {len(records)} patterns look most like a sequencing-bias motif "
                              f"({', '.join(sorted({r['best_match'] for r in bias}))}): motifs.tsv gives each one's "
                              "best TF match (best_tf_match); they are left out of motif activity", sys.stdout)
    return records, written


def relate(s: Setting, records: list[dict], own: dict[str, list[str]], max_instances: int, rng: np.random.Generator,
           out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Step 5: activity of each matched motif per cell type, its correlation with expression; the summary table."""
    loci = instance_loci(records, max_instances, rng)
    labels, genes, written = list(loci), list(s.meta["genes"]), []
    corr = None
    if labels:
        s.progress.update(phase="motif activity")
        activity = motif_activity(s.model, s.ds, loci, s.expression, s.mean, s.batch_size, s.device, s.steps)
        write_table(out / "motif_activity.tsv",
                    pd.DataFrame(activity, index=labels, columns=s.cells).rename_axis("motif"), index=True)
        written.append(out / "motif_activity.tsv")
        if len(s.cells) >= 3:
            corr = pearson_columns(activity.astype(np.float64), s.expression.astype(np.float64))
            table = pd.DataFrame(corr, index=labels, columns=genes).rename_axis("motif")
            write_table(out / "motif_tf_correlation.tsv", table, index=True)
            plot_correlation(table, {label: own.get(motif_base(label), []) for label in labels},
                             out / "motif_tf_correlation.png")
            written += [out / "motif_tf_correlation.tsv", out / "motif_tf_correlation.png"]
        else:
            s.progress.write_line("chromtune: note: fewer than 3 cell types; no correlation of motif activity with "
                                  "expression")
    rows = []
    for m, label in enumerate(labels):
        mine = [r for r in records if r["motif"] and motif_label(r["motif"], r["sign"]) == label]
        tfs = [g for g in own.get(motif_base(label), []) if g in genes]
        rows.append({"motif": label, "n_patterns": len(mine), "best_q_value": min(r["q_value"] for r in mine),
                     "cell_types": ",".join(dict.fromkeys(r["cell_type"] for r in mine)),
                     "n_instances": len(loci[label]), "tfs": ",".join(tfs),
                     "r_with_tfs": "" if corr is None else ",".join(f"{corr[m, genes.index(g)]:.3f}" for g in tfs)})
    summary = pd.DataFrame(rows, columns=["motif", "n_patterns", "best_q_value", "cell_types", "n_instances", "tfs",
                                          "r_with_tfs"])
    write_table(out / "motif_summary.tsv", summary)
    written.append(out / "motif_summary.tsv")
    return summary, written


def embed(s: Setting, seed: int, rng: np.random.Generator, out: Path) -> list[Path]:
    """Step 6: tsne.png, predicted accessibility beside expression (needs MIN_TSNE_CELLS cell types)."""
    if len(s.cells) < MIN_TSNE_CELLS:
        s.progress.write_line(f"chromtune: note: {len(s.cells)} cell types; t-SNE needs at least {MIN_TSNE_CELLS}")
        return []
    s.progress.update(phase="t-SNE")
    sample = np.sort(rng.choice(s.candidates, min(TSNE_BINS, len(s.candidates)), replace=False))
    predicted = predict_accessibility(s.model, s.ds, s.expression, sample, s.mean, device=s.device)
    lineage = s.ds.truth.get("cell_lineage")
    groups = ([v.decode() if isinstance(v, bytes) else str(v) for v in lineage[s.columns]]
              if lineage is not None and s.columns is not None else None)
    plot_tsne({"t-SNE of predicted accessibility": tsne_embedding(predicted.T, seed),
               "t-SNE of TF expression": tsne_embedding(s.expression, seed)}, s.cells, groups, out / "tsne.png")
    return [out / "tsne.png"]


def interpret_cells(model, out, *, data=None, expression=None, cells=None, motifs=None, regions=None,
                    max_bins: int = 500, max_instances: int = 200, window: int | None = None, steps: int = 8, seed: int = 0,
                    tracking_uri: str | None = None, batch_size: int = 64, device: str = "auto",
                    progress: Progress | None = None) -> Path:
    """``chromtune interpret``: every step and output of :mod:`chromtune.cli.interpret` into the folder `out`
    for the cell types `cells` (names, comma-separated or a list; default all) of the data set or of the
    expression table `expression`; `model` is one model (a checkpoint, run folder or fold run id).
    A progress line on stderr (``progress``, or one opened here) counts the cell types and names the
    step running. Returns `out`."""
    with line_for(progress, "interpret") as line:
        return _interpret(model, Path(out), data, expression, cells, motifs, regions, max_bins, max_instances, window,
                          steps, seed, tracking_uri, batch_size, device, line)


def _interpret(model, out: Path, data, expression, cells, motifs, regions, max_bins, max_instances, window, steps,
               seed, tracking_uri, batch_size, device, progress: Progress) -> Path:
    """:func:`interpret_cells` under its progress line."""
    shortest = MODISCO_OPTIONS["sliding_window_size"] + 2 * MODISCO_OPTIONS["flank_size"]
    if window is not None and window < shortest:
        raise UserError(f"--window {window}: must be >= {shortest} bp (TF-MoDISco's seqlet window and flanks)")
    modisco = require_extras()
    progress.update(phase="loading the model")
    predictor = Predictor.load(model, data, tracking_uri=tracking_uri, device=device, ensemble=False)
    ds, member = predictor.dataset, predictor.members[0]
    meta = member.meta
    values, names, columns = choose_cells(predictor, expression, cells)
    database, drivers = load_database(motifs, ds)
    candidates = bins_in_regions(ds, regions) if regions is not None else np.arange(ds.n_bins)
    window = min(window or ds.bin_size, ds.context)
    setting = Setting(member.model, meta, ds, values, names, columns, member.mean, candidates,
                      (ds.context - window) // 2, window, predictor.device, batch_size, steps, progress)
    torch.set_flush_denormal(True)
    rng = np.random.default_rng(seed)
    own = drivers if drivers is not None else motif_genes(list(database), list(meta["genes"]))

    records, written = discover(setting, modisco, database, max_bins, rng, out)
    summary, more = relate(setting, records, own, max_instances, rng, out)
    written += more + embed(setting, seed, rng, out)

    found = {r["motif"] for r in records if r["motif"]}
    progress.write_line(f"{len(records)} patterns in {len(names)} cell types; {len(found)} of {len(database)} database "
                        f"motifs matched (Tomtom q < {MATCH_Q}); outputs in {out}", sys.stdout)
    if meta.get("run_id"):
        params = {"model": meta["checkpoint"], "data": str(ds.path), "cells": ",".join(names),
                  "expression": named(expression), "motifs": str(motifs or "planted"),
                  "max_bins": max_bins, "max_instances": max_instances, "window": window,
                  "steps": steps, "seed": seed}
        metrics = {"n_patterns": len(records), "n_matched_patterns": sum(bool(r["motif"]) for r in records),
                   "n_bias_patterns": sum(r["best_is_bias"] for r in records),
                   "n_database_motifs": len(database), "n_motifs_matched": len(found),
                   "fraction_motifs_matched": len(found) / len(database)}
        progress.update(phase="logging to MLflow")
        child = log_to_mlflow(meta["run_id"], tracking_uri, out, written, params, metrics)
        progress.write_line(f"logged to MLflow run {child} (nested under {meta['run_id']})", sys.stdout)
    return out
