"""FoldTask: what one fold of one data set offers a training run.

    dataset        the opened Dataset (cached per process: trials in one worker share it)
    fold           Fold of cell-type indices (train / valid / test)
    bins           BinSplit (train / valid / fit / test bin indices)
    mean_access    MeanAccessibility: ``mean_access[bins]`` -> (len(bins),) float32 fraction of the fold's
                   TRAINING cell types accessible, computed per request from the packed labels;
                   held-out cell types never enter it
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from chromtune.data.dataset import Dataset, DatasetError, format_version, open_dataset
from chromtune.data.folds import BinSplit, Fold, select_fold, split_bins
from chromtune.data.shared import in_ray_worker, shared_dataset
from chromtune.io.files import is_uri
from chromtune.io.storage import fetch
from chromtune.train.baselines import MeanAccessibility
from chromtune.train.config import TrainConfig


@lru_cache(maxsize=4)
def _cached_dataset(location: str, mtime: float, shared: bool) -> Dataset:
    return shared_dataset(location) if shared else open_dataset(fetch(location))


def load_dataset(location: str) -> Dataset:
    """Open a data set once per process (re-opened only when the file changes), mapped from the file
    so that every process on a machine shares one copy; a format_version 1 file (compressed, not
    mappable) opened in a Ray worker comes from the node's shared copy (chromtune.data.shared).
    ``location`` is a file or a URI in the sweep's storage (downloaded once per machine)."""
    if not is_uri(location) and not os.path.isfile(location):
        raise DatasetError(f"{location}: no such data set file")
    shared = in_ray_worker() and format_version(fetch(location)) == 1
    if is_uri(location):
        return _cached_dataset(location, 0.0, shared)
    return _cached_dataset(os.path.abspath(location), os.path.getmtime(location), shared)


@dataclass(frozen=True)
class FoldTask:
    dataset: Dataset
    fold: Fold
    bins: BinSplit
    mean_access: MeanAccessibility

    @classmethod
    def from_config(cls, cfg: TrainConfig, dataset: Dataset | None = None) -> "FoldTask":
        dataset = dataset or load_dataset(cfg.data)
        fold = select_fold(dataset.n_cell_types, cfg.fold, cfg.folds, cfg.seed, cfg.split, cfg.n_valid)
        return cls(dataset, fold, bin_split(cfg, dataset), MeanAccessibility(dataset.labels, fold.train))


def bin_split(cfg: TrainConfig, dataset: Dataset) -> BinSplit:
    """The bins ``cfg`` trains, validates and tests on: the same for every fold (it follows the seed)."""
    return split_bins(dataset, seed=cfg.seed, valid_fraction=cfg.valid_fraction,
                      test_chroms=cfg.test_chroms or None, eval_every=cfg.eval_every)
