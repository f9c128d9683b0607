"""Import the reference implementation's (ChromDragoNN's) released data format.

Input, per chromosome, ``DIR/dnase.chr{1..22,X,Y}.packbit.joblib``: a joblib dict with

- ``features``  (n, L, 1) uint8: the (L, 4) one-hot (A, C, G, T) bit-packed along the last axis,
  i.e. ``np.packbits(onehot, axis=-1)`` with the default big bit order, so A is bit 7 (0x80),
  C 0x40, G 0x20, T 0x10; an all-zero column is N
- ``labels``    (n, ceil(T/8)) uint8: the bins x cell types 0/1 matrix bit-packed along axis 1
- other keys (``example_metadata``, ``label_metadata`` = cell-type names, ...) are not needed

and an expression file, a joblib dict with ``rna_quants`` (T, G) float, optionally ``genes`` (G,)
and ``tasks`` (T,). T comes from ``rna_quants``; the expression is kept as stored
(transform ``as-imported``).

Output: a :class:`Dataset` with stored ``windows`` (n, L) uint8 codes 0..4, rows in the order
chr1..chr22, chrX, chrY (those present), each bin's chromosome, ``bin_start`` -1 (unknown).
Loading a joblib file unpickles it: import only files from a source you trust.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import joblib
import numpy as np

from chromtune import __version__
from chromtune.data.dataset import Dataset
from chromtune.data.prepare import require_file
from chromtune.errors import UserError

REFERENCE_CHROMOSOMES = [str(i) for i in range(1, 23)] + ["X", "Y"]
BIN_SIZE = 200
STRIDE = 50


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


def _load(path: Path, what: str) -> dict:
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


def _names(values, n: int, path: Path, key: str, what: str) -> list[str] | None:
    if values is None:
        return None
    names = [str(v.decode() if isinstance(v, bytes) else v) for v in np.asarray(values).ravel()]
    if len(names) != n:
        raise UserError(f"{what} {path}: '{key}' has {len(names)} names, expected {n}")
    return names


def read_expression(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None, list[str] | None]:
    """(T, G) float32 expression and the gene and cell-type names when the file has them."""
    path = Path(path)
    content = _load(path, "--rna")
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
    return (values, _names(genes, values.shape[1], path, "genes", "--rna"),
            _names(tasks, values.shape[0], path, "tasks", "--rna"))


def import_chromdragonn(dnase_dir: str | os.PathLike, rna_path: str | os.PathLike,
                        assembly: str = "unknown") -> tuple[Dataset, dict]:
    """The reference data as a :class:`Dataset` (stored windows) and its provenance."""
    expression, genes, tasks = read_expression(rna_path)
    n_cells = expression.shape[0]
    width = -(-n_cells // 8)
    chromosomes, windows, labels, label_names = [], [], [], None
    for chrom, path in reference_files(dnase_dir):
        content = _load(path, "--dnase")
        for key in ("features", "labels"):
            if key not in content:
                raise UserError(f"--dnase {path}: no '{key}' entry (keys: {', '.join(map(str, content))})")
        features, packed = np.asarray(content["features"]), np.asarray(content["labels"])
        if features.dtype != np.uint8 or features.ndim != 3 or features.shape[2] != 1:
            raise UserError(f"--dnase {path}: 'features' is {features.dtype} {features.shape}, "
                            "expected uint8 (n, L, 1) bit-packed one-hot")
        if windows and features.shape[1] != windows[0].shape[1]:
            raise UserError(f"--dnase {path}: windows of {features.shape[1]} bp, the files before hold "
                            f"{windows[0].shape[1]} bp")
        if packed.ndim != 2 or packed.shape[0] != features.shape[0]:
            raise UserError(f"--dnase {path}: 'labels' has shape {packed.shape}, expected ({features.shape[0]}, {width})")
        if packed.shape[1] != width:
            raise UserError(f"--dnase {path}: 'labels' is {packed.shape[1]} bytes wide, expected ceil({n_cells}/8) "
                            f"= {width} for the {n_cells} cell types of --rna {rna_path}")
        names = content.get("label_metadata")
        if names is not None and len(np.asarray(names).ravel()) == n_cells:
            label_names = label_names or _names(names, n_cells, path, "label_metadata", "--dnase")
        chromosomes.append(chrom)
        windows.append(packed_onehot_to_codes(features))
        labels.append(np.unpackbits(packed.astype(np.uint8), axis=1, count=n_cells))
    if tasks is not None and label_names is not None and tasks != label_names:
        raise UserError(f"--rna {rna_path}: its 'tasks' differ from the cell types ('label_metadata') of the "
                        f"--dnase files; the two files do not describe the same cell types in the same order")
    cell_types = tasks or label_names or [f"cell_{i:03d}" for i in range(n_cells)]
    genes = genes or [f"gene_{i:04d}" for i in range(expression.shape[1])]
    counts = [len(w) for w in windows]
    context = windows[0].shape[1]
    dataset = Dataset(
        chromosomes=chromosomes,
        bin_chrom=np.repeat(np.arange(len(chromosomes), dtype=np.int32), counts),
        bin_start=np.full(sum(counts), -1, dtype=np.int64),
        labels=np.concatenate(labels),
        cell_types=cell_types,
        expression=expression,
        genes=genes,
        bin_size=min(BIN_SIZE, context),
        stride=STRIDE,
        context=context,
        windows=np.concatenate(windows),
        attrs={"assembly": assembly, "expression_transform": "as-imported"},
    )
    provenance = {
        "command": "import-chromdragonn",
        "chromtune_version": __version__,
        "dnase": str(Path(dnase_dir).resolve()),
        "dnase_files": [str(p.resolve()) for _, p in reference_files(dnase_dir)],
        "rna": str(Path(rna_path).resolve()),
        "transform": "as-imported",
        "assembly": assembly,
        "bins_per_chromosome": dict(zip(chromosomes, counts)),
    }
    return dataset, provenance
