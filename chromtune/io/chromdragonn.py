"""The reference implementation's (ChromDragoNN's) released files: per-chromosome joblib dicts.

Per chromosome, ``DIR/dnase.chr{1..22,X,Y}.packbit.joblib``: a joblib dict with

- ``features``  (n, L, 1) uint8: the (L, 4) one-hot (A, C, G, T) bit-packed along the last axis,
  i.e. ``np.packbits(onehot, axis=-1)`` with the default big bit order, so A is bit 7 (0x80),
  C 0x40, G 0x20, T 0x10; an all-zero column is N
- ``labels``    (n, ceil(T/8)) uint8: the bins x cell types 0/1 matrix bit-packed along axis 1
- other keys (``example_metadata``, ``label_metadata`` = cell-type names, ...)

and an expression file, a joblib dict with ``rna_quants`` (T, G) float, optionally ``genes`` (G,)
and ``tasks`` (T,). Loading a joblib file unpickles it: read only files from a source you trust.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import joblib
import numpy as np

from chromtune.errors import UserError
from chromtune.io.files import require_file

REFERENCE_CHROMOSOMES = [str(i) for i in range(1, 23)] + ["X", "Y"]


def _unpack_table() -> np.ndarray:
    """Code of each packed byte: the base whose bit (A 0x80 .. T 0x10) is the only high bit set, else N."""
    table = np.full(256, 4, dtype=np.uint8)
    for code, bit in enumerate((0x80, 0x40, 0x20, 0x10)):
        table[bit] = code
    return table


_PACKED_TO_CODE = _unpack_table()


def packed_onehot_to_codes(features: np.ndarray) -> np.ndarray:
    """(n, L, 1) bit-packed one-hot -> (n, L) uint8 codes (all-zero or ambiguous columns -> N)."""
    return _PACKED_TO_CODE[features[..., 0]]


def reference_files(dnase_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """(chromosome name, file) of the per-chromosome files present, in natural chromosome order."""
    folder = Path(dnase_dir)
    if not folder.is_dir():
        raise UserError(f"--dnase {folder}: no such folder")
    found = [(f"chr{c}", folder / f"dnase.chr{c}.packbit.joblib") for c in REFERENCE_CHROMOSOMES]
    found = [(c, p) for c, p in found if p.is_file()]
    if not found:
        raise UserError(f"--dnase {folder}: no dnase.chr{{1..22,X,Y}}.packbit.joblib files in the folder")
    return found


def load_joblib(path: Path, what: str) -> dict:
    require_file(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = joblib.load(path)
    except Exception as err:  # unpickling raises anything (EOFError, UnpicklingError, ValueError, ...)
        raise UserError(f"{what} {path}: not a readable joblib file ({err.__class__.__name__}: {err})") from None
    if not isinstance(content, dict):
        raise UserError(f"{what} {path}: expected a joblib dict, found {type(content).__name__}")
    return content


def names_of(values, n: int, path: Path, key: str, what: str) -> list[str] | None:
    if values is None:
        return None
    names = [str(v.decode() if isinstance(v, bytes) else v) for v in np.asarray(values).ravel()]
    if len(names) != n:
        raise UserError(f"{what} {path}: '{key}' has {len(names)} names, expected {n}")
    return names


def read_expression(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None, list[str] | None]:
    """(T, G) float32 expression and the gene and cell-type names when the file has them."""
    path = Path(path)
    content = load_joblib(path, "--rna")
    if "rna_quants" not in content:
        raise UserError(f"--rna {path}: no 'rna_quants' entry (keys: {', '.join(map(str, content))})")
    quants = content["rna_quants"]
    genes, tasks = content.get("genes"), content.get("tasks")
    if hasattr(quants, "columns") and hasattr(quants, "index"):  # a pandas DataFrame: cells x genes
        genes = list(quants.columns) if genes is None else genes
        tasks = list(quants.index) if tasks is None else tasks
    try:
        values = np.asarray(quants, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(f"--rna {path}: 'rna_quants' is not a numeric matrix") from None
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise UserError(f"--rna {path}: 'rna_quants' has shape {values.shape}, expected (cell types, genes)")
    if not np.isfinite(values).all():
        raise UserError(f"--rna {path}: 'rna_quants' holds NaN or infinite values")
    return (values, names_of(genes, values.shape[1], path, "genes", "--rna"),
            names_of(tasks, values.shape[0], path, "tasks", "--rna"))
