"""Model checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict ``{"config": model.config, "state_dict": model.state_dict(), **extra}``
holding only tensors and plain Python data (dict, list, tuple, str, int, float, bool, None):
no pickled objects, so loading one never runs code. ``extra`` is for the caller's records
(epoch, metrics, an optimizer's ``state_dict()``, ...). Files are written atomically
(``chromtune.atomic``: a temporary name in the same folder, then a rename over the target).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_path
from . import build_model

__all__ = ["load_model", "save_model"]

_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(value: Any, where: str) -> None:
    """Raise ValueError if `value` holds anything but tensors and plain Python data."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_plain(key, f"{where} key")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ValueError(f"cannot save {where}: {type(value).__name__} is not a tensor or plain Python data")


def save_model(path: str | os.PathLike, model: nn.Module, **extra: Any) -> None:
    """Write `model` (which must have a ``config``) and `extra` to `path`, atomically."""
    reserved = {"config", "state_dict"} & extra.keys()
    if reserved:
        raise ValueError(f"extra keys {sorted(reserved)} are reserved")
    checkpoint = {"config": dict(model.config), "state_dict": model.state_dict(), **extra}
    _check_plain(checkpoint, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_model(source: str | os.PathLike | Mapping[str, Any],
               map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint file (or an already loaded checkpoint dict).

    Returns ``(model, checkpoint)``; the model is in eval mode on `map_location`. Raises
    ValueError, with a one-line message naming the file, for anything that is not a readable
    chromtune checkpoint.
    """
    if isinstance(source, Mapping):
        name, checkpoint = "checkpoint", source
    else:
        name = os.fspath(source)
        try:
            checkpoint = torch.load(source, map_location=map_location, weights_only=True)
        except Exception as err:  # missing, truncated, not a torch file, or not weights-only
            raise ValueError(f"{name}: cannot read checkpoint: {_first_line(err)}") from None
    if not (isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("config"), Mapping)
            and isinstance(checkpoint.get("state_dict"), Mapping)):
        raise ValueError(f"{name}: not a chromtune checkpoint (needs 'config' and 'state_dict')")
    try:
        model = build_model(**checkpoint["config"])
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: checkpoint does not match its config: {_first_line(err)}") from None
    return model.to(map_location).eval(), dict(checkpoint)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
