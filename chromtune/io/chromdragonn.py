"""The reference implementation's (ChromDragoNN's) released files: per-chromosome joblib dicts.

Per chromosome, ``DIR/dnase.chr{1..22,X,Y}.packbit.joblib``: a joblib dict with

- ``features``  (n, L, 1) uint8: the (L, 4) one-hot (A, C, G, T) bit-packed along the last axis,
  i.e. ``np.packbits(onehot, axis=-1)`` with the default big bit order, so A is bit 7 (0x80),
  C 0x40, G 0x20, T 0x10; an all-zero column is N
- ``labels``    (n, ceil(T/8)) uint8: the bins x cell types 0/1 matrix bit-packed along axis 1
- other keys (``example_metadata``, ``label_metadata`` = cell-type names, ...)

and an expression file, a joblib dict with ``rna_quants`` (T, G) float, optionally ``genes`` (G,)
and ``tasks`` (T,). A joblib file is a pickle, which may name any callable to run on load; these
files are read through :class:`ArraysOnlyUnpickler`, which admits numpy arrays, numpy scalars and
plain containers (dict, list, tuple, str, numbers) and refuses anything else before it runs.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
from joblib import numpy_pickle
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

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


_PLAIN = {("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                                          "int", "float", "complex", "bool")}
_ARRAYS = {(module, name) for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray",
                                         "numpy.core.numeric", "numpy._core.numeric")
           for name in ("ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer")}
ALLOWED_GLOBALS = frozenset(_PLAIN | _ARRAYS | {("collections", "OrderedDict"), ("_codecs", "encode"),
                                                ("joblib.numpy_pickle", "NumpyArrayWrapper")})


class ArraysOnlyUnpickler(numpy_pickle.NumpyUnpickler):
    """joblib's unpickler, admitting only :data:`ALLOWED_GLOBALS` (arrays and plain containers).

    joblib routes the nested pickle of an object array through this ``find_class`` too."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it asks to load {module}.{name}; only arrays and plain containers "
                                         "are read")
        return super().find_class(module, name)


def load_joblib(path: Path, what: str) -> dict:
    """A joblib file's content, read with :class:`ArraysOnlyUnpickler`; anything else is one line."""
    require_file(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as raw, _validate_fileobject_and_memmap(raw, str(path)) as (handle, _):
                if isinstance(handle, str):  # joblib < 0.10's layout with companion files
                    raise pickle.UnpicklingError("written by joblib < 0.10, which this reader does not support")
                content = ArraysOnlyUnpickler(str(path), handle, ensure_native_byte_order=True).load()
    except pickle.UnpicklingError as err:
        raise UserError(f"{what} {path}: refused: {err}") from None
    except Exception as err:  # unpickling raises anything (EOFError, ValueError, ...)
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
