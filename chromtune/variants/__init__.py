"""Variant effects on accessibility in any cell type with expression (``chromtune variants``; the user guide
is :mod:`chromtune.cli.variants`).

    effects   placing SNVs on the data set's genome, their allele windows, scoring them (the shape contract)
    outputs   the TSV / HDF5 writer, the output's attributes, the notes on skipped records
    ism       saturation mutagenesis of a region (``--ism``)
    run       the command as functions: :func:`write_variant_effects` (a file) and
              :func:`predict_variant_effects` (a pandas DataFrame, from a VCF or a DataFrame)
"""

from __future__ import annotations

_EXPORTS = ("write_variant_effects", "predict_variant_effects")


def __getattr__(name: str):
    """``from chromtune.variants import predict_variant_effects`` without importing torch at package import."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chromtune.variants' has no attribute {name!r}")
    from chromtune.variants import run

    return getattr(run, name)
