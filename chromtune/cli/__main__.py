"""``python -m chromtune.cli <command>``: the same as the ``chromtune`` console script."""

import sys

from chromtune.cli import main

sys.exit(main())
