"""Expression tables (TPM, genes x cell types or cell types x genes) and gene lists."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pandas as pd

from chromtune.errors import UserError
from chromtune.io.files import read_text, require_file


def read_gene_list(path: str | os.PathLike) -> list[str]:
    """Genes of a one-per-line file (blank lines and ``#`` comments skipped), first occurrence kept."""
    path = require_file(path, "--tfs")
    genes = [line.split()[0] for line in read_text(path, "--tfs").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not genes:
        raise UserError(f"--tfs {path}: the gene list is empty")
    return list(dict.fromkeys(genes))


def read_expression_table(path: str | os.PathLike) -> pd.DataFrame:
    """The table as text, row names from its first column (tab- or comma-separated); names stripped and unique."""
    path = require_file(path, "--expression")
    text = read_text(path, "--expression")
    first = text.split("\n", 1)[0]
    sep = "\t" if "\t" in first else ","
    header = [h.strip() for h in next(csv.reader([first], delimiter=sep), [])][1:]
    _no_duplicates(header, f"--expression {path}", "column")
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, index_col=0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise UserError(f"--expression {path}: cannot parse the table ({str(err).strip()})") from None
    table.index = [str(i).strip() for i in table.index]
    table.columns = header if len(header) == table.shape[1] else [str(c).strip() for c in table.columns]
    _no_duplicates(list(table.index), f"--expression {path}", "row")
    return table


def read_expression(path: str | os.PathLike, cell_types: list[str],
                    genes: list[str] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(T, G) float64 TPM for ``cell_types`` (in that order), the gene names, and listed genes absent.

    The table is tab- or comma-separated with row names in its first column; genes x cell types
    or cell types x genes, recognised by where the cell types' names appear.
    """
    return expression_values(read_expression_table(path), cell_types, genes, f"--expression {path}")


def expression_values(table: pd.DataFrame, cell_types: list[str], genes: list[str] | None = None,
                      where: str = "expression") -> tuple[np.ndarray, list[str], list[str]]:
    """:func:`read_expression` on a table already read (a pandas DataFrame, genes x cell types or cell
    types x genes); `where` names it in error messages."""
    table = table.copy()
    table.index = [str(i).strip() for i in table.index]
    table.columns = [str(c).strip() for c in table.columns]
    for kind, names in (("row", table.index), ("column", table.columns)):
        _no_duplicates(list(names), where, kind)
    in_columns = [c for c in cell_types if c in set(table.columns)]
    in_rows = [c for c in cell_types if c in set(table.index)]
    if len(in_columns) == len(cell_types):
        table = table.T
    elif len(in_rows) != len(cell_types):
        axis, found = ("columns", in_columns) if len(in_columns) >= len(in_rows) else ("rows", in_rows)
        if not found:
            raise UserError(f"{where}: none of the sample sheet's cell types "
                            f"({', '.join(cell_types[:3])}{', ...' if len(cell_types) > 3 else ''}) "
                            "is a row or column name of the table")
        absent = [c for c in cell_types if c not in found]
        raise UserError(f"{where}: no expression for cell type(s) {', '.join(map(repr, absent))} "
                        f"of the sample sheet (cell types are the table's {axis})")
    absent_genes: list[str] = []
    if genes is not None:
        present = set(table.columns)
        absent_genes = [g for g in genes if g not in present]
        keep = [g for g in genes if g in present]
        if not keep:
            raise UserError(f"--tfs: none of its {len(genes)} genes is in the expression table ({where})")
        table = table[keep]
    table = table.loc[cell_types]
    flat = pd.to_numeric(pd.Series(table.to_numpy().ravel()), errors="coerce")
    values = flat.to_numpy(dtype=np.float64).reshape(table.shape)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        raw = table.iat[i, j]
        problem = "is negative" if np.isfinite(values[i, j]) else "is not a finite number"
        raise UserError(f"{where}: gene {table.columns[j]!r}, cell type {table.index[i]!r}: "
                        f"value {raw!r} {problem}; expected TPM >= 0")
    if values.shape[1] == 0:
        raise UserError(f"{where}: the table holds no genes")
    return values, list(table.columns), absent_genes


def _no_duplicates(names: list[str], where: str, kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{where}: {kind} name {name!r} appears twice")
        seen.add(name)
