"""A small VCF reader: the columns a variant-effect score needs, plain or gzipped (bgzip) text.

Read: CHROM, POS, ID, REF and ALT, the first five tab-separated columns of VCF 4.x; QUAL, FILTER,
INFO, FORMAT and the samples are ignored, so a sites-only file or a five-column file reads too.
Lines starting with ``#`` are headers. A row with several ALT alleles (``A C,T``) becomes one record
per allele. Records are classified, not filtered: :attr:`Variants.kind` says ``snv`` (one base of
A, C, G, T replaced by another), ``indel`` (REF and ALT of different lengths), ``mnv`` (several
bases replaced, same length) or ``other`` (symbolic ``<DEL>``, breakends, ``*``, N bases, ALT
``.``). Any malformed line is a one-line :class:`UserError` naming the file and the line number.

Shape contract (n records after splitting)::

    read_vcf(path) -> Variants: chrom (n,) str, pos (n,) int64 1-based, ident (n,) str, ref (n,) str,
                                alt (n,) str, kind (n,) str, line (n,) int64 the record's line in the file
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chromtune.errors import UserError

KINDS = ("snv", "indel", "mnv", "other")
_BASES = re.compile(r"[ACGTNacgtn]+")
_PLAIN = re.compile(r"[ACGTacgt]+")


@dataclass
class Variants:
    """The records of a VCF, one per (row, ALT allele), in file order."""

    chrom: np.ndarray   # (n,) str, as written in the file
    pos: np.ndarray     # (n,) int64, 1-based position of REF's first base
    ident: np.ndarray   # (n,) str, the ID column ("." when absent)
    ref: np.ndarray     # (n,) str, upper case
    alt: np.ndarray     # (n,) str, upper case for sequence alleles
    kind: np.ndarray    # (n,) str, one of KINDS
    line: np.ndarray    # (n,) int64, 1-based line number in the file

    def __len__(self) -> int:
        return len(self.pos)

    def subset(self, keep: np.ndarray) -> "Variants":
        """The records selected by a boolean mask or index array."""
        return Variants(*(getattr(self, f)[keep] for f in ("chrom", "pos", "ident", "ref", "alt", "kind", "line")))


def classify(ref: str, alt: str) -> str:
    """``snv``, ``indel``, ``mnv`` or ``other`` for one REF / ALT pair (see the module docstring)."""
    if not _BASES.fullmatch(alt):
        return "other"
    if len(ref) != len(alt):
        return "indel"
    if not (_PLAIN.fullmatch(ref) and _PLAIN.fullmatch(alt)):
        return "other"
    return "snv" if len(ref) == 1 else "mnv"


def _open(path: Path):
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def read_vcf(path: str | os.PathLike, flag: str = "--vcf") -> Variants:
    """Every record of the VCF at `path`, multi-allelic rows split; problems are one-line UserErrors."""
    path = Path(path)
    where = f"{flag} {path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file")
    fields: dict[str, list] = {k: [] for k in ("chrom", "pos", "ident", "ref", "alt", "kind", "line")}
    number = 0
    try:
        with _open(path) as handle:
            for number, text in enumerate(handle, start=1):
                if text.startswith("#") or not text.strip():
                    continue
                for record in _parse(text.rstrip("\r\n"), f"{where} line {number}"):
                    for key, value in zip(fields, (*record, number)):
                        fields[key].append(value)
    except UnicodeDecodeError:
        raise UserError(f"{where} line {number + 1}: not UTF-8 text") from None
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{where}: cannot read ({err})") from None
    return Variants(np.asarray(fields["chrom"], dtype=str), np.asarray(fields["pos"], dtype=np.int64),
                    np.asarray(fields["ident"], dtype=str), np.asarray(fields["ref"], dtype=str),
                    np.asarray(fields["alt"], dtype=str), np.asarray(fields["kind"], dtype=str),
                    np.asarray(fields["line"], dtype=np.int64))


def variants_from_frame(frame, where: str = "variants (DataFrame)") -> Variants:
    """The records of a pandas DataFrame with columns chrom, pos (1-based), ref, alt and optionally id, checked
    as VCF lines are (a comma in alt splits the allele; ``line`` is the row's 1-based number)."""
    missing = [c for c in ("chrom", "pos", "ref", "alt") if c not in frame.columns]
    if missing:
        raise UserError(f"{where}: lacks the column(s) {', '.join(missing)}; expected chrom, pos, ref, alt (and id)")
    ids = frame["id"] if "id" in frame.columns else ["."] * len(frame)
    records = [(*record, number) for number, row in enumerate(zip(frame["chrom"], frame["pos"], ids, frame["ref"],
                                                                    frame["alt"]), start=1)
               for record in _parse("\t".join(map(str, row)), f"{where} row {number}")]
    columns = list(zip(*records)) or [()] * 7
    return Variants(*(np.asarray(c, dtype=t) for c, t in zip(columns, (str, np.int64, str, str, str, str, np.int64))))


def _parse(text: str, where: str) -> list[tuple[str, int, str, str, str, str]]:
    """The records of one data line: (chrom, pos, id, ref, alt, kind) per ALT allele."""
    columns = text.split("\t")
    if len(columns) < 5:
        raise UserError(f"{where}: {len(columns)} tab-separated column(s), expected at least 5 "
                        "(CHROM POS ID REF ALT)")
    chrom, pos, ident, ref, alts = (c.strip() for c in columns[:5])
    if not chrom:
        raise UserError(f"{where}: empty CHROM")
    if not pos.isdigit() or int(pos) < 1:
        raise UserError(f"{where}: POS {pos!r} is not a positive integer")
    if not _BASES.fullmatch(ref):
        raise UserError(f"{where}: REF {ref!r} is not a sequence of A, C, G, T, N")
    if not alts:
        raise UserError(f"{where}: empty ALT (write '.' for none)")
    ref = ref.upper()
    records = []
    for alt in alts.split(","):
        if not alt:
            raise UserError(f"{where}: ALT {alts!r} has an empty allele")
        alt = alt.upper() if _BASES.fullmatch(alt) else alt
        records.append((chrom, int(pos), ident or ".", ref, alt, classify(ref, alt)))
    return records
