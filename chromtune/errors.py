"""User-facing errors and the command-line wrapper that turns them into one line + exit 2.

Every module raises :class:`UserError` (or a subclass) for bad input: a message of one line that
names the file or flag and the problem. :func:`run_cli` prints it as ``chromtune: error: ...``
with exit status 2 and no traceback, also when it was raised inside a Ray worker and reaches the
driver wrapped by Ray (a task's ``RayTaskError``, Train's ``WorkerGroupError``/``ControllerError``,
or an exception raised ``from`` it): :func:`user_error_in` finds it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Sequence

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it
STOP_LINE = {signal.SIGINT: "chromtune: interrupted", signal.SIGTERM: "chromtune: stopped by SIGTERM"}
_signals: list[int] = []  # SIGINT and SIGTERM seen under run_cli, in order
_first = [0]  # where the current run_cli's signals start in _signals
_active = [0]  # run_cli calls under way in this process
exit_hooks: list[Callable[[], None]] = []  # run before an exit at once (chromtune.atomic: remove temporary files)
SHOWN = 5  # names a message lists before "..."


def listing(names, shown: int = SHOWN) -> str:
    """The first `shown` names, comma-separated, with ", ..." when there are more (for one-line messages)."""
    names = list(names)
    return ", ".join(map(str, names[:shown])) + (", ..." if len(names) > shown else "")


def interrupt_count() -> int:
    """How many stop signals (Ctrl-C, SIGTERM) arrived under :func:`run_cli` (an atomic write begun
    before one never renames into place, even when a library swallowed the KeyboardInterrupt)."""
    return len(_signals)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is, so that every ``finally`` runs (temporary files are removed)."""


class UserError(Exception):
    """Bad input from the user: one line naming the file or flag and the problem; ``details``, one
    line each, where the problem is a list (the settings a --resume changed)."""

    def __init__(self, message: str, details: Sequence[str] = ()):
        super().__init__(" ".join(str(message).split()))
        self.details = tuple(" ".join(str(line).split()) for line in details)

    def lines(self) -> str:
        """The message, then each detail on a line of its own, indented."""
        return "\n".join([str(self), *(f"  {line}" for line in self.details)])


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


def _stop(signum, frame) -> None:
    """The first stop signal raises where the command is; a second one, while it unwinds, exits at
    once after the :data:`exit_hooks` (no cleanup can hold a user up, none is skipped)."""
    _signals.append(signum)
    if len(_signals) - _first[0] > 1:
        for hook in exit_hooks:
            try:
                hook()
            except Exception:  # exiting at once: nothing may hold this up
                pass
        print(STOP_LINE[_signals[_first[0]]], file=sys.stderr, flush=True)
        os._exit(EXIT_STATUS[_signals[_first[0]]])
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def handle_stop_signals() -> None:
    """Under :func:`run_cli` (in the main thread): turn SIGINT and SIGTERM into exceptions again,
    e.g. after ``ray.init`` replaced SIGTERM's handler with its own exit."""
    if _active[0] and threading.current_thread() is threading.main_thread():
        for signum in EXIT_STATUS:
            signal.signal(signum, _stop)


@contextlib.contextmanager
def _noting_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM are counted as well as raised (as KeyboardInterrupt), so an interrupt that
    a library swallows (inside an HDF5 write, a callback) still stops the command and its output."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in EXIT_STATUS}
    first = _first[0]
    _first[0] = len(_signals)
    _active[0] += 1
    handle_stop_signals()
    try:
        yield
    finally:
        _active[0] -= 1
        _first[0] = first
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stopped_by() -> int:
    """The signal that stopped the current command (SIGINT when none was seen: a KeyboardInterrupt)."""
    return _signals[_first[0]] if len(_signals) > _first[0] else signal.SIGINT


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main`` and map :class:`UserError` to one stderr line and exit status 2;
    Ctrl-C to one line and exit status 130, SIGTERM to one line and 143 (an output being written
    is left as it was, its temporary file removed)."""
    stopped = signal.SIGINT
    try:
        before = interrupt_count()
        with _noting_interrupts():
            try:
                code = int(main(argv) or 0)
            finally:
                stopped = _stopped_by()
        if interrupt_count() > before and code not in EXIT_STATUS.values():  # a nested run_cli reported it
            raise KeyboardInterrupt
        return code
    except UserError as err:  # Ray's wrapper of a worker's UserError is a UserError too: show the cause
        print(f"chromtune: error: {(user_error_in(err) or err).lines()}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `chromtune inspect --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(STOP_LINE[stopped], file=sys.stderr)
        return EXIT_STATUS[stopped]
    except Exception as err:  # a UserError raised in a Ray worker arrives wrapped
        found = user_error_in(err)
        if found is None:
            raise
        print(f"chromtune: error: {found.lines()}", file=sys.stderr)
        return 2
