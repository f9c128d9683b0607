"""Shared fixtures: small, real data sets built in memory or written to HDF5 in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from chromtune.data.dataset import Dataset, write_dataset
from chromtune.errors import run_cli


def run_command(main, argv, capsys) -> tuple[int, str, str]:
    """Run a command's ``main`` as the console does (errors -> one line, exit 2): (code, stdout, stderr)."""
    capsys.readouterr()
    code = run_cli(main, [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    """Exit status 2 and one ``chromtune: error:`` line holding every fragment."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chromtune: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def random_dataset(n_chroms: int = 3, chrom_len: int = 20_000, n_cells: int = 12, n_genes: int = 8,
                   bin_size: int = 200, stride: int = 100, context: int = 400, positive_rate: float = 0.08,
                   seed: int = 0) -> Dataset:
    """A genome-backed data set with random sequence, labels and expression."""
    rng = np.random.default_rng(seed)
    chromosomes = [f"chr{i + 1}" for i in range(n_chroms)]
    genome = {c: rng.integers(0, 4, chrom_len, dtype=np.uint8) for c in chromosomes}
    starts = np.arange(0, chrom_len - bin_size + 1, stride)
    bin_chrom = np.repeat(np.arange(n_chroms), len(starts))
    bin_start = np.tile(starts, n_chroms)
    labels = (rng.random((len(bin_chrom), n_cells)) < positive_rate).astype(np.uint8)
    return Dataset(
        chromosomes=chromosomes, bin_chrom=bin_chrom, bin_start=bin_start, labels=labels,
        cell_types=[f"cell{j}" for j in range(n_cells)],
        expression=rng.random((n_cells, n_genes)).astype(np.float32),
        genes=[f"TF{g}" for g in range(n_genes)], bin_size=bin_size, stride=stride, context=context,
        genome=genome,
    )


@pytest.fixture
def small_dataset() -> Dataset:
    return random_dataset()


@pytest.fixture
def small_dataset_file(tmp_path, small_dataset):
    path = tmp_path / "small.h5"
    write_dataset(path, small_dataset)
    return path
