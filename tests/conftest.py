"""Shared fixtures: small, real data sets built in memory or written to HDF5 in tmp_path."""

from __future__ import annotations

import h5py
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


def write_version_1(path, ds: Dataset) -> None:
    """``ds`` in the format_version 1 layout: gzip-compressed genome per chromosome, dense chunked labels."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format="chromtune-dataset", format_version=1, bin_size=ds.bin_size, stride=ds.stride,
                       context=ds.context, provenance="{}")
        f["chromosomes"] = np.array(ds.chromosomes, dtype=h5py.string_dtype())
        for chrom in ds.chromosomes:
            f.create_dataset(f"genome/{chrom}", data=ds.genome[chrom], compression="gzip")
        f["bins/chrom"], f["bins/start"] = ds.bin_chrom.astype(np.int32), ds.bin_start
        f.create_dataset("labels", data=ds.labels, chunks=True, compression="gzip")
        f["cell_types"] = np.array(ds.cell_types, dtype=h5py.string_dtype())
        f["expression"], f["genes"] = ds.expression, np.array(ds.genes, dtype=h5py.string_dtype())


def private_local_ray(num_cpus: int, namespace: str):
    """A private loopback Ray for one test module (started, yielded, stopped)."""
    import ray

    ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, namespace=namespace)
    yield
    ray.shutdown()


def randomize_batchnorm(model, seed: int):
    """Give every BatchNorm1d non-trivial running statistics and scales (eval mode is then an affine
    map worth testing); returns the model in eval mode."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest, and least disturbed by other processes, on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_dataset() -> Dataset:
    return random_dataset()


@pytest.fixture
def small_dataset_file(tmp_path, small_dataset):
    path = tmp_path / "small.h5"
    write_dataset(path, small_dataset)
    return path
