"""``python -m chromtune.compare``: the same as ``chromtune compare`` (:mod:`chromtune.cli.compare`)."""

import sys

from chromtune.cli.compare import main
from chromtune.errors import run_cli

sys.exit(run_cli(main))
