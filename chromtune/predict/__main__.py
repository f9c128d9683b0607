"""``python -m chromtune.predict``: the same as ``chromtune predict`` (:mod:`chromtune.cli.predict`)."""

import sys

from chromtune.cli.predict import main
from chromtune.errors import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main))
