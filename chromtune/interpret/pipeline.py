"""The ``chromtune interpret`` pipeline: bins, contributions, TF-MoDISco, Tomtom, motif activity, t-SNE.

The steps and outputs are described for users in :mod:`chromtune.cli.interpret`; this module runs them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from chromtune import __version__
from chromtune.atomic import atomic_path
from chromtune.data.dataset import Dataset
from chromtune.errors import UserError
from chromtune.interpret.activity import (instance_loci, motif_activity, motif_base, motif_label, pearson_columns,
                                          plot_correlation)
from chromtune.interpret.attribution import hypothetical_contributions
from chromtune.interpret.discovery import (MIN_MODISCO_BINS, MODISCO_OPTIONS, SPECIFIC_FRACTION, pattern_records,
                                           run_modisco, select_bins, window_one_hot)
from chromtune.interpret.embedding import plot_tsne, tsne_embedding
from chromtune.interpret.motif_match import FEW_TARGETS, MATCH_COLUMNS, match_motifs, match_rows, planted_motifs
from chromtune.interpret.motif_names import motif_genes
from chromtune.io.motifs import read_motif_file
from chromtune.predict import (INSTALL_HINT, check_data, file_stems, open_data, train_cells,
                               align_expression, bins_in_regions, load_predictor, predict_accessibility, resolve_device)
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


def choose_cells(args, ds: Dataset, meta: dict) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """(C, G) expression, the C cell-type names, and their column in the labels (None: new cell types)."""
    if args.expression is not None:
        expression, names = align_expression(args.expression, list(meta["genes"]), meta["expression_transform"])
        where = f"--expression {args.expression}"
        columns = None
    else:
        expression, names, where = ds.expression, list(ds.cell_types), f"--data {ds.path}"
        columns = np.arange(len(names))
    keep = np.arange(len(names))
    if args.cells:
        wanted = [c.strip() for c in args.cells.split(",") if c.strip()]
        index = {c: k for k, c in enumerate(names)}
        unknown = [c for c in wanted if c not in index]
        if unknown or not wanted:
            raise UserError(f"--cells: {', '.join(unknown) or 'no names'} not among the cell types of {where} "
                            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
        if len(set(wanted)) != len(wanted):
            raise UserError("--cells: a cell type is named twice")
        keep = np.asarray([index[c] for c in wanted])
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
        for key, value in {**attrs, "chromtune_version": __version__}.items():
            f.attrs[key] = value
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


def discover(s: Setting, modisco, database: dict[str, np.ndarray], max_bins: int, rng: np.random.Generator,
             out: Path) -> tuple[list[dict], list[Path]]:
    """Steps 1-4: bins, contributions, TF-MoDISco per cell type, Tomtom; the pattern records and the files written."""
    fraction = mean_accessibility(s.ds.labels, np.arange(s.ds.n_cell_types))
    if s.columns is not None:
        accessible = s.ds.labels[np.ix_(s.candidates, s.columns)] == 1
    else:
        specific = np.isin(s.candidates, s.candidates[fraction[s.candidates] < SPECIFIC_FRACTION])
        accessible = np.zeros((len(s.candidates), len(s.cells)), dtype=bool)
        accessible[specific] = predict_accessibility(s.model, s.ds, s.expression, s.candidates[specific], s.mean,
                                                     device=s.device) >= 0.5
    chosen = select_bins(accessible, fraction, s.candidates, max_bins, rng)
    stems = file_stems(s.cells, "--cells")
    written, hyps, one_hots, records, per_cell = [], [], [], [], []
    for j, (cell, bins) in enumerate(zip(s.cells, chosen)):
        hyp = hypothetical_contributions(s.model, s.ds, bins, s.expression[j:j + 1], s.mean, s.batch_size, s.device,
                                         s.steps)
        hyp = np.ascontiguousarray(hyp[:, 0, :, s.window_start:s.window_start + s.window].transpose(0, 2, 1))
        oh = window_one_hot(s.ds, bins, s.window_start, s.window)
        hyps.append(hyp)
        one_hots.append(oh)
        if len(bins) < MIN_MODISCO_BINS:
            print(f"chromtune: note: {cell}: {len(bins)} specific accessible bins, too few for TF-MoDISco; skipped",
                  file=sys.stderr)
            per_cell.append((cell, len(bins), 0, 0, f"skipped: fewer than {MIN_MODISCO_BINS} bins"))
            continue
        pos, neg = run_modisco(modisco, oh, hyp)
        per_cell.append((cell, len(bins), len(pos), len(neg), "" if pos or neg else NO_PATTERN))
        path = out / "modisco" / f"{stems[j]}.h5"
        with atomic_path(path) as tmp:
            modisco.io.save_hdf5(str(tmp), pos or None, neg or None, s.window)
        written.append(path)
        records += pattern_records(cell, bins, s.window_start, {"pos_patterns": pos, "neg_patterns": neg})
        print(f"{cell}: {len(bins)} bins, " + (f"{len(pos)} positive and {len(neg)} negative patterns" if pos or neg
                                                else NO_PATTERN), flush=True)
    write_contributions(out / "contributions.h5", s.cells, chosen, hyps, one_hots,
                        dict(model=s.meta["checkpoint"], data=str(s.ds.path), window_start=s.window_start,
                             window=s.window, context=s.ds.context,
                             expression_transform=s.meta["expression_transform"]))
    written.append(out / "contributions.h5")
    write_table(out / "cell_types.tsv", pd.DataFrame(per_cell, columns=[
        "cell_type", "n_bins", "n_positive_patterns", "n_negative_patterns", "note"]))
    written.append(out / "cell_types.tsv")
    match = match_motifs([r["query"] for r in records], database)
    for r, row in zip(records, match_rows(match, list(database), MATCH_Q)):
        r.update(row)
    columns = ["cell_type", "pattern", "n_seqlets", "consensus", *MATCH_COLUMNS]
    write_table(out / "motifs.tsv", pd.DataFrame([{k: r[k] for k in columns} for r in records], columns=columns))
    written.append(out / "motifs.tsv")
    bias = [r for r in records if r["best_is_bias"]]
    if bias:
        print(f"{len(bias)} of {len(records)} patterns look most like a sequencing-bias motif "
              f"({', '.join(sorted({r['best_match'] for r in bias}))}): motifs.tsv gives each one's best TF match "
              "(best_tf_match); they are left out of motif activity", flush=True)
    return records, written


def relate(s: Setting, records: list[dict], own: dict[str, list[str]], max_instances: int, rng: np.random.Generator,
           out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Step 5: activity of each matched motif per cell type, its correlation with expression; the summary table."""
    loci = instance_loci(records, max_instances, rng)
    labels, genes, written = list(loci), list(s.meta["genes"]), []
    corr = None
    if labels:
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
            print("chromtune: note: fewer than 3 cell types; no correlation of motif activity with expression",
                  file=sys.stderr)
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
        print(f"chromtune: note: {len(s.cells)} cell types; t-SNE needs at least {MIN_TSNE_CELLS}", file=sys.stderr)
        return []
    sample = np.sort(rng.choice(s.candidates, min(TSNE_BINS, len(s.candidates)), replace=False))
    predicted = predict_accessibility(s.model, s.ds, s.expression, sample, s.mean, device=s.device)
    lineage = s.ds.truth.get("cell_lineage")
    groups = ([v.decode() if isinstance(v, bytes) else str(v) for v in lineage[s.columns]]
              if lineage is not None and s.columns is not None else None)
    plot_tsne({"t-SNE of predicted accessibility": tsne_embedding(predicted.T, seed),
               "t-SNE of TF expression": tsne_embedding(s.expression, seed)}, s.cells, groups, out / "tsne.png")
    return [out / "tsne.png"]


def run(args: argparse.Namespace) -> int:
    """The whole command on parsed, range-checked arguments (:mod:`chromtune.cli.interpret`)."""
    device = resolve_device(args.device)
    shortest = MODISCO_OPTIONS["sliding_window_size"] + 2 * MODISCO_OPTIONS["flank_size"]
    if args.window is not None and args.window < shortest:
        raise UserError(f"--window {args.window}: must be >= {shortest} bp (TF-MoDISco's seqlet window and flanks)")
    modisco = require_extras()
    model, meta = load_predictor(args.model, args.tracking_uri)
    ds = open_data(args.data, meta)
    check_data(ds, model, meta)
    expression, cells, columns = choose_cells(args, ds, meta)
    database, drivers = load_database(args.motifs, ds)
    candidates = bins_in_regions(ds, args.regions) if args.regions else np.arange(ds.n_bins)
    mean = (mean_accessibility(ds.labels, train_cells(ds, meta, "the model's mean-accessibility feature"))
            if model.config["with_mean"] else None)
    window = min(args.window or ds.bin_size, ds.context)
    setting = Setting(model, meta, ds, expression, cells, columns, mean, candidates, (ds.context - window) // 2,
                      window, device, args.batch_size, args.steps)
    torch.set_flush_denormal(True)
    rng = np.random.default_rng(args.seed)
    own = drivers if drivers is not None else motif_genes(list(database), list(meta["genes"]))

    records, written = discover(setting, modisco, database, args.max_bins, rng, args.out)
    summary, more = relate(setting, records, own, args.max_instances, rng, args.out)
    written += more + embed(setting, args.seed, rng, args.out)

    found = {r["motif"] for r in records if r["motif"]}
    print(f"{len(records)} patterns in {len(cells)} cell types; {len(found)} of {len(database)} database motifs "
          f"matched (Tomtom q < {MATCH_Q}); outputs in {args.out}")
    if meta.get("run_id"):
        params = {"model": meta["checkpoint"], "data": str(ds.path), "cells": ",".join(cells),
                  "expression": str(args.expression or ""), "motifs": str(args.motifs or "planted"),
                  "max_bins": args.max_bins, "max_instances": args.max_instances, "window": window,
                  "steps": args.steps, "seed": args.seed}
        metrics = {"n_patterns": len(records), "n_matched_patterns": sum(bool(r["motif"]) for r in records),
                   "n_bias_patterns": sum(r["best_is_bias"] for r in records),
                   "n_database_motifs": len(database), "n_motifs_matched": len(found),
                   "fraction_motifs_matched": len(found) / len(database)}
        child = log_to_mlflow(meta["run_id"], args.tracking_uri, args.out, written, params, metrics)
        print(f"logged to MLflow run {child} (nested under {meta['run_id']})")
    return 0

