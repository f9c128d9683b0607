"""Sequence codes and one-hot encoding.

Codes: A, C, G, T, N = 0, 1, 2, 3, 4 (uint8; text -> codes is :func:`chromtune.io.fasta.encode`). One-hot: float (N, 4, L), channels A, C, G, T;
an N (or any code >= 4) is the all-zero column. Encoding happens on the device the model runs on,
from the compact uint8 codes, so only 1 byte per base crosses host memory and the PCIe bus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


def one_hot(codes: "torch.Tensor | np.ndarray", device: "torch.device | str | None" = None,
            dtype: "torch.dtype | None" = None) -> "torch.Tensor":
    """(N, L) uint8 codes -> (N, 4, L) one-hot of ``dtype`` (default float32) on ``device``."""
    import torch  # here, not at module level: prepare/inspect/import never pay for torch

    dtype = dtype or torch.float32
    codes = torch.as_tensor(codes).to(device=device, non_blocking=True)
    channels = torch.arange(4, dtype=codes.dtype, device=codes.device).view(1, 4, 1)
    # Comparing straight into a float output is ~10x faster on a CPU than comparing, then casting.
    out = torch.empty((codes.shape[0], 4, codes.shape[1]), dtype=dtype, device=codes.device)
    return torch.eq(codes.unsqueeze(1), channels, out=out)
