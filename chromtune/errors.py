"""User-facing errors and the command-line wrapper that turns them into one line + exit 2.

Every module raises :class:`UserError` (or a subclass) for bad input: a message of one line that
names the file or flag and the problem. :func:`run_cli` prints it as ``chromtune: error: ...``
with exit status 2 and no traceback, also when it was raised inside a Ray worker and reaches the
driver wrapped by Ray (a task's ``RayTaskError``, Train's ``WorkerGroupError``/``ControllerError``,
or an exception raised ``from`` it): :func:`user_error_in` finds it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator, Sequence

_interrupts = [0]  # Ctrl-C presses seen under run_cli


def interrupt_count() -> int:
    """How many times Ctrl-C was pressed under :func:`run_cli` (an atomic write begun before one never
    renames into place, even when a library swallowed the KeyboardInterrupt)."""
    return _interrupts[0]


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


@contextlib.contextmanager
def _noting_interrupts() -> Iterator[None]:
    """Ctrl-C is counted as well as raised as KeyboardInterrupt, so an interrupt that a library
    swallows (inside an HDF5 write, a callback) still stops the command and its output."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        _interrupts[0] += 1
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main`` and map :class:`UserError` to one stderr line and exit status 2;
    Ctrl-C to one line and exit status 130 (an output being written is left as it was)."""
    try:
        before = interrupt_count()
        with _noting_interrupts():
            code = int(main(argv) or 0)
        if interrupt_count() > before and code != 130:  # 130: a nested run_cli reported it already
            raise KeyboardInterrupt
        return code
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
