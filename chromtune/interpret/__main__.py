"""``python -m chromtune.interpret``: the ``chromtune interpret`` command."""

import sys

from chromtune.errors import run_cli
from chromtune.interpret.pipeline import main

sys.exit(run_cli(main))
