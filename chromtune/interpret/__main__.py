"""``python -m chromtune.interpret``: the same as ``chromtune interpret`` (:mod:`chromtune.cli.interpret`)."""

import sys

from chromtune.errors import run_cli
from chromtune.cli.interpret import main

sys.exit(run_cli(main))
