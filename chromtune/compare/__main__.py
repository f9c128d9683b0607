"""``python -m chromtune.compare``."""

import sys

from chromtune.compare.command import main
from chromtune.errors import run_cli

sys.exit(run_cli(main))
