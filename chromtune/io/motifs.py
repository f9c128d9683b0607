"""Motif files: MEME (memelite's reader) and JASPAR (``>ID name`` headers, then four rows of counts,
with or without ``A [ ... ]`` brackets), read into an ordered ``{name: (4, W) float64 PWM}``
(probabilities over A, C, G, T, columns summing to 1)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from chromtune.errors import UserError

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _normalise(counts: np.ndarray, where: str) -> np.ndarray:
    """(4, W) counts or probabilities -> probabilities; a UserError for negative, NaN or empty columns."""
    if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] == 0:
        raise UserError(f"{where}: expected 4 rows (A, C, G, T) of equal length, got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise UserError(f"{where}: negative, NaN or infinite values")
    total = counts.sum(0)
    if (total <= 0).any():
        raise UserError(f"{where}: column {int(np.argmax(total <= 0)) + 1} is all zero")
    return counts / total


def _read_jaspar(text: str, where: str) -> dict[str, np.ndarray]:
    motifs: dict[str, np.ndarray] = {}
    blocks = re.split(r"^>", text, flags=re.M)[1:]
    for block in blocks:
        header, *rows = [line for line in block.splitlines() if line.strip()]
        name = " ".join(header.split())
        if len(rows) != 4:
            raise UserError(f"{where}: motif {name!r} has {len(rows)} rows, expected 4 (A, C, G, T)")
        values = [[float(v) for v in _NUMBER.findall(re.sub(r"^\s*[ACGTacgt]\b", "", row))] for row in rows]
        if len({len(v) for v in values}) != 1:
            raise UserError(f"{where}: motif {name!r} has rows of different lengths")
        motifs[name] = _normalise(np.asarray(values, dtype=np.float64), f"{where}: motif {name!r}")
    return motifs


def read_motif_file(path: str | Path, flag: str = "--motifs") -> dict[str, np.ndarray]:
    """The motifs of a MEME or JASPAR file, in file order; any problem is a one-line UserError."""
    path = Path(path)
    where = f"{flag} {path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{where}: cannot read ({err.__class__.__name__})") from None
    if re.search(r"^MEME version", text, flags=re.M):
        from memelite.io import read_meme

        try:
            raw = read_meme(str(path))
        except (ValueError, AttributeError, IndexError) as err:
            raise UserError(f"{where}: malformed MEME file ({err.__class__.__name__}: {err})") from None
        motifs = {name: _normalise(np.asarray(pwm, dtype=np.float64), f"{where}: motif {name!r}")
                  for name, pwm in raw.items()}
    elif text.lstrip().startswith(">"):
        try:
            motifs = _read_jaspar(text, where)
        except ValueError as err:
            raise UserError(f"{where}: malformed JASPAR file ({err})") from None
    else:
        raise UserError(f"{where}: neither a MEME file ('MEME version' line) nor a JASPAR file ('>' headers)")
    if not motifs:
        raise UserError(f"{where}: holds no motifs")
    return motifs
