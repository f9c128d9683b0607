"""Sequence codes and one-hot encoding.

Codes: A, C, G, T, N = 0, 1, 2, 3, 4 (uint8). One-hot: float (N, 4, L), channels A, C, G, T;
an N (or any code >= 4) is the all-zero column. Encoding happens on the device the model runs on,
from the compact uint8 codes, so only 1 byte per base crosses host memory and the PCIe bus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

ALPHABET = "ACGT"

_LOOKUP = np.full(256, 4, dtype=np.uint8)
for _code, _base in enumerate(ALPHABET):
    _LOOKUP[ord(_base)] = _code
    _LOOKUP[ord(_base.lower())] = _code


def encode(sequence: str | bytes) -> np.ndarray:
    """Text sequence -> uint8 codes; lower case counts as bases, every other letter is N (4)."""
    raw = sequence.encode("ascii", "replace") if isinstance(sequence, str) else sequence
    return _LOOKUP[np.frombuffer(raw, dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    """uint8 codes -> upper-case text (4 -> N)."""
    return "".join(np.asarray(list(ALPHABET + "N"))[np.minimum(codes, 4)])


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
