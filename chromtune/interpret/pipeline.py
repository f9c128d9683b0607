"""``chromtune interpret``: what a trained model reads in the sequence, and how TF expression drives it.

    chromtune interpret --model RUN_ID --out interp                       # the demo: planted motifs as database
    chromtune interpret --model runs/s2 --cells hepatocyte,CD14_monocyte --out interp
    chromtune interpret --model runs/s2/best.pt --data data.h5 --motifs JASPAR2024.meme --out interp
    chromtune interpret --model runs/s2 --expression new_tpm.tsv --out interp   # RNA-only cell types

Needs the optional packages of ``pip install 'chromtune[interpret]'`` (modisco-lite, memelite).

**Model, data, cell types.** ``--model`` and ``--data`` are read as by ``chromtune predict`` (a
stage-2 checkpoint, its run folder or a sweep's fold run id; the data set defaults to the model's
training data set and must have the model's gene list). The cell types interpreted are the data
set's (all of them, or ``--cells``), with their stored expression; or, with ``--expression``, the
new cell types of that TPM table (``--cells`` picks among them), transformed as the model's.

**Steps** (C cell types, G genes, W = ``--window`` bp at the bin's centre, default the bin size)

1. *Bins per cell type*: the bins accessible in the cell type and in fewer than 30 % of the data
   set's cell types (cell-type-specific accessibility, where TF-driven motifs are; ubiquitous
   sites such as CTCF's fall out by design), at most ``--max-bins`` of them, drawn with
   ``--seed``. Accessible means labelled 1 for the data set's own cell types, and a predicted
   probability >= 0.5 for new ones (they have no labels). ``--regions BED`` restricts the bins.
2. *Contributions*: gradient x input of the logit with respect to the one-hot window, the cell
   type's expression (and the bin's mean-accessibility feature) held fixed; gradients centred
   over the four bases and averaged over ``--steps`` points on the path from the uniform
   background to the input (integrated gradients; ``--steps 1`` is the gradient at the input,
   which a trained model's saturation leaves weak and noisy: :mod:`chromtune.interpret.attribution`).
3. *TF-MoDISco* (modisco-lite) per cell type on the central W bp of those bins, with seqlet
   windows of 15 bp and flanks of 5 (modisco-lite's 21 and 10 suit 1 kb profiles; TF motifs are
   6-20 bp), metaclusters from 30 seqlets (default 100, more than a few hundred bins give) and
   10 Leiden runs (default 50).
4. *Matching*: each pattern's PPM, trimmed to the positions holding >= 20 % of its peak |CWM|
   (modisco-lite's report uses 30 %, which cut the demo's CEBPB and FOXA2 patterns to 3-4
   bases that match nothing), against the motif database with memelite's Tomtom; q-values
   Benjamini-Hochberg over all pattern x motif comparisons; a pattern *matches* when its best
   q < 0.05. Database: ``--motifs`` (MEME or JASPAR file), by default the demo data set's
   planted motifs.
5. *Motif activity* (paper Fig. 3A): the instances of a database motif are the seqlets of every
   pattern matched to it (from any cell type), cut to the pattern's trimmed core; at most
   ``--max-instances`` per motif. Positive and negative patterns give separate rows (the latter
   labelled "(negative)"). Activity of motif m in cell type c = the mean over m's
   instances of the summed contribution over the instance, computed with c's expression: how
   much the model credits those very bases for accessibility in c. The same loci in every cell
   type, so activity changes only through expression, as a TF's motif should.
   ``motif_tf_correlation.tsv``: Pearson r across the C cell types between each motif's activity
   and each gene's expression (needs C >= 3).
6. *t-SNE* (paper Fig. 3B, scikit-learn): the cell types embedded by their predicted
   accessibility over up to ``TSNE_BINS`` bins, beside the embedding of their expression (C >= 5).

**Outputs** in ``--out`` (each written atomically)::

    contributions.h5            attrs: model, data, window (W), window_start (its offset in the context), context
                                cell_types (C,) str; cells/<k>/bins (n,) int64 data set bins,
                                cells/<k>/hypothetical (n, 4, W) float32, cells/<k>/contributions (n, W)
    modisco/<cell type>.h5      modisco-lite results (``modisco report`` reads them)
    motifs.tsv                  per pattern: cell type, pattern, seqlets, consensus, best match, p, q
    motif_summary.tsv           per matched database motif: patterns, cell types, instances, its TFs
                                among the genes, and r of its activity with each of them
    motif_activity.tsv          matched motif x cell type
    motif_tf_correlation.tsv    matched motif x gene, Pearson r; motif_tf_correlation.png its heatmap
    tsne.png                    predicted accessibility | expression, side by side

With ``--model RUN_ID`` every output is also logged as an artifact of a new MLflow run named
``interpret`` nested under that run (tag ``chromtune.level=interpret``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd
import torch

from chromtune import __version__
from chromtune.atomic import atomic_path
from chromtune.data.dataset import Dataset
from chromtune.errors import UserError, run_cli
from chromtune.interpret.activity import (instance_loci, motif_activity, motif_base, motif_label, pearson_columns,
                                          plot_correlation)
from chromtune.interpret.attribution import hypothetical_contributions
from chromtune.interpret.discovery import (MIN_MODISCO_BINS, MODISCO_OPTIONS, SPECIFIC_FRACTION, pattern_records,
                                           run_modisco, select_bins, window_one_hot)
from chromtune.interpret.embedding import plot_tsne, tsne_embedding
from chromtune.interpret.motif_match import FEW_TARGETS, match_motifs, motif_genes, planted_motifs, read_motif_file
from chromtune.predict import (INSTALL_HINT, _check_data, _file_stems, _open_data, _train_cells,
                               align_expression, bins_in_regions, load_predictor, predict_accessibility)
from chromtune.train.baselines import mean_accessibility

MATCH_Q = 0.05            # Tomtom q-value at which a pattern matches a database motif
TSNE_BINS = 5000          # bins whose predicted accessibility embeds the cell types
MIN_TSNE_CELLS = 5
DEFAULT_STEPS = 8         # path points of the contribution scores (see chromtune.interpret.attribution)


# -- set-up ------------------------------------------------------------------------------------
def require_extras():
    """modisco-lite's tfmodisco and io modules; a missing extra is a one-line UserError with the install command."""
    try:
        import memelite  # noqa: F401
        import modiscolite.io
        import modiscolite.tfmodisco
    except ImportError as err:
        raise UserError(f"chromtune interpret needs the optional packages modisco-lite and memelite "
                        f"({err.name or 'one'} is missing); install them with: {INSTALL_HINT}") from None
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
    _file_stems(cells, "--cells")  # two cell types whose TF-MoDISco files would share a name fail here, up front
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
    """contributions.h5 (layout in the module docstring)."""
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
    from mlflow.tracking import MlflowClient

    from chromtune.tracking import DEFAULT_TRACKING_URI, PARENT_TAG

    client = MlflowClient(tracking_uri or DEFAULT_TRACKING_URI)
    parent = client.get_run(run_id)
    tags = {PARENT_TAG: run_id, "chromtune.level": "interpret",
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


# -- the command -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chromtune interpret", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="stage-2 checkpoint file, run folder holding best.pt, or MLflow run id of a sweep's fold run")
    p.add_argument("--data", type=Path, help="data set (default: the model's training data set)")
    p.add_argument("--expression", type=Path,
                   help="TPM table of new cell types to interpret instead of the data set's own")
    p.add_argument("--cells", help="comma-separated cell types to interpret (default: all)")
    p.add_argument("--motifs", type=Path,
                   help="motif database, MEME or JASPAR format (default: the demo data set's planted motifs)")
    p.add_argument("--regions", type=Path, help="BED file: interpret only bins overlapping its regions")
    p.add_argument("--max-bins", type=int, default=500, help="bins per cell type for TF-MoDISco (default 500)")
    p.add_argument("--max-instances", type=int, default=200,
                   help="instances per matched motif for its activity (default 200)")
    p.add_argument("--window", type=int, help="bp at the bin's centre given to TF-MoDISco (default: the bin size)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"gradients averaged on the path from the uniform background to the input (default "
                        f"{DEFAULT_STEPS}; 1: plain gradient x input at the input)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for a run id (default sqlite:///mlflow.db)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per gradient batch (default 64)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--seed", type=int, default=0, help="seed of the bin and instance draws and of t-SNE")
    return p


def _check_args(args: argparse.Namespace) -> torch.device:
    for flag, value in (("--max-bins", args.max_bins), ("--max-instances", args.max_instances),
                        ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            raise UserError(f"{flag} {value}: must be >= 1")
    shortest = MODISCO_OPTIONS["sliding_window_size"] + 2 * MODISCO_OPTIONS["flank_size"]
    if args.window is not None and args.window < shortest:
        raise UserError(f"--window {args.window}: must be >= {shortest} bp (TF-MoDISco's seqlet window and flanks)")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be >= 0")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: exists and is not a folder")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                        else "cpu")


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
    fraction = s.ds.labels.mean(1)
    if s.columns is not None:
        accessible = s.ds.labels[np.ix_(s.candidates, s.columns)] == 1
    else:
        specific = np.isin(s.candidates, s.candidates[fraction[s.candidates] < SPECIFIC_FRACTION])
        accessible = np.zeros((len(s.candidates), len(s.cells)), dtype=bool)
        accessible[specific] = predict_accessibility(s.model, s.ds, s.expression, s.candidates[specific], s.mean,
                                                     device=s.device) >= 0.5
    chosen = select_bins(accessible, fraction, s.candidates, max_bins, rng)
    stems = _file_stems(s.cells, "--cells")
    written, hyps, one_hots, records = [], [], [], []
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
            continue
        pos, neg = run_modisco(modisco, oh, hyp)
        path = out / "modisco" / f"{stems[j]}.h5"
        with atomic_path(path) as tmp:
            modisco.io.save_hdf5(str(tmp), pos or None, neg or None, s.window)
        written.append(path)
        records += pattern_records(cell, bins, s.window_start, {"pos_patterns": pos, "neg_patterns": neg})
        print(f"{cell}: {len(bins)} bins, {len(pos)} positive and {len(neg)} negative patterns", flush=True)
    write_contributions(out / "contributions.h5", s.cells, chosen, hyps, one_hots,
                        dict(model=s.meta["checkpoint"], data=str(s.ds.path), window_start=s.window_start,
                             window=s.window, context=s.ds.context,
                             expression_transform=s.meta["expression_transform"]))
    written.append(out / "contributions.h5")
    names = list(database)
    match = match_motifs([r["query"] for r in records], database)
    for r, best, p, q in zip(records, match.best, match.p_value, match.q_value):
        r.update(best_match=names[best], p_value=float(p), q_value=float(q), matched=bool(q < MATCH_Q))
    columns = ["cell_type", "pattern", "n_seqlets", "consensus", "best_match", "p_value", "q_value", "matched"]
    write_table(out / "motifs.tsv", pd.DataFrame([{k: r[k] for k in columns} for r in records], columns=columns))
    written.append(out / "motifs.tsv")
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
        mine = [r for r in records if r["matched"] and motif_label(r["best_match"], r["sign"]) == label]
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = _check_args(args)
    modisco = require_extras()
    model, meta = load_predictor(args.model, args.tracking_uri)
    ds = _open_data(args.data, meta)
    _check_data(ds, model, meta)
    expression, cells, columns = choose_cells(args, ds, meta)
    database, drivers = load_database(args.motifs, ds)
    candidates = bins_in_regions(ds, args.regions) if args.regions else np.arange(ds.n_bins)
    mean = (mean_accessibility(ds.labels, _train_cells(ds, meta, "the model's mean-accessibility feature"))
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

    found = {r["best_match"] for r in records if r["matched"]}
    print(f"{len(records)} patterns in {len(cells)} cell types; {len(found)} of {len(database)} database motifs "
          f"matched (Tomtom q < {MATCH_Q}); outputs in {args.out}")
    if meta.get("run_id"):
        params = {"model": meta["checkpoint"], "data": str(ds.path), "cells": ",".join(cells),
                  "expression": str(args.expression or ""), "motifs": str(args.motifs or "planted"),
                  "max_bins": args.max_bins, "max_instances": args.max_instances, "window": window,
                  "steps": args.steps, "seed": args.seed}
        metrics = {"n_patterns": len(records), "n_matched_patterns": sum(r["matched"] for r in records),
                   "n_database_motifs": len(database), "n_motifs_matched": len(found),
                   "fraction_motifs_matched": len(found) / len(database)}
        child = log_to_mlflow(meta["run_id"], args.tracking_uri, args.out, written, params, metrics)
        print(f"logged to MLflow run {child} (nested under {meta['run_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
