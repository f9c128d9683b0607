"""A data set file's summary: sizes, names, positives per cell type, layout, provenance, digests.

What ``chromtune inspect`` prints; the logic lives here so the command module only parses flags.
Every whole-file pass runs in bounded blocks: positives are counted from the packed label bits
chunk by chunk, never from a dense bins x cell types matrix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from chromtune.data.checksums import ALGORITHM, verify_digests
from chromtune.data.dataset import Dataset, DatasetError
from chromtune.data.labels import CHUNK_ROWS


def check_digests(path: str | os.PathLike, progress=None) -> dict:
    """Verify the digests stored in the file (:mod:`chromtune.data.checksums`), counting the
    megabytes read on ``progress`` (a :class:`chromtune.progress.Progress`).

    Returns ``{"status": "verified", "algorithm": ..., "datasets": [...]}``, or ``{"status": "none"}``
    for a file written without digests (older chromtune); a mismatch or an unreadable file is a
    one-line :class:`~chromtune.errors.UserError` naming the file (and the dataset).
    """
    if not Path(path).is_file():
        raise DatasetError(f"{path}: no such data set file")
    try:
        names = verify_digests(path, progress)
    except (OSError, KeyError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable or truncated data set file ({err.__class__.__name__}: {err})") from None
    return {"status": "verified", "algorithm": ALGORITHM, "datasets": names} if names else {"status": "none"}


def _bins_per_chromosome(ds: Dataset) -> np.ndarray:
    counts = np.zeros(len(ds.chromosomes), dtype=np.int64)
    for start in range(0, ds.n_bins, CHUNK_ROWS):
        counts += np.bincount(np.asarray(ds.bin_chrom[start:start + CHUNK_ROWS]), minlength=len(ds.chromosomes))
    return counts


def summarise(ds: Dataset, digests: dict | None = None) -> dict:
    """A JSON-ready summary: sizes, names, positives per cell type, layout and provenance, and the
    result of :func:`check_digests` (``{"status": "not checked"}`` without one)."""
    positives = ds.labels.column_counts()
    bins_per_chrom = _bins_per_chromosome(ds)
    try:
        provenance = json.loads(ds.attrs.get("provenance", "{}"))
    except (TypeError, ValueError):
        provenance = {}
    return {
        "path": ds.path,
        "source": "genome" if ds.genome is not None else "windows",
        "n_bins": ds.n_bins,
        "n_cell_types": ds.n_cell_types,
        "n_genes": ds.n_genes,
        "bin_size": ds.bin_size,
        "stride": ds.stride,
        "context": ds.context,
        "assembly": str(ds.attrs.get("assembly", "unknown")),
        "expression_transform": str(ds.attrs.get("expression_transform", "unknown")),
        "chromtune_version": str(ds.attrs.get("chromtune_version", "unknown")),
        "chromosomes": list(ds.chromosomes),
        "bins_per_chromosome": {c: int(n) for c, n in zip(ds.chromosomes, bins_per_chrom)},
        "genome_bp": int(sum(len(s) for s in ds.genome.values())) if ds.genome is not None else None,
        "cell_types": list(ds.cell_types),
        "genes": list(ds.genes),
        "positives": {c: int(n) for c, n in zip(ds.cell_types, positives)},
        "positive_fraction": float(positives.sum() / max(1, ds.labels.size)),
        "bins_positive_anywhere": ds.labels.rows_positive_anywhere(),
        "expression_range": [float(ds.expression.min()), float(ds.expression.max())] if ds.expression.size else None,
        "bins_dropped_for_n": provenance.get("bins_dropped_for_n"),
        "provenance": provenance,
        "checksums": digests or {"status": "not checked"},
    }


def _listing(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def render(summary: dict) -> str:
    """The human-readable form of :func:`summarise`."""
    s = summary
    per_cell = sorted(s["positives"].items(), key=lambda kv: kv[1])
    lines = [
        f"{s['path']}",
        f"  bins          {s['n_bins']:,} ({s['bin_size']} bp, stride {s['stride']}, context {s['context']} bp; "
        f"sequence from stored {s['source']})",
        f"  assembly      {s['assembly']}",
        f"  chromosomes   {_listing([f'{c} ({n:,})' for c, n in s['bins_per_chromosome'].items()])}",
        f"  cell types    {s['n_cell_types']}: {_listing(s['cell_types'])}",
        f"  genes         {s['n_genes']}: {_listing(s['genes'])} (expression {s['expression_transform']})",
        f"  positives     {s['positive_fraction']:.2%} of (bin, cell type) pairs; "
        f"{s['bins_positive_anywhere']:,} bins positive in >= 1 cell type",
    ]
    if per_cell:
        lines.append(f"                fewest {per_cell[0][0]} ({per_cell[0][1]:,}), most {per_cell[-1][0]} ({per_cell[-1][1]:,})")
    dropped = s["bins_dropped_for_n"]
    if dropped is not None:
        lines.append(f"  N rule        {sum(dropped.values()):,} bins dropped as mostly N: "
                     f"{_listing([f'{c} ({n:,})' for c, n in dropped.items() if n]) or 'none'}")
    lines.append(f"  written by    chromtune {s['chromtune_version']}")
    digests = s["checksums"]
    lines.append("  checksums     " + {
        "verified": f"{len(digests.get('datasets', []))} datasets match their {digests.get('algorithm')} digests",
        "none": "no checksums (written by a chromtune before they were stored); nothing verified",
    }.get(digests["status"], "not checked"))
    return "\n".join(lines)
