"""``chromtune inspect FILE [--json] [--no-verify]``: summarise a data set file.

The file's stored digests are verified first (:func:`chromtune.data.summary.check_digests`), then
opening it runs the data set's validation (:func:`chromtune.data.dataset.open_dataset`), so a
damaged file is a one-line error; h5py is imported only when a file is opened. Verifying reads
the whole file: a progress line on stderr counts the megabytes (chromtune.progress).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from chromtune.cli import command_parser
from chromtune.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "inspect",
        "Summarise a chromtune data set file: bins, chromosomes, cell types, genes, positives per cell type, "
        "layout and provenance. Every dataset's stored checksum is verified and the file validated; a damaged "
        "file is a one-line error naming what is wrong (exit 2). Files written before checksums were stored "
        "are reported as having none.",
        ["chromtune inspect data.h5",
         "chromtune inspect data.h5 --json | python -m json.tool   # one JSON object on stdout"])
    parser.add_argument("file", help="data set file (.h5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the checksums (verifying reads the whole file: about 1.3 s per GB measured on a loaded 2-core machine)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chromtune.progress import Progress

    with Progress(f"inspect {args.file}") as progress:  # on stderr: stdout gets the summary
        from chromtune.data.dataset import open_dataset
        from chromtune.data.summary import check_digests, render, summarise
        digests = None if args.no_verify else check_digests(args.file, progress)
        progress.update(phase="summarising")
        summary = summarise(open_dataset(args.file), digests)
    print(json.dumps(summary) if args.json else render(summary))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
