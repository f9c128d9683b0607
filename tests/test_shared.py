"""Sharing one copy of a data set per node: current files are mapped from the file by every process;
a format_version 1 file (compressed) comes from the node's holder actor, read-only."""

import numpy as np
import pytest
import ray

from chromtune.data.dataset import open_dataset
from chromtune.data.shared import NAMESPACE, holder_name, release_shared
from chromtune.train.task import load_dataset
from conftest import private_local_ray, write_version_1


@pytest.fixture(scope="module")
def local_ray():
    yield from private_local_ray(2, "test-shared")


@ray.remote(max_calls=1)  # a fresh worker process per call
def _read(path: str, bins: list[int]):
    import os

    import ray

    ds = load_dataset(path)
    return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
            "windows": ds.window_codes(np.asarray(bins)), "labels": np.asarray(ds.labels),
            "expression": ds.expression, "genome": {c: ds.genome[c][:50].copy() for c in ds.chromosomes},
            "mapped": isinstance(ds.labels.packed, np.memmap),
            "writeable": [ds.labels.packed.flags.writeable, ds.expression.flags.writeable,
                          ds.sequence.flags.writeable]}


def test_version_1_file_shared_copy_equals_the_file_and_is_read_only(local_ray, tmp_path, small_dataset):
    path = str(tmp_path / "v1.h5")
    write_version_1(path, small_dataset)
    direct = open_dataset(path)
    bins = [0, 5, direct.n_bins - 1]
    first, second = ray.get([_read.remote(path, bins), _read.remote(path, bins)])
    assert first["pid"] != second["pid"]
    for got in (first, second):
        np.testing.assert_array_equal(got["windows"], direct.window_codes(np.asarray(bins)))
        np.testing.assert_array_equal(got["labels"], small_dataset.labels)
        np.testing.assert_array_equal(got["expression"], direct.expression)
        for chrom in direct.chromosomes:
            np.testing.assert_array_equal(got["genome"][chrom], direct.genome[chrom][:50])
        assert got["writeable"] == [False, False, False]  # views of the object store, not private copies

    holders = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    assert holders == [holder_name(path, first["node"])]
    assert release_shared(path) == 1
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]


def test_current_files_are_mapped_in_workers_without_a_holder(local_ray, small_dataset_file):
    path = str(small_dataset_file)
    got = ray.get(_read.remote(path, [0, 3]))
    assert got["mapped"] and got["writeable"] == [False, True, False]
    np.testing.assert_array_equal(got["windows"], open_dataset(path).window_codes(np.asarray([0, 3])))
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]


def test_outside_ray_workers_the_file_is_mapped_too(local_ray, small_dataset_file):
    ds = load_dataset(str(small_dataset_file))  # the driver: no holder actor
    assert isinstance(ds.labels.packed, np.memmap)
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
