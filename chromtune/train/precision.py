"""Which float format trains and scores: bf16 autocast where the hardware computes bf16 natively,
float32 elsewhere.

``--precision auto`` resolves, where the run's device is known, to ``bf16`` on a GPU with native
bf16 (Ampere and later) and on a CPU with AVX512-BF16 or AMX-BF16 (oneDNN runs the convolutions
and linears there as bf16 kernels: about 1.45-1.6x fewer ms per step on the demo, BENCHMARKS.md),
and to ``fp32`` on any other CPU, where autocast would emulate bf16 (convert, compute in float32)
and only be slower. ``bf16`` on such a device is refused rather than emulated. The loss, the
optimizer's state and the weights stay float32 (autocast only casts the matmuls' inputs).
"""

from __future__ import annotations

import contextlib

import torch

from chromtune.errors import UserError
from chromtune.train.config import PRECISIONS


def cpu_has_native_bf16() -> bool:
    """This CPU computes bf16 in hardware: AVX512-BF16 (Zen 4, Cooper Lake, Sapphire Rapids) or AMX-BF16."""
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def has_native_bf16(device: torch.device) -> bool:
    """bf16 in hardware on ``device``. A CUDA device this process cannot see (a cluster's head
    planning GPU trials) is taken to have it; the worker that trains checks its own."""
    if device.type == "cuda":
        return not torch.cuda.is_available() or torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_precision(requested: str, device: torch.device, flag: str = "--precision") -> str:
    """``fp32`` or ``bf16`` for ``requested`` (auto, fp32 or bf16) on ``device``; bf16 asked of a
    device without native bf16 is a UserError."""
    if requested not in PRECISIONS:
        raise UserError(f"{flag} {requested!r}: choose {', '.join(PRECISIONS)}")
    native = requested != "fp32" and has_native_bf16(device)
    if requested == "bf16" and not native:
        what = "GPU" if device.type == "cuda" else "CPU"
        raise UserError(f"{flag} bf16: this {what} has no native bf16 (AVX512-BF16 or AMX-BF16 on a CPU, "
                        "Ampere or later on a GPU), so bf16 would be emulated, slower than fp32; use fp32 or auto")
    return "bf16" if native else "fp32"


def scores_in_bf16(precision: str, device: torch.device) -> bool:
    """Validation and test scoring in bf16: a run trained in bf16 (or auto), on a device with native
    bf16 (a test scored on another device than training's is never emulated)."""
    return precision != "fp32" and has_native_bf16(device)


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when ``bf16`` (a resolved precision); float32 otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
