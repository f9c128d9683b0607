"""One copy of a format_version 1 data set per node, shared by every Ray process on that node.

Data sets of the current format need none of this: :func:`chromtune.data.dataset.open_dataset`
maps them from the file, so every process on a machine shares the page cache's one copy. A
version-1 file is gzip-compressed and cannot be mapped; inside a Ray worker, :func:`shared_dataset`
asks the node's holder actor (named ``chromtune-data-<node id>-<file digest>``, created by the
first process that needs it, pinned to the node) for its arrays. The holder opens the file once
and puts every large array into the node's object store; readers on the same node map those
objects zero-copy, so the arrays they get are read-only views of one shared copy:

    sequence    (P,)            uint8   all chromosomes' codes, N-padded by ``context`` on each side
    sequence_starts (C,)        int64   each chromosome's start in ``sequence``
    labels      (n_bins, ceil(T/8)) uint8 bit-packed (chromtune.data.labels)
    expression  (T, G)          float32
    bin_chrom, bin_start (n_bins,)
    windows     (n_bins, L)     uint8   (only for data sets of stored windows)

The per-chromosome genome arrays are slices of ``sequence``, so nothing is copied per process. The
holder is a detached actor (it outlives the trial that created it, so later trials on the node
find it); :func:`release_shared` ends the holders of a data set when the sweep is done.
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

from chromtune.data.dataset import Dataset, open_dataset
from chromtune.data.labels import PackedLabels
from chromtune.io.files import absolute, is_uri
from chromtune.io.storage import fetch

PREFIX = "chromtune-data-"
NAMESPACE = "chromtune"


def file_digest(location: str) -> str:
    """Names the data set: a local file with its version (modification time), or a storage URI."""
    if not is_uri(location):
        location = absolute(location)
        location = f"{location}:{os.path.getmtime(location)}"
    return hashlib.sha1(location.encode()).hexdigest()[:12]


def holder_name(path: str, node_id: str) -> str:
    """The holder actor's name: one per (node, data set file and version)."""
    return f"{PREFIX}{node_id[:16]}-{file_digest(path)}"


class DatasetHolder:
    """Holds one data set's arrays in this node's object store (a Ray actor; see the module doc)."""

    def __init__(self, location: str):
        import ray

        dataset = open_dataset(fetch(location))
        sequence, starts = dataset._sequence() if dataset.genome is not None else (None, None)
        arrays = {"sequence": sequence, "sequence_starts": starts, "labels": dataset.labels.packed,
                  "expression": dataset.expression, "bin_chrom": dataset.bin_chrom,
                  "bin_start": dataset.bin_start, "windows": dataset.windows}
        self.refs = {name: ray.put(np.asarray(array)) for name, array in arrays.items() if array is not None}
        self.meta = {"chromosomes": dataset.chromosomes, "cell_types": dataset.cell_types, "genes": dataset.genes,
                     "bin_size": dataset.bin_size, "stride": dataset.stride, "context": dataset.context,
                     "attrs": dataset.attrs, "path": dataset.path,
                     "chrom_lengths": [len(dataset.genome[c]) for c in dataset.chromosomes]
                     if dataset.genome is not None else []}

    def contents(self) -> tuple[dict, dict]:
        return self.meta, self.refs


def _holder(path: str):
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0)(DatasetHolder)
    return actor.options(name=holder_name(path, node_id), namespace=NAMESPACE, lifetime="detached",
                         get_if_exists=True,
                         scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(path)


def shared_dataset(path: str) -> Dataset:
    """The format_version 1 data set at ``path`` (a file, or a URI the node downloads once) as
    read-only views of its node-wide shared copy (needs Ray)."""
    import ray

    meta, refs = ray.get(_holder(path).contents.remote())
    arrays = dict(zip(refs, ray.get(list(refs.values()))))
    genome = None
    if meta["chrom_lengths"]:
        sequence = arrays["sequence"]
        genome = {chrom: sequence[start:start + length] for chrom, start, length
                  in zip(meta["chromosomes"], arrays["sequence_starts"], meta["chrom_lengths"])}
    return Dataset(chromosomes=meta["chromosomes"], bin_chrom=arrays["bin_chrom"], bin_start=arrays["bin_start"],
                   labels=PackedLabels(arrays["labels"], len(meta["cell_types"])), cell_types=meta["cell_types"],
                   expression=arrays["expression"], genes=meta["genes"], bin_size=meta["bin_size"],
                   stride=meta["stride"], context=meta["context"], genome=genome, windows=arrays.get("windows"),
                   attrs=meta["attrs"], path=meta["path"], sequence=arrays.get("sequence"),
                   sequence_starts=arrays.get("sequence_starts"))


def release_shared(path: str) -> int:
    """End every node's holder of the data set at ``path``; returns how many there were."""
    import ray

    suffix = f"-{file_digest(path)}"
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == NAMESPACE and a["name"].startswith(PREFIX) and a["name"].endswith(suffix)]
    for name in names:
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    return len(names)


def in_ray_worker() -> bool:
    """True in a Ray task or actor process (where a node-wide copy can be shared)."""
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
