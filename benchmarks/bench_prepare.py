"""Time and peak memory of ``chromtune prepare`` on a synthetic chromosome with many cell types.

Writes, in a temporary folder, a random FASTA (one chromosome, 60-column lines, ~2 % N runs, some
soft-masked stretches), one narrowPeak file per cell type (half of them gzipped; peaks of 200-1000 bp,
half drawn from a pool of sites shared between cell types as real DNase peaks are), a sample sheet
and a genes x cell types TPM table; then runs ``python -m chromtune.cli prepare`` in a child process
and reports its wall time and peak resident memory (``os.wait4`` rusage of that child alone).

    python benchmarks/bench_prepare.py [--length 50000000] [--cell-types 20] [--peaks 30000]
                                       [--genes 1630] [--positives-only] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def write_fasta(path: Path, length: int, rng: np.random.Generator) -> None:
    codes = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, length)]
    for start in rng.integers(0, length - 5_000, max(1, length // 250_000)):
        codes[start:start + int(rng.integers(100, 5_000))] = ord("N")
    for start in rng.integers(0, length - 2_000, max(1, length // 20_000)):
        codes[start:start + 1_000] |= 0x20  # lower case: soft-masked repeat
    width = 60
    full = length // width * width
    lines = np.concatenate([codes[:full].reshape(-1, width), np.full((full // width, 1), ord("\n"), np.uint8)], axis=1)
    with open(path, "wb") as handle:
        handle.write(b">chr1 synthetic\n")
        handle.write(lines.tobytes())
        if full < length:
            handle.write(codes[full:].tobytes() + b"\n")


def write_peaks(path: Path, length: int, n: int, shared: np.ndarray, rng: np.random.Generator) -> None:
    sizes = rng.integers(200, 1001, n)
    centres = np.concatenate([rng.choice(shared, n // 2, replace=False), rng.integers(600, length - 600, n - n // 2)])
    starts = np.clip(centres - sizes // 2, 0, length - sizes)
    ends = starts + sizes
    order = np.argsort(starts)
    text = "".join(f"chr1\t{s}\t{e}\tpeak{i}\t{int(q)}\t.\t{q:.2f}\t{q / 2:.2f}\t{q / 3:.2f}\t{(e - s) // 2}\n"
                   for i, (s, e, q) in enumerate(zip(starts[order], ends[order], rng.gamma(2.0, 20.0, n))))
    data = text.encode()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)


def write_inputs(root: Path, length: int, n_cells: int, n_peaks: int, n_genes: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    write_fasta(root / "genome.fa", length, rng)
    shared = rng.integers(600, length - 600, 2 * n_peaks)
    sheet = ["cell_type\tpeaks"]
    for j in range(n_cells):
        name = f"cell{j:02d}.narrowPeak" + (".gz" if j % 2 else "")
        write_peaks(root / name, length, n_peaks, shared, rng)
        sheet.append(f"cell{j:02d}\t{name}")
    (root / "samples.tsv").write_text("\n".join(sheet) + "\n")
    tpm = rng.gamma(0.5, 30.0, (n_genes, n_cells))
    rows = ["gene\t" + "\t".join(f"cell{j:02d}" for j in range(n_cells))]
    rows += [f"TF{g}\t" + "\t".join(f"{v:.3f}" for v in tpm[g]) for g in range(n_genes)]
    (root / "tpm.tsv").write_text("\n".join(rows) + "\n")
    return ["--genome", str(root / "genome.fa"), "--samples", str(root / "samples.tsv"),
            "--expression", str(root / "tpm.tsv")]


def run_child(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit status) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    return wall, usage.ru_maxrss / 1024, child.returncode  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=50_000_000)
    parser.add_argument("--cell-types", type=int, default=20)
    parser.add_argument("--peaks", type=int, default=30_000, help="peaks per cell type")
    parser.add_argument("--genes", type=int, default=1630)
    parser.add_argument("--positives-only", action="store_true", help="also time --positives-only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        inputs = write_inputs(root, args.length, args.cell_types, args.peaks, args.genes, args.seed)
        print(f"inputs written in {time.perf_counter() - start:.1f} s "
              f"({args.length / 1e6:.0f} Mb, {args.cell_types} cell types x {args.peaks} peaks, {args.genes} genes)")
        variants = [("all bins", [])]
        if args.positives_only:
            variants.append(("--positives-only --negatives-ratio 1", ["--positives-only", "--negatives-ratio", "1"]))
        print("| run | wall time (s) | peak RSS (MiB) | bins | output (MiB) |")
        print("|---|---|---|---|---|")
        for label, extra in variants:
            out = root / "data.h5"
            wall, rss, code = run_child([sys.executable, "-m", "chromtune.cli", "prepare", *inputs, "--out", str(out), *extra])
            if code != 0:
                sys.exit(f"prepare failed with exit status {code}")
            with h5py.File(out, "r") as f:
                n_bins = f["labels"].shape[0]
            print(f"| {label} | {wall:.1f} | {rss:.0f} | {n_bins:,} | {out.stat().st_size / 2**20:.0f} |")


if __name__ == "__main__":
    main()
