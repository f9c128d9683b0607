"""Predicting accessibility in cell types that have only RNA-seq (``chromtune predict``, and from Python).

    chromtune predict --model RUN_ID --expression new_tpm.tsv --out preds.h5
    chromtune predict --model runs/s2/best.pt --expression new.tsv --out preds.h5 --bed beds --bigwig tracks
    chromtune predict --model runs/s2 --expression new.tsv --regions enhancers.bed --fill-missing median --out p.h5

**Model** (``--model``): a stage-2 checkpoint file (``best.pt`` of ``chromtune train``, or of one of
its epochs, ``RUN/ray/train/epoch_N/best.pt``, which a stopped run leaves), a run folder
holding one, the MLflow run id of a sweep's fold run (tag ``chromtune.level=fold``), whose
artifact ``best.pt`` is fetched from ``--tracking-uri`` (default ``sqlite:///mlflow.db``), or the
run id of a sweep (tag ``chromtune.level=sweep``): then every finished fold's selected model
predicts, each with its own training cell types' mean feature, and the output is the mean of their
probabilities (a fold ensemble; each member runs the fast path). Besides
the weights the checkpoint names the model's genes (in input order), the expression transform, the
training cell types (for the mean-accessibility feature and ``--fill-missing median``) and the
training data set, the default ``--data``. ``--data`` supplies the bins and their sequence; its gene
list must be the model's.

**Expression** (``--expression``): a TPM table, tab- or comma-separated, row names in the first
column, genes x cell types or cell types x genes. No sample sheet names the new cell types, so the
axis whose names overlap the model's genes more is the gene axis, and every name on the other axis
is a cell type to predict. Genes are matched by name; extra genes are ignored; a missing gene is
an error unless ``--fill-missing`` fills it (``median``: the training cell types' median,
``zero``: 0 TPM). The data set's transform is applied (``as-imported``: values used as given).

**Fast path**: scores go through :class:`chromtune.models.SplitHead` (:mod:`chromtune.predict.scoring`).

**Output** (``--out``, HDF5, written atomically; rows sorted by chromosome, then start)::

    attrs            format="chromtune-predictions", format_version, chromtune_version, model (the
                     checkpoint's path, or runs:/ID/best.pt; for an ensemble every member's, comma-separated),
                     run_id, members (models averaged), model_config (JSON), data,
                     expression, expression_transform, fill_missing, regions, assembly, bin_size, stride
    probabilities    (n, C) float16  P(accessible), bins x cell types
    cell_types       (C,)   str
    chromosomes      (K,)   str      the data set's chromosomes
    bins/index       (n,)   int64    row of the bin in the data set
    bins/chrom       (n,)   int32    index into chromosomes
    bins/start, end  (n,)   int64    0-based, half-open; -1 where the data set has no coordinates
    bins/name        (n,)   str      "chr1:1000-1200", or "chr1:bin<index>" without coordinates

``--bed DIR``: ``DIR/<cell type>.bed`` per cell type, the bins whose stored probability is
>= ``--threshold`` (BED5: chrom, start, end, cell type, round(1000 p)); neighbouring bins overlap
when the stride is shorter than the bin. ``--bigwig DIR``: ``DIR/<cell type>.bw``, each bin's
probability over its central ``min(stride, bin_size)`` bases, so the track tiles without overlaps
(needs the optional package pyBigWig). Both need genome coordinates, which imported reference
data sets lack. ``--regions BED`` keeps the bins overlapping its regions by at least 1 bp.

Modules: ``loading`` (model sources), ``expression`` (aligning a table to the model's genes, ``--cells``),
``bins`` (regions -> bins, names), ``scoring`` (the fast path, ensembles), ``predictor`` (the
:class:`Predictor`), ``files`` (the command as a function, :func:`predict_files`). The writers are
:mod:`chromtune.io.tracks`.
"""

from __future__ import annotations

_EXPORTS = {"Predictor": "chromtune.predict.predictor", "predict_files": "chromtune.predict.files"}


def __getattr__(name: str):
    """``from chromtune.predict import Predictor`` without importing torch at ``import chromtune.predict``."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chromtune.predict' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
