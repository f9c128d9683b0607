"""The data path at genome scale: prepare, file size, opening, and memory per training process.

Writes, in a temporary folder, an hg38-shaped input scaled by ``--fraction``: the 24 chromosomes with
hg38's lengths times the fraction, N runs like an assembly's (telomere gaps, a centromere-sized gap
per chromosome, scattered short runs: ~5 % of the genome), ``--cell-types`` narrowPeak files whose
peaks (200-1000 bp, half from a pool shared between cell types) cover 1-3 % of the genome each, and
a TPM table of ``--genes`` genes. Then, per fraction:

- runs ``python -m chromtune.cli prepare`` in a child: wall time and peak RSS (``os.wait4``), the
  file's size;
- starts two training-like processes at once, each opening the data set, building the fold's bin
  split, the stage-2 sampler and the mean feature, and drawing ``--batches`` batches of windows:
  open time, and from ``/proc/self/smaps_rollup`` (after ``malloc_trim``) their anonymous memory
  (what the process holds privately), private and shared pages, while both are alive.
  ``--data FILE ...`` measures only this step, on existing data sets.

    python benchmarks/bench_scale.py [--fractions 0.0625 0.25] [--cell-types 123] [--genes 1630]
                                     [--batches 50] [--seed 0] [--data FILE ...]

Prints one JSON line per fraction.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HG38 = [248_956_422, 242_193_529, 198_295_559, 190_214_555, 181_538_259, 170_805_979, 159_345_973, 145_138_636,
        138_394_717, 133_797_422, 135_086_622, 133_275_309, 114_364_328, 107_043_718, 101_991_189, 90_338_345,
        83_257_441, 80_373_285, 58_617_616, 64_444_167, 46_709_983, 50_818_468, 156_040_895, 57_227_415]
NAMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY"]


def write_fasta(path: Path, lengths: list[int], rng: np.random.Generator) -> int:
    """The genome with ~5 % N; returns the N count."""
    n_total = 0
    with open(path, "wb") as handle:
        for name, length in zip(NAMES, lengths):
            codes = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, length)]
            codes[:10_000] = codes[-10_000:] = ord("N")  # telomere gaps
            centre = int(rng.integers(length // 3, 2 * length // 3))
            codes[centre:centre + length // 40] = ord("N")  # a centromere-sized gap (2.5 %)
            for start in rng.integers(0, length - 50_000, max(1, length // 1_000_000)):
                codes[start:start + int(rng.integers(100, 50_000))] = ord("N")  # scattered runs
            n_total += int((codes == ord("N")).sum())
            width = 60
            full = length // width * width
            lines = np.concatenate([codes[:full].reshape(-1, width), np.full((full // width, 1), ord("\n"), np.uint8)],
                                   axis=1)
            handle.write(f">{name}\n".encode())
            handle.write(lines.tobytes())
            if full < length:
                handle.write(codes[full:].tobytes() + b"\n")
    return n_total


def write_peaks(root: Path, lengths: list[int], n_cells: int, rng: np.random.Generator) -> None:
    genome = sum(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    pool = rng.integers(0, genome - 1_000, int(0.02 * genome / 600))  # shared sites
    sheet = ["cell_type\tpeaks"]
    for j in range(n_cells):
        n = int(rng.uniform(0.01, 0.03) * genome / 600)
        centres = np.concatenate([rng.choice(pool, n // 2), rng.integers(0, genome - 1_000, n - n // 2)])
        chrom = np.searchsorted(offsets, centres, side="right") - 1
        sizes = rng.integers(200, 1001, n)
        starts = np.clip(centres - offsets[chrom] - sizes // 2, 0, None)
        ends = np.minimum(starts + sizes, np.asarray(lengths)[chrom])
        order = np.lexsort((starts, chrom))
        names = np.asarray(NAMES)[chrom[order]]
        text = "\n".join(f"{c}\t{s}\t{e}\tp{i}\t0\t.\t5\t3\t2\t{(e - s) // 2}"
                         for i, (c, s, e) in enumerate(zip(names, starts[order], ends[order])))
        (root / f"cell{j:03d}.narrowPeak").write_text(text + "\n")
        sheet.append(f"cell{j:03d}\tcell{j:03d}.narrowPeak")
    (root / "samples.tsv").write_text("\n".join(sheet) + "\n")


def write_expression(path: Path, n_cells: int, n_genes: int, rng: np.random.Generator) -> None:
    tpm = rng.gamma(0.5, 20.0, (n_genes, n_cells))
    rows = ["gene\t" + "\t".join(f"cell{j:03d}" for j in range(n_cells))]
    rows += [f"TF{k:04d}\t" + "\t".join(f"{v:.3f}" for v in tpm[k]) for k in range(n_genes)]
    path.write_text("\n".join(rows) + "\n")


def run_measured(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in GB, exit status) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024 ** 2, os.waitstatus_to_exitcode(status)


TRAINER = r"""
import ctypes, json, sys, time
import numpy as np
t0 = time.perf_counter()
from chromtune.data.dataset import open_dataset
from chromtune.data.folds import make_folds, split_bins
from chromtune.data.sampling import Stage2Sampler
from chromtune.train.baselines import MeanAccessibility
ds = open_dataset(sys.argv[1])
opened = time.perf_counter() - t0
fold = make_folds(ds.n_cell_types, 5, seed=0)[0]
split = split_bins(ds, seed=0)
sampler = Stage2Sampler(ds.labels, split.train, fold.train, 512, seed=0)
mean = MeanAccessibility(ds.labels, fold.train)
t1 = time.perf_counter()
for step in range(int(sys.argv[2])):
    bins, cells, y = sampler.batch(0, step)
    windows, feature = ds.window_codes(bins), mean[bins]
batches = time.perf_counter() - t1
time.sleep(3)  # both processes alive while memory is read
ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed buffers back to the system: count what the process holds
fields = {}
for line in open("/proc/self/smaps_rollup"):
    parts = line.split()
    if parts[0].endswith(":") and len(parts) == 3:
        fields[parts[0][:-1]] = int(parts[1]) / 1024
print(json.dumps({"open_s": opened, "batches_s": batches, "rss_mb": fields["Rss"], "pss_mb": fields["Pss"],
                  "anonymous_mb": fields["Anonymous"],
                  "private_mb": fields["Private_Clean"] + fields["Private_Dirty"],
                  "shared_mb": fields["Shared_Clean"] + fields["Shared_Dirty"]}))
"""


def trainers(path: Path, batches: int) -> list[dict]:
    """Two training-like processes at once on the data set at ``path`` (see the module doc)."""
    children = [subprocess.Popen([sys.executable, "-c", TRAINER, str(path), str(batches)], stdout=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    return [json.loads(c.communicate()[0]) for c in children]


def measure(fraction: float, args: argparse.Namespace, root: Path) -> dict:
    rng = np.random.default_rng(args.seed)
    lengths = [max(20_000, int(n * fraction)) for n in HG38]
    folder = root / f"in-{fraction}"
    folder.mkdir()
    start = time.perf_counter()
    n_count = write_fasta(folder / "genome.fa", lengths, rng)
    write_peaks(folder, lengths, args.cell_types, rng)
    write_expression(folder / "tpm.tsv", args.cell_types, args.genes, rng)
    written = time.perf_counter() - start
    out = root / f"data-{fraction}.h5"
    wall, peak, code = run_measured([sys.executable, "-m", "chromtune.cli", "prepare", "--genome",
                                     str(folder / "genome.fa"), "--samples", str(folder / "samples.tsv"),
                                     "--expression", str(folder / "tpm.tsv"), "--assembly", "synthetic-hg38",
                                     "--out", str(out)])
    if code != 0:
        raise SystemExit(f"prepare failed with exit status {code}")
    for path in folder.iterdir():
        path.unlink()
    import h5py

    with h5py.File(out) as f:
        n_bins, dropped = len(f["bins/start"]), json.loads(f.attrs["provenance"])["bins_dropped_for_n"]
    return {"fraction": fraction, "genome_bp": sum(lengths), "n_fraction": round(n_count / sum(lengths), 4),
            "cell_types": args.cell_types, "genes": args.genes, "n_bins": n_bins,
            "bins_dropped_for_n": sum(dropped.values()), "inputs_written_s": round(written, 1),
            "prepare_s": round(wall, 1), "prepare_peak_rss_gb": round(peak, 3),
            "file_gb": round(out.stat().st_size / 1024 ** 3, 3), "trainers": trainers(out, args.batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0625, 0.25])
    parser.add_argument("--cell-types", type=int, default=123)
    parser.add_argument("--genes", type=int, default=1630)
    parser.add_argument("--batches", type=int, default=50, help="stage-2 batches of 512 drawn per training process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, nargs="+", help="measure only the training processes on these files")
    args = parser.parse_args()
    for path in args.data or []:
        print(json.dumps({"data": str(path), "trainers": trainers(path, args.batches)}), flush=True)
    if args.data:
        return
    for fraction in args.fractions:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            print(json.dumps(measure(fraction, args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
