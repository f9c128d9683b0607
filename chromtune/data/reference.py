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
chr1..chr22, chrX, chrY (those present), each bin's chromosome and start. The start comes from
``example_metadata`` when every row of a file has a ``chrom:start-end`` window there (the bin is
the window's central ``bin_size`` bp); otherwise it is -1 (unknown). The N rule of ``prepare``
applies: a window whose central ``bin_size`` bp core is more than ``max_n_fraction`` N is dropped,
counted per chromosome in the provenance.
The joblib files are read with chromtune.io.chromdragonn.ArraysOnlyUnpickler: arrays and plain containers only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from chromtune import __version__
from chromtune.data.dataset import N_CODE, Dataset
from chromtune.data.prepare import kept_by_n_rule
from chromtune.errors import UserError
from chromtune.io.chromdragonn import load_joblib, names_of, packed_onehot_to_codes, read_expression, reference_files
from chromtune.io.fasta import canonical_name

BIN_SIZE = 200
STRIDE = 50
_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d+)-(?P<end>\d+)$")


def window_starts(metadata, chrom: str, n: int, context: int, bin_size: int, path: Path) -> np.ndarray | None:
    """Each row's bin start from ``chrom:start-end`` windows in ``example_metadata``, or None.

    None when the entry is absent or not a list of such strings of the file's length; a window on
    another chromosome or of another width than the stored windows is a :class:`UserError`.
    """
    if metadata is None:
        return None
    try:
        values = [v.decode() if isinstance(v, bytes) else v for v in np.asarray(metadata, dtype=object).ravel()]
    except (TypeError, ValueError):
        return None
    matches = [_REGION.match(v) if isinstance(v, str) else None for v in values]
    if len(matches) != n or not all(matches):
        return None
    starts = np.fromiter((int(m["start"]) for m in matches), dtype=np.int64, count=n)
    ends = np.fromiter((int(m["end"]) for m in matches), dtype=np.int64, count=n)
    other = [m["chrom"] for m in matches if canonical_name(m["chrom"]) != canonical_name(chrom)]
    if other:
        raise UserError(f"--dnase {path}: 'example_metadata' places a window on {other[0]}, not {chrom}")
    if ((ends - starts) != context).any():
        raise UserError(f"--dnase {path}: 'example_metadata' windows are not all {context} bp like the stored ones")
    return starts + (context - bin_size) // 2


def import_chromdragonn(dnase_dir: str | os.PathLike, rna_path: str | os.PathLike,
                        assembly: str = "unknown", max_n_fraction: float = 0.5) -> tuple[Dataset, dict]:
    """The reference data as a :class:`Dataset` (stored windows) and its provenance."""
    if not 0 <= max_n_fraction <= 1:
        raise UserError(f"--max-n-fraction {max_n_fraction}: must be between 0 and 1")
    expression, genes, tasks = read_expression(rna_path)
    n_cells = expression.shape[0]
    width = -(-n_cells // 8)
    chromosomes, windows, labels, starts, dropped, label_names = [], [], [], [], {}, None
    for chrom, path in reference_files(dnase_dir):
        content = load_joblib(path, "--dnase")
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
            label_names = label_names or names_of(names, n_cells, path, "label_metadata", "--dnase")
        codes = packed_onehot_to_codes(features)
        context = codes.shape[1]
        bin_size = min(BIN_SIZE, context)
        left = (context - bin_size) // 2
        kept = kept_by_n_rule((codes[:, left:left + bin_size] >= N_CODE).sum(axis=1), bin_size, max_n_fraction)
        found = window_starts(content.get("example_metadata"), chrom, len(codes), context, bin_size, path)
        dropped[chrom] = int((~kept).sum())
        if not kept.any():
            continue
        chromosomes.append(chrom)
        windows.append(codes[kept])
        labels.append(np.unpackbits(packed.astype(np.uint8), axis=1, count=n_cells)[kept])
        starts.append(found[kept] if found is not None else np.full(int(kept.sum()), -1, dtype=np.int64))
    if not windows:
        raise UserError(f"--dnase {dnase_dir}: every window's core is more than {max_n_fraction:g} N "
                        "(--max-n-fraction), so no window is kept")
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
        bin_start=np.concatenate(starts),
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
        "bins_dropped_for_n": dropped,
        "max_n_fraction": max_n_fraction,
        "coordinates": "example_metadata" if (np.concatenate(starts) >= 0).all() else "unknown",
    }
    return dataset, provenance
