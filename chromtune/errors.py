"""User-facing errors and the command-line wrapper that turns them into one line + exit 2.

Every module raises :class:`UserError` (or a subclass) for bad input: a message of one line that
names the file or flag and the problem. :func:`run_cli` prints it as ``chromtune: error: ...``
with exit status 2 and no traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence


class UserError(Exception):
    """Bad input from the user: one line naming the file or flag and the problem."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main`` and map :class:`UserError` to one stderr line and exit status 2."""
    try:
        return int(main(argv) or 0)
    except UserError as err:
        print(f"chromtune: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `chromtune inspect --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("chromtune: interrupted", file=sys.stderr)
        return 130
