"""Writing variant effects (TSV, gzipped TSV or HDF5, streamed block by block, atomically) and saying
what was skipped."""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
from pathlib import Path

import numpy as np

from chromtune.atomic import atomic_path
from chromtune.data.dataset import Dataset
from chromtune.errors import SHOWN
from chromtune.io.tracks import write_header
from chromtune.predict.scoring import Member
from chromtune.variants.effects import MEASURES, Placed

FORMAT = "chromtune-variant-effects"
FORMAT_VERSION = 1


def write_effects(out: Path, blocks, placed: Placed, cells: list[str], attrs: dict) -> int:
    """Stream the blocks of :func:`score_blocks` into `out` (HDF5 for .h5/.hdf5, else TSV, gzipped for .gz),
    atomically; the number of (variant, cell type) rows written."""
    v = placed.variants
    rows = 0
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        if out.name.lower().endswith((".h5", ".hdf5")):
            import h5py

            f = stack.enter_context(h5py.File(tmp, "w"))
            write_header(f, attrs, FORMAT, FORMAT_VERSION)
            text = h5py.string_dtype()
            f["cell_types"] = np.asarray(cells, dtype=text)
            for name, values in (("chrom", v.chrom), ("id", v.ident), ("ref", v.ref), ("alt", v.alt)):
                f[f"variants/{name}"] = np.asarray(values, dtype=text)
            f["variants/pos"], f["variants/line"] = v.pos, v.line
            n_bins = f.create_dataset("variants/n_bins", shape=(len(v),), dtype=np.int64)
            shape = (len(v), len(cells))
            options = dict(chunks=(max(1, min(len(v), (1 << 18) // len(cells))), len(cells)), compression="gzip",
                           compression_opts=1) if len(v) else {}
            matrices = {m: f.create_dataset(m, shape=shape, dtype=np.float32, **options) for m in MEASURES}
            for lo, measures, counts in blocks:
                for m in MEASURES:
                    matrices[m][lo:lo + len(counts)] = measures[m]
                n_bins[lo:lo + len(counts)] = counts
                rows += len(counts) * len(cells)
            return rows
        opener = gzip.open if out.name.lower().endswith(".gz") else open
        handle = stack.enter_context(opener(tmp, "wt", encoding="utf-8", newline=""))
        handle.write("\t".join(["chrom", "pos", "id", "ref", "alt", "cell_type", *MEASURES, "n_bins"]) + "\n")
        for lo, measures, counts in blocks:
            values = np.stack([measures[m] for m in MEASURES], axis=2).tolist()  # (k, C, measures)
            for i, n_bins in enumerate(counts.tolist()):
                r = lo + i
                head = f"{v.chrom[r]}\t{v.pos[r]}\t{v.ident[r]}\t{v.ref[r]}\t{v.alt[r]}\t"
                handle.writelines(f"{head}{cell}\t" + "\t".join(f"{x:.6g}" for x in row) + f"\t{n_bins}\n"
                                  for cell, row in zip(cells, values[i]))
            rows += len(counts) * len(cells)
    return rows


def attributes(members: list[Member], ds: Dataset, source: dict, placed: Placed, total: int, note: str) -> dict:
    """The HDF5 output's attributes: what was scored with what."""
    return {"models": json.dumps([m.meta["checkpoint"] for m in members]),
            "run_ids": json.dumps([m.meta.get("run_id", "") for m in members]),
            "model_config": json.dumps(members[0].model.config), "data": str(ds.path), **source,
            "records": total, "scored": len(placed.position), "skipped": json.dumps(dict(placed.skipped)),
            "ensemble": note, "context": ds.context, "assembly": str(ds.attrs.get("assembly", "unknown"))}


def report(placed: Placed, where: str) -> None:
    """One warning line per kind of problem (on stderr): unknown chromosomes, REF mismatches, skipped kinds."""
    if placed.unknown_chroms:
        counts = ", ".join(f"{c} ({n})" for c, n in placed.unknown_chroms.most_common(SHOWN))
        more = ", ..." if len(placed.unknown_chroms) > SHOWN else ""
        print(f"chromtune: warning: {where}: {sum(placed.unknown_chroms.values())} SNV(s) on "
              f"{len(placed.unknown_chroms)} chromosome(s) the data set lacks are skipped: {counts}{more}",
              file=sys.stderr)
    if placed.mismatches:
        print(f"chromtune: warning: {where}: {placed.skipped['REF mismatch']} SNV(s) whose REF does not match the "
              f"genome are skipped (--strict makes this an error); first: {placed.mismatches[0]}", file=sys.stderr)
    kinds = {"indel": "indel", "mnv": "multi-base substitution", "other": "symbolic or N allele"}
    skipped = [f"{placed.skipped[k]} {label}" for k, label in kinds.items() if placed.skipped.get(k)]
    if skipped:
        print(f"chromtune: note: {where}: skipped: {', '.join(skipped)} (SNVs only are scored)", file=sys.stderr)
