"""The node-wide shared copy of a data set: same contents, read-only, one holder per node."""

import numpy as np
import pytest
import ray

from chromtune.data.dataset import open_dataset
from chromtune.data.shared import NAMESPACE, holder_name, release_shared
from chromtune.train.task import load_dataset


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             namespace="test-shared")
    yield
    ray.shutdown()


@ray.remote(max_calls=1)  # a fresh worker process per call
def _read(path: str, bins: list[int]):
    import os

    import ray

    ds = load_dataset(path)
    return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
            "windows": ds.window_codes(np.asarray(bins)), "labels": ds.labels, "expression": ds.expression,
            "genome": {c: ds.genome[c][:50].copy() for c in ds.chromosomes},
            "writeable": [ds.labels.flags.writeable, ds.expression.flags.writeable, ds._flat.flags.writeable]}


def test_shared_copy_equals_the_file_and_is_read_only(local_ray, small_dataset_file):
    path = str(small_dataset_file)
    direct = open_dataset(path)
    bins = [0, 5, direct.n_bins - 1]
    first, second = ray.get([_read.remote(path, bins), _read.remote(path, bins)])
    assert first["pid"] != second["pid"]
    for got in (first, second):
        np.testing.assert_array_equal(got["windows"], direct.window_codes(np.asarray(bins)))
        np.testing.assert_array_equal(got["labels"], direct.labels)
        np.testing.assert_array_equal(got["expression"], direct.expression)
        for chrom in direct.chromosomes:
            np.testing.assert_array_equal(got["genome"][chrom], direct.genome[chrom][:50])
        assert got["writeable"] == [False, False, False]  # views of the object store, not private copies

    holders = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    assert holders == [holder_name(path, first["node"])]
    assert release_shared(path) == 1
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]


def test_outside_ray_workers_the_file_is_opened_privately(local_ray, small_dataset_file):
    ds = load_dataset(str(small_dataset_file))  # the driver: no holder actor, a writeable private copy
    assert ds.labels.flags.writeable
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
