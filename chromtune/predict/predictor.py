"""The :class:`Predictor`: a trained stage-2 model, or a fold ensemble, with the data set whose bins it scores.

Loading checks what the command line would (genes, window length, the training cell types the mean
feature needs) and computes each member's mean-accessibility feature once; ``predict``, ``variants``
and ``interpret`` all score through it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chromtune.data.dataset import Dataset, open_dataset
from chromtune.errors import UserError, listing
from chromtune.predict.bins import bin_names, bins_in_regions, sort_bins
from chromtune.predict.expression import align_expression
from chromtune.predict.loading import load_all, load_one
from chromtune.predict.scoring import Member, predict_ensemble
from chromtune.train.baselines import mean_accessibility
from chromtune.train.precision import resolve_precision

MEAN_FEATURE = "the model's mean-accessibility feature"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``--device``: ``auto`` -> cuda when available, else cpu; ``cuda`` without a CUDA device is a UserError."""
    name = str(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def open_data(data: str | os.PathLike | None, meta: dict) -> Dataset:
    """The data set named by --data, else the one the checkpoint was trained on."""
    if data is not None:
        return open_dataset(data)
    if not meta.get("data"):
        raise UserError(f"--data: the checkpoint {meta['source']} does not name its training data set; pass --data")
    if not Path(meta["data"]).is_file():
        raise UserError(f"--data: the model's training data set {meta['data']} is not on this machine; pass --data")
    return open_dataset(meta["data"])


def check_data(ds: Dataset, model, meta: dict) -> None:
    """Refuse a data set whose genes or window length differ from the model's."""
    genes = list(meta["genes"])
    if ds.genes != genes:
        k = next((i for i, (a, b) in enumerate(zip(genes, ds.genes)) if a != b), min(len(genes), len(ds.genes)))
        difference = (f"gene {k + 1}: {genes[k]!r} vs {ds.genes[k]!r}" if k < min(len(genes), len(ds.genes))
                      else "one list extends the other")
        raise UserError(f"--model {meta['source']}: was trained on another gene list than --data {ds.path} "
                        f"({len(genes)} vs {len(ds.genes)} genes; first difference at {difference})")
    if ds.context != model.config["seq_len"]:
        raise UserError(f"--data {ds.path}: windows of {ds.context} bp, but the model takes {model.config['seq_len']} bp")


def train_cells(ds: Dataset, meta: dict, why: str) -> np.ndarray:
    """Indices in the data set of the model's training cell types."""
    names = meta.get("train_cells")
    if not names:
        raise UserError(f"--model {meta['source']}: the checkpoint does not name its training cell types, "
                        f"which {why} needs")
    index = {c: j for j, c in enumerate(ds.cell_types)}
    absent = [c for c in names if c not in index]
    if absent:
        raise UserError(f"--data {ds.path}: lacks {len(absent)} of the model's training cell types "
                        f"({listing(absent)}), which {why} needs")
    return np.asarray([index[c] for c in names], dtype=np.int64)


def mean_feature(ds: Dataset, model, meta: dict) -> np.ndarray | None:
    """The (n_bins,) mean accessibility over the model's training cell types, which a model with the
    mean feature takes; None for a model without it. The one recipe predict, variants and interpret use."""
    if not model.config["with_mean"]:
        return None
    return mean_accessibility(ds.labels, train_cells(ds, meta, MEAN_FEATURE))


class Predictor:
    """A stage-2 model or fold ensemble (:attr:`members`) and the data set (:attr:`dataset`) whose bins
    and sequence it scores, on :attr:`device`. :attr:`precision` is that of :meth:`probabilities`
    (``fp32``, or ``bf16`` autocast where the device computes bf16 natively; ``auto`` picks bf16 there);
    variant effects and interpretation, which difference or differentiate scores, stay float32.

    >>> p = Predictor.load("runs/s2")                      # or a fold run id, or a sweep run id
    >>> table = p(expression_df, regions_df)               # chrom, start, end, one column per cell type
    """

    def __init__(self, members: list[Member], dataset: Dataset, device: torch.device | str = "cpu",
                 precision: str = "fp32"):
        if not members:
            raise ValueError("a Predictor needs one member at least")
        self.members, self.dataset, self.device = members, dataset, torch.device(device)
        self.precision = resolve_precision(precision, self.device)

    @classmethod
    def load(cls, model: str | os.PathLike, data: str | os.PathLike | None = None, *, tracking_uri: str | None = None,
             device: str = "auto", ensemble: bool = True, precision: str = "fp32") -> Predictor:
        """The model(s) `model` names (a checkpoint, a run folder, a fold run id, or with `ensemble` a sweep
        run id: every finished fold's model) and the data set `data` (default: the model's training data
        set), checked against each other; each member's mean feature computed here, once."""
        device = resolve_device(device)
        resolve_precision(precision, device)  # a refused precision fails before the models load
        loaded = load_all(model, tracking_uri) if ensemble else [load_one(str(model), tracking_uri)]
        ds = open_data(data, loaded[0][1])
        members = []
        for net, meta in loaded:
            check_data(ds, net, meta)
            members.append(Member(net, meta, mean_feature(ds, net, meta)))
        return cls(members, ds, device, precision)

    @property
    def meta(self) -> dict:
        """The first member's checkpoint metadata (genes and expression transform are every member's)."""
        return self.members[0].meta

    @property
    def genes(self) -> list[str]:
        return list(self.meta["genes"])

    @property
    def description(self) -> str:
        """Which model(s) score: one checkpoint, or the folds of an ensemble with their run ids."""
        if len(self.members) == 1:
            return f"one model ({self.meta['checkpoint']})"
        folds = ", ".join(f"fold {m.meta.get('fold', '?')} (run {m.meta.get('run_id', '?')})" for m in self.members)
        return f"the mean of {len(self.members)} fold models: {folds}"

    def expression(self, table: str | os.PathLike | pd.DataFrame, fill: str | None = None) -> tuple[np.ndarray, list[str]]:
        """(C, G) transformed expression of new cell types in the model's gene order, and their names
        (:func:`chromtune.predict.expression.align_expression`; ``fill="median"`` uses the training cell
        types' median)."""
        train = (self.dataset.expression[train_cells(self.dataset, self.meta, "--fill-missing median")]
                 if fill == "median" else None)
        return align_expression(table, self.genes, self.meta["expression_transform"], fill, train)

    def probabilities(self, expression: np.ndarray, bins: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """(len(bins), C) float32 P(accessible) of data set `bins` in the cell types of the (C, G)
        transformed `expression`; an ensemble's members averaged."""
        return predict_ensemble(self.members, self.dataset, expression, bins, batch_size, self.device,
                                self.precision == "bf16")

    def __call__(self, expression: str | os.PathLike | pd.DataFrame, regions=None, *, fill: str | None = None,
                 batch_size: int = 512, as_frame: bool = True) -> pd.DataFrame | np.ndarray:
        """P(accessible) of the bins overlapping `regions` (a BED file or a DataFrame with chrom, start,
        end; None: every bin), sorted by chromosome and start, in the cell types of `expression` (a TPM
        table file or a DataFrame, genes x cell types or cell types x genes): a DataFrame with columns
        chrom, start, end and one per cell type, or with ``as_frame=False`` the (bins, cell types) array."""
        values, cells = self.expression(expression, fill)
        ds = self.dataset
        bins = sort_bins(ds, bins_in_regions(ds, regions) if regions is not None else np.arange(ds.n_bins))
        p = self.probabilities(values, bins, batch_size)
        if not as_frame:
            return p
        start = ds.bin_start[bins]
        frame = pd.DataFrame({"chrom": np.asarray(ds.chromosomes, dtype=object)[ds.bin_chrom[bins]],
                              "start": start, "end": np.where(start >= 0, start + ds.bin_size, -1)},
                             index=pd.Index(bin_names(ds, bins), name="bin"))
        return pd.concat([frame, pd.DataFrame(p, columns=cells, index=frame.index)], axis=1)
