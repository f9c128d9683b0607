"""The ``chromtune`` console script: ``chromtune <command> [options]``.

One shape for every command: ``chromtune/cli/<command>.py`` holds an argparse parser and
``main(argv) -> int`` and imports nothing heavy (torch, ray, pandas, mlflow, optuna, pyarrow, h5py)
at module level, so ``chromtune <command> --help`` answers at once; the work lives in the command's
package and is imported inside ``main``. :func:`command_parser` gives every command the same help
layout: what it does, the flags with their defaults, and examples.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from typing import Sequence

from chromtune import __version__
from chromtune.errors import run_cli

COMMANDS = {
    "prepare": ("chromtune.cli.prepare", "build a data set from a FASTA, peak files and an expression table"),
    "import-chromdragonn": ("chromtune.cli.import_chromdragonn", "import the reference implementation's released data"),
    "inspect": ("chromtune.cli.inspect", "summarise a data set file"),
    "demo": ("chromtune.cli.demo", "write the embedded demo data set"),
    "train": ("chromtune.cli.train", "train one stage of one fold (Ray Train)"),
    "sweep": ("chromtune.cli.sweep", "the full protocol: folds x stages on Ray Tune + Optuna, tracked in MLflow"),
    "compare": ("chromtune.cli.compare", "tested comparison of finished sweeps: tables, figures, report"),
    "predict": ("chromtune.cli.predict", "accessibility of every bin in cell types that have only expression"),
    "interpret": ("chromtune.cli.interpret", "contribution scores, TF-MoDISco motifs, motif-TF correlation, t-SNE"),
    "variants": ("chromtune.cli.variants", "effects of SNVs on accessibility in any cell type with expression"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and examples' line breaks and appends each option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or not action.option_strings or default is None or default is False
                or default == "" or default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def add_evaluation_flags(p: argparse.ArgumentParser) -> None:
    """The validation-sample and test-bin flags that ``train`` and ``sweep`` share."""
    from chromtune.train.config import DEMO_VALID_PAIRS, TEST_MAX_PAIRS, VALID_BINS, VALID_PAIRS, sample_size

    p.add_argument("--valid-bins", type=sample_size, default=None, metavar="N|all",
                   help="stage 1: held-out bins validated each epoch, a fixed seeded sample; all: every one "
                        f"(default: {VALID_BINS:,})")
    p.add_argument("--valid-pairs", type=sample_size, default=None, metavar="N|all",
                   help="stage 2: (bin, validation cell type) pairs validated each epoch, a fixed seeded sample "
                        f"(sampled bins x every validation cell type); all: every one (default: {VALID_PAIRS:,}; "
                        f"{DEMO_VALID_PAIRS:,} on the demo data set)")
    p.add_argument("--test-every", type=int, default=0, metavar="K",
                   help="score every K-th test bin; 1: all; 0: the smallest K within --test-max-pairs")
    p.add_argument("--test-max-pairs", type=int, default=None, metavar="N",
                   help=f"most test (bin, cell type) pairs when --test-every is 0 (default: {TEST_MAX_PAIRS:,})")


def add_scoring_flags(p: argparse.ArgumentParser, batch_size: int, batch_help: str) -> None:
    """The flags of ``interpret`` and ``variants``, which score windows with a trained model: where a run id's
    model is stored, how many windows per pass (`batch_size` by default), and on which device."""
    p.add_argument("--tracking-uri", help="MLflow tracking URI for a run id (default sqlite:///mlflow.db)")
    p.add_argument("--batch-size", type=int, default=batch_size, help=batch_help)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cuda when available")


def add_precision_flag(p: argparse.ArgumentParser, records: str = "The run records the choice") -> None:
    """``--precision``, which ``train``, ``sweep`` and ``predict`` share (chromtune.train.precision resolves it)."""
    from chromtune.train.config import PRECISIONS

    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16 autocast or float32; auto: bf16 where the hardware has it natively (a GPU, a CPU with "
                        "AVX512-BF16 or AMX-BF16), fp32 elsewhere; bf16 on a CPU that would emulate it is refused. "
                        f"{records} (default: fp32)")


def add_pairs_per_bin_flag(p: argparse.ArgumentParser) -> None:
    """``--pairs-per-bin``, which ``train`` and ``sweep`` share (chromtune.data.sampling.Stage2Sampler)."""
    p.add_argument("--pairs-per-bin", type=int, default=1, metavar="K",
                   help="stage 2: draw training pairs in groups of up to K training cell types of one label at one "
                        "bin, so the trunk runs once per bin for up to K pairs; every pair stays as likely to be "
                        "drawn and batches keep 1 positive : 3 negatives (default: 1, independent pairs as the "
                        "reference draws them)")


def check_at_least_one(args: argparse.Namespace, *flags: str) -> None:
    """A one-line UserError for the first of `flags` (``--max-bins``) whose value in `args` is below 1."""
    from chromtune.errors import UserError

    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value < 1:
            raise UserError(f"{flag} {value}: must be >= 1")


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, like every other chromtune error: ``chromtune: error:
    <what argparse says>; see 'chromtune <command> --help'`` on stderr and exit status 2 (argparse's own
    usage block is left out)."""

    def error(self, message: str):
        self.exit(2, f"chromtune: error: {' '.join(message.split())}; see '{self.prog} --help'\n")


def command_parser(name: str, what: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of ``chromtune <name>``: ``what`` it does, then the flags, then ``examples``."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return CommandParser(prog=f"chromtune {name}", description=textwrap.fill(what, 88), epilog=epilog,
                         formatter_class=HelpFormatter)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return ("usage: chromtune <command> [options]\n       chromtune --version\n\ncommands:\n" + "\n".join(lines)
            + "\n\n'chromtune <command> --help' describes a command.")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        return run_cli(lambda _: print(usage()))
    if args[0] == "--version":
        return run_cli(lambda _: print(f"chromtune {__version__}"))
    if args[0] not in COMMANDS:
        print(f"chromtune: error: unknown command {args[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return run_cli(module.main, args[1:])


if __name__ == "__main__":
    sys.exit(main())
