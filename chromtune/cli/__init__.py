"""The ``chromtune`` console script: ``chromtune <command> [args]``.

Each command is a module with ``main(argv) -> int``, also runnable as ``python -m chromtune.<module>``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from chromtune.errors import run_cli

COMMANDS = {
    "prepare": ("chromtune.cli.prepare", "build a data set from a FASTA, peak files and an expression table"),
    "import-chromdragonn": ("chromtune.cli.import_chromdragonn", "import the reference implementation's released data"),
    "inspect": ("chromtune.cli.inspect", "summarise a data set file"),
    "demo": ("chromtune.cli.demo", "write the embedded demo data set"),
    "train": ("chromtune.cli.train", "train one stage of one fold (Ray Train)"),
    "sweep": ("chromtune.sweep", "the full protocol: folds x stages on Ray Tune + Optuna, tracked in MLflow"),
    "compare": ("chromtune.compare", "Wilcoxon-tested comparison of finished sweeps: tables, figures, report"),
    "predict": ("chromtune.predict", "accessibility of every bin in cell types that have only expression"),
    "interpret": ("chromtune.interpret", "contribution scores, TF-MoDISco motifs, motif-TF correlation, t-SNE"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: chromtune <command> [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"chromtune: error: unknown command {args[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return run_cli(module.main, args[1:])


if __name__ == "__main__":
    sys.exit(main())
