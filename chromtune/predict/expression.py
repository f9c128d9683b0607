"""New cell types' expression in a model's gene order, and choosing cell types by name (``--cells``)."""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np
import pandas as pd

from chromtune.data.prepare import TRANSFORMS
from chromtune.errors import UserError, listing
from chromtune.io.expression import expression_values, read_expression_table

FILLS = ("median", "zero")
AS_IMPORTED = "as-imported"


def transform_function(name: str):
    """The function applying the expression transform `name` to TPM (``as-imported``: identity)."""
    if name == AS_IMPORTED:
        return TRANSFORMS["none"]
    if name not in TRANSFORMS:
        raise UserError(f"--model: its expression transform {name!r} is not one chromtune can apply "
                        f"({', '.join([*TRANSFORMS, AS_IMPORTED])})")
    return TRANSFORMS[name]


def align_expression(table: str | os.PathLike | pd.DataFrame, genes: list[str], transform: str,
                     fill: str | None = None, train_expression: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """(C, G) float32 transformed expression in the order of `genes`, and the C cell-type names.

    `table` is a TPM table file (tab- or comma-separated, row names in the first column) or a pandas
    DataFrame, genes x cell types or cell types x genes: its gene axis is the one whose names overlap
    `genes` more; the other axis lists the cell types. Missing genes are a :class:`UserError` unless
    `fill` is ``"zero"`` (0 TPM) or ``"median"`` (the per-gene median of `train_expression`, the
    training cell types' already transformed (n_train, G) expression). NaN or negative values are
    one-line errors naming the file, gene and cell type.
    """
    if fill not in (None, *FILLS):
        raise ValueError(f"fill must be None or one of {FILLS}, got {fill!r}")
    apply = transform_function(transform)
    if isinstance(table, pd.DataFrame):
        where, frame = "expression (DataFrame)", table
    else:
        where, frame = f"--expression {table}", read_expression_table(table)
    rows, columns = [str(r).strip() for r in frame.index], [str(c).strip() for c in frame.columns]
    wanted = set(genes)
    in_rows, in_columns = sum(r in wanted for r in rows), sum(c in wanted for c in columns)
    if in_rows == in_columns:
        if not in_rows:
            raise UserError(f"{where}: none of the model's {len(genes)} genes ({listing(genes)}) is a "
                            "row or column name of the table")
        raise UserError(f"{where}: as many of the model's genes name rows as columns ({in_rows}), "
                        "so the cell-type axis is unclear")
    cells = columns if in_rows > in_columns else rows
    if not cells:
        raise UserError(f"{where}: the table holds genes but no cell types")
    tpm, found, absent = expression_values(frame, cells, list(genes), where)
    if absent and fill is None:
        raise UserError(f"{where}: {len(absent)} of the model's {len(genes)} genes are missing "
                        f"({listing(absent)}); add them, or pass --fill-missing {' or '.join(FILLS)}")
    column = {g: k for k, g in enumerate(genes)}
    out = np.empty((len(cells), len(genes)), dtype=np.float32)
    out[:, [column[g] for g in found]] = apply(tpm)
    if absent:
        where_absent = [column[g] for g in absent]
        if fill == "median":
            if train_expression is None:
                raise ValueError("fill='median' needs train_expression")
            out[:, where_absent] = np.median(np.asarray(train_expression)[:, where_absent], axis=0)
        else:
            out[:, where_absent] = apply(np.zeros(len(where_absent)))
        print(f"chromtune: warning: {where}: {len(absent)} of the model's {len(genes)} genes are "
              f"missing and filled with the {'training median' if fill == 'median' else 'value of 0 TPM'} "
              f"({listing(absent)})", file=sys.stderr)
    return out, list(cells)


def pick_cells(names: Sequence[str], wanted: str | Sequence[str] | None, where: str) -> np.ndarray:
    """Indices into `names` of the cell types `wanted` (comma-separated text or a list; None or empty: all), in
    the order given; an unknown or repeated name is a one-line ``--cells`` error naming `where`."""
    if not wanted:
        return np.arange(len(names))
    chosen = [c.strip() for c in (wanted.split(",") if isinstance(wanted, str) else wanted) if c.strip()]
    index = {c: k for k, c in enumerate(names)}
    unknown = [c for c in chosen if c not in index]
    if unknown or not chosen:
        raise UserError(f"--cells: {listing(unknown) or 'no names'} not among the cell types of {where} "
                        f"({listing(names)})")
    if len(set(chosen)) != len(chosen):
        raise UserError("--cells: a cell type is named twice")
    return np.asarray([index[c] for c in chosen], dtype=np.int64)
