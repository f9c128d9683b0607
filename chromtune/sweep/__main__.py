"""``python -m chromtune.sweep``: the same as ``chromtune sweep`` (:mod:`chromtune.cli.sweep`)."""

import sys

from chromtune.cli.sweep import main
from chromtune.errors import run_cli

if __name__ == "__main__":  # fold processes import this module by name and must not run it
    sys.exit(run_cli(main))
