"""FoldTask: what one fold of one data set offers a training run.

    dataset        the opened Dataset (cached per process: trials in one worker share it)
    fold           Fold of cell-type indices (train / valid / test)
    bins           BinSplit (train / valid / fit / test bin indices)
    mean_access    (n_bins,) float32 fraction of the fold's TRAINING cell types accessible per bin;
                   held-out cell types never enter it
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chromtune.data.dataset import Dataset, open_dataset
from chromtune.data.folds import BinSplit, Fold, select_fold, split_bins
from chromtune.train.baselines import mean_accessibility
from chromtune.train.config import TrainConfig


@lru_cache(maxsize=4)
def _cached_dataset(path: str, mtime: float) -> Dataset:
    return open_dataset(path)


def load_dataset(path: str) -> Dataset:
    """Open a data set once per process (re-read only when the file changes)."""
    return _cached_dataset(os.path.abspath(path), os.path.getmtime(path))


@dataclass(frozen=True)
class FoldTask:
    dataset: Dataset
    fold: Fold
    bins: BinSplit
    mean_access: np.ndarray

    @classmethod
    def from_config(cls, cfg: TrainConfig, dataset: Dataset | None = None) -> "FoldTask":
        dataset = dataset or load_dataset(cfg.data)
        fold = select_fold(dataset.n_cell_types, cfg.fold, cfg.folds, cfg.seed, cfg.split, cfg.n_valid, cfg.n_test)
        bins = split_bins(dataset, seed=cfg.seed, valid_fraction=cfg.valid_fraction,
                          test_chroms=cfg.test_chroms or None, eval_every=cfg.eval_every)
        return cls(dataset, fold, bins, mean_accessibility(dataset.labels, fold.train))
