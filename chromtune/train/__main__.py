"""``python -m chromtune.train``: the same as ``chromtune train`` (:mod:`chromtune.cli.train`)."""

import sys

from chromtune.cli.train import main
from chromtune.errors import run_cli

sys.exit(run_cli(main))
