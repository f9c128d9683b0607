"""User-facing errors and the command-line wrapper that turns them into one line + exit 2.

Every module raises :class:`UserError` (or a subclass) for bad input: a message of one line that
names the file or flag and the problem. :func:`run_cli` prints it as ``chromtune: error: ...``
with exit status 2 and no traceback, also when it was raised inside a Ray worker and reaches the
driver wrapped by Ray (a task's ``RayTaskError``, Train's ``WorkerGroupError``/``ControllerError``,
or an exception raised ``from`` it): :func:`user_error_in` finds it.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence


class UserError(Exception):
    """Bad input from the user: one line naming the file or flag and the problem."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def user_error_in(err: BaseException) -> UserError | None:
    """The :class:`UserError` behind ``err``, looking through Ray's wrappers and exception chains."""
    stack, seen = [err], set()
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        wrapped = [getattr(current, "cause", None), getattr(current, "controller_failure", None),
                   *(getattr(current, "worker_failures", None) or {}).values(),
                   current.__cause__, current.__context__]
        if isinstance(current, UserError) and not any(isinstance(w, UserError) for w in wrapped):
            return current
        stack.extend(reversed([w for w in wrapped if isinstance(w, BaseException)]))
    return None


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main`` and map :class:`UserError` to one stderr line and exit status 2."""
    try:
        return int(main(argv) or 0)
    except UserError as err:  # Ray's wrapper of a worker's UserError is a UserError too: show the cause
        print(f"chromtune: error: {user_error_in(err) or err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `chromtune inspect --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("chromtune: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a UserError raised in a Ray worker arrives wrapped
        found = user_error_in(err)
        if found is None:
            raise
        print(f"chromtune: error: {found}", file=sys.stderr)
        return 2
