"""A process that opens a data set maps it: its private (anonymous) memory does not grow with the
data set, and opening the same file twice does not double it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from chromtune.data.dataset import Dataset, write_dataset

CHILD = r"""
import ctypes, json, sys
import numpy as np
from chromtune.data.dataset import open_dataset

def anonymous_kb():
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed buffers back to the system: count what is held
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1])

def touch(ds):  # read every byte the training path can reach
    total = int(ds.labels.column_counts().sum())
    for start in range(0, ds.n_bins, 4096):
        total += int(ds.window_codes(np.arange(start, min(ds.n_bins, start + 4096)))[:, ::97].sum())
    return total

before = anonymous_kb()
first = open_dataset(sys.argv[1]); touch(first)
after_first = anonymous_kb()
second = open_dataset(sys.argv[1]); touch(second)
after_second = anonymous_kb()
copy = np.array(first.sequence)  # what a private copy of the genome would cost
after_copy = anonymous_kb()
print(json.dumps({"first": after_first - before, "second": after_second - after_first,
                  "copy": after_copy - after_second}))
"""


def test_opening_twice_does_not_double_private_memory(tmp_path):
    rng = np.random.default_rng(0)
    length, n_cells = 24_000_000, 123
    starts = np.arange(0, length - 200, 200, dtype=np.int64)
    ds = Dataset(chromosomes=["chr1"], bin_chrom=np.zeros(len(starts), np.int32), bin_start=starts,
                 labels=(rng.random((len(starts), n_cells)) < 0.03).astype(np.uint8),
                 cell_types=[f"c{j}" for j in range(n_cells)], expression=np.ones((n_cells, 3), np.float32),
                 genes=["a", "b", "c"], bin_size=200, stride=200, context=1000,
                 genome={"chr1": rng.integers(0, 5, length, dtype=np.uint8)})
    write_dataset(tmp_path / "d.h5", ds)
    data_kb = (length + len(starts) * (16 + 12)) // 1024
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "d.h5")], capture_output=True, text=True,
                         check=True)
    grown = json.loads(out.stdout)
    assert grown["copy"] > 0.9 * length / 1024  # the measure sees a private copy when there is one
    assert grown["first"] < 0.25 * data_kb, grown
    assert grown["second"] < 0.1 * data_kb, grown
