"""The end of a sweep: the per-fold table, where each fold's selected model is, what to run next.

    summary_table(results)     fold x (model, both baselines) x (AUPRC, AUROC, cell-type-specific
                               AUPRC) and the mean row: the sweep's summary.csv / summary.md
    closing_text(...)          what the sweep prints at its end (fits 100 columns)
    storage_bytes(storage)     what the sweep keeps in its storage
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow.fs as pafs

from chromtune.train.evaluate import RESULT_NAMES

SHORT = {"model": "model", "mean_baseline": "mean", "weighted_mean_baseline": "RNA-wtd"}
COLUMNS = (("AUPRC", "test AUPRC"), ("AUROC", "test AUROC"), ("specific AUPRC", "cell-type-specific AUPRC"))
CELL = 8
WIDTH = 100


def summary_table(results: list[dict]) -> pd.DataFrame:
    """One row per fold and the mean; columns ``<name> AUPRC``, ``<name> AUROC`` and
    ``<name> specific AUPRC`` for the model and both baselines."""
    rows = []
    for result in results:
        row = {"fold": result["fold"]}
        for name in RESULT_NAMES:
            row[f"{name} AUPRC"] = round(result[name]["auprc"], 4)
            row[f"{name} AUROC"] = round(result[name]["auroc"], 4)
            row[f"{name} specific AUPRC"] = round(result[name].get("auprc_specific", float("nan")), 4)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("fold")
    table.loc["mean"] = table.mean().round(4)
    return table


def table_text(table: pd.DataFrame) -> str:
    """The table in about 80 columns: each metric a group of model, mean and RNA-weighted mean."""
    groups = [(column, title) for column, title in COLUMNS
              if any(f"{n} {column}" in table.columns for n in RESULT_NAMES)]
    lines = ["fold  " + "  ".join(f"{title:^{3 * CELL}}" for _, title in groups),
             "      " + "  ".join("".join(f"{SHORT[n]:>{CELL}}" for n in RESULT_NAMES) for _ in groups)]
    for fold, row in table.iterrows():
        cells = "  ".join("".join(_number(row.get(f"{n} {column}")) for n in RESULT_NAMES) for column, _ in groups)
        lines.append(f"{str(fold):<6}{cells}")
    return "\n".join(lines)


def _number(value) -> str:
    return f"{'–':>{CELL}}" if value is None or pd.isna(value) else f"{value:>{CELL}.4f}"


def wins_text(table: pd.DataFrame) -> str:
    """On how many folds the model beats both baselines in test AUPRC."""
    return f"the model beats both baselines in test AUPRC on {_wins(table)} of {len(table) - 1} fold(s)"


def seeds_text(label: str, tables: dict[int, pd.DataFrame]) -> str:
    """The cross-validation repeated over seeds (``tables``: each seed's summary table): each result's
    mean test AUPRC as mean +- sd over the seeds (the sd of the seeds' fold means, n - 1), and the
    folds on which the model beats both baselines at each seed."""
    means = pd.DataFrame({seed: table.loc["mean", [f"{n} AUPRC" for n in RESULT_NAMES]]
                          for seed, table in tables.items()}).astype(float)
    cells = [f"{SHORT[n]} {row.mean():.4f} +- {row.std(ddof=1) if len(row) > 1 else 0:.4f}"
             for n, (_, row) in zip(RESULT_NAMES, means.iterrows())]
    wins = [f"seed {seed}: {_wins(table)} of {len(table) - 1}" for seed, table in tables.items()]
    return "\n".join([f"{label} over {len(tables)} seeds ({', '.join(map(str, tables))}): mean test AUPRC "
                      + " | ".join(cells), "  folds where the model beats both baselines: " + ", ".join(wins)])


def _wins(table: pd.DataFrame) -> int:
    folds = table.drop(index="mean")
    return int(((folds["model AUPRC"] > folds["mean_baseline AUPRC"])
                & (folds["model AUPRC"] > folds["weighted_mean_baseline AUPRC"])).sum())


def human_bytes(size: float) -> str:
    """Decimal units: 123,456,789 bytes -> ``123.5 MB``."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def storage_bytes(storage) -> int:
    """Bytes under a sweep's storage (a folder or a bucket prefix)."""
    found = storage.fs.get_file_info(pafs.FileSelector(storage.root, recursive=True, allow_not_found=True))
    return sum(info.size or 0 for info in found if info.type == pafs.FileType.File)


def params_text(params: dict) -> str:
    """``batch_size=256 lr=0.001``: searched parameters as a line shows them."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@dataclass
class FoldModel:
    """Where a fold's selected model is: its MLflow fold run and its best.pt."""

    fold: int
    run_id: str
    best_pt: str
    params: dict


def closing_text(key: str, table: pd.DataFrame, models: list[FoldModel], sweep_run: str, storage_uri: str,
                 stored: int, tracking_uri: str, experiment: str, default_store: bool,
                 experiment_id: str | None = None) -> str:
    """The sweep's last lines: the table, the selected models, the next commands (with the address of
    the experiment's training-runs page under ``mlflow ui``), the storage.
    ``default_store``: the MLflow store is ./mlflow.db, which the commands find without flags."""
    from chromtune.tracking import runs_page, ui_command

    lines = [f"{key}: test metrics on the held-out cell types", table_text(table),
             "(mean, RNA-wtd: the mean-accessibility and RNA-weighted mean baselines, on the model's pairs)",
             wins_text(table), "", "selected models (MLflow fold run, its parameters, its best.pt):"]
    models = sorted(models, key=lambda m: m.fold)
    for model in models:
        lines.append(f"  fold {model.fold}  run {model.run_id}  {params_text(model.params)}".rstrip())
        lines.append(f"    {model.best_pt}")
    uri = "" if default_store else f" --tracking-uri {tracking_uri}"
    first = models[0].run_id if models else "RUN_ID"
    ui_note = f"then open {runs_page(experiment_id)}" if experiment_id else "the runs (in this folder)"
    commands = [(ui_command(None if default_store else tracking_uri), ui_note),
                (f"chromtune compare --experiment {experiment}{uri}", "tests over folds and cell types, figures"),
                (f"chromtune predict --model {first} --expression TPM.tsv --out preds.h5{uri}",
                 f"new cell types from RNA alone: fold {models[0].fold if models else 0}'s model"),
                (f"chromtune predict --model {sweep_run} --expression TPM.tsv --out preds.h5{uri}",
                 "the same with every fold's model (the sweep run: their mean)")]
    lines += ["", "next:"] + [_command(command, note) for command, note in commands]
    lines.append(f"storage: {human_bytes(stored)} in {storage_uri}")
    return "\n".join(lines)


def _command(command: str, note: str) -> str:
    """``  command  # note``; the note on a line of its own above where that would pass WIDTH columns."""
    line = f"  {command}"
    return f"{line}  # {note}" if len(line) + 4 + len(note) <= WIDTH else f"  # {note}\n{line}"
