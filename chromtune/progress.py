"""Progress of a long command: one status line, its estimate, and how it is drawn.

On a terminal the line is redrawn in place every second; in a log or a pipe it is a plain line
every 30 s and one at the end, so a log shows a run's pace without a flood. :class:`StatusLine`
draws any line a subclass composes (the sweep's, :mod:`chromtune.sweep.progress`);
:class:`Progress` counts the units of one command's work::

    predict | 0:42 | 8,192/437,871 bins | 195 bins/s | about 37 min left

Units are counted from when the work begins (:meth:`Progress.begin`), so the rate leaves out
loading and starting, and a resumed run's earlier work counts as done but not toward the rate.
The first line comes :data:`FIRST_LINE_AFTER` s after the command starts, and the last one only
after a first: a command done (or failed on its input) sooner prints only its result (or its
error). Nothing heavy is imported here: a command opens its line before it imports torch.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import threading
import time
from typing import Callable, ContextManager, Iterable, Iterator, TypeVar

T = TypeVar("T")

CLEAR = "\r\x1b[K"
TERMINAL_EVERY = 1.0  # seconds between redraws on a terminal
LOG_EVERY = 30.0  # seconds between plain lines in a log or pipe
FIRST_LINE_AFTER = 5.0  # seconds before a command's first line: a quicker one prints none


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def left_text(seconds: float) -> str:
    if seconds < 60:
        return f"about {max(10, math.ceil(seconds / 10) * 10)} s left"
    if seconds < 90:
        return "about 1 min left"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


def rate_text(per_second: float, unit: str) -> str:
    """``195 bins/s``, two significant digits below 10 (``3.1 batches/s``); below one a second, the
    seconds each takes (``42 s each``)."""
    if per_second >= 10:
        return f"{per_second:,.0f} {unit}/s"
    if per_second >= 1:
        return f"{per_second:.2g} {unit}/s"
    seconds = 1 / per_second
    return f"{seconds:.1f} s each" if seconds < 10 else f"{seconds:,.0f} s each"


class StatusLine:
    """A status line drawn from :meth:`status` (thread-safe): redrawn in place on a terminal, a
    plain line every ``interval`` s elsewhere; a context manager that draws it while open.

    ``first_after``: seconds before the first line is due; the closing line comes only after one.
    :meth:`poll` draws when a line is due by the clock; the context's thread calls it every
    ``tick`` s, or (``tick=None``) the caller does, e.g. a test with a clock it moves by hand."""

    def __init__(self, stream=None, interval: float | None = None, first_after: float = 0.0,
                 clock_fn: Callable[[], float] = time.monotonic, tick: float | None = 0.2):
        self.tick = tick  # seconds between the thread's polls; None: no thread, the caller polls
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval or (TERMINAL_EVERY if self.tty else LOG_EVERY)
        self.now = clock_fn
        self.started = self.now()
        self.due = self.started + first_after
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False  # a status line is on the terminal, to be cleared before the next line
        self._drawn = False  # a line was drawn: the closing one follows

    def status(self) -> str:
        raise NotImplementedError

    def _fit(self, text: str) -> str:
        width = shutil.get_terminal_size((100, 24)).columns if self.tty else 100
        return text if len(text) < width else text[:width - 2] + "…"

    def write_line(self, text: str, stream=None) -> None:
        """Print ``text`` as a line of its own (on ``stream``, default the line's own), above the
        status line when one is shown."""
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
            print(text, file=stream or self.stream, flush=True)
            if self._shown:
                self.stream.write(self._fit(self.status()))
                self.stream.flush()

    def draw(self) -> None:
        with self._lock:
            if self.tty:
                self.stream.write(CLEAR + self._fit(self.status()))
                self._shown = True
            else:
                self.stream.write(self.status() + "\n")
            self.stream.flush()
            self._drawn = True
            self.due = self.now() + self.interval

    def poll(self) -> None:
        """Draw if a line is due."""
        with self._lock:
            if self.now() >= self.due:
                self.draw()

    def clear(self) -> None:
        """Take the status line off the terminal (before another line, or an exit)."""
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False

    def _loop(self) -> None:
        while not self._stop.wait(min(self.tick, self.interval)):
            self.poll()

    def open(self) -> None:
        self.poll()
        if self.tick is not None:
            self._thread = threading.Thread(target=self._loop, name="chromtune-progress", daemon=True)
            self._thread.start()

    def close(self, final: bool = True) -> None:
        """Stop drawing; ``final``: end with the last status as a line of its own (if one was drawn)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.clear()
        if final and self._drawn:
            with self._lock:
                self.stream.write(self.status() + "\n")
                self.stream.flush()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(final=kind is None)  # a stopped or failed command ends with its own one line


class Progress(StatusLine):
    """``label | elapsed | [phase |] done/total unit | rate | time left`` of one command.

    ``phase`` says what runs (``starting Ray``, ``epoch 2/4``); counting starts with :meth:`begin`
    (or the first :meth:`update` that gives a total)."""

    def __init__(self, label: str, stream=None, interval: float | None = None,
                 first_after: float | None = None, clock_fn: Callable[[], float] = time.monotonic,
                 tick: float | None = 0.2):
        super().__init__(stream, interval, FIRST_LINE_AFTER if first_after is None else first_after, clock_fn, tick)
        self.label, self.phase = label, "starting"
        self.total: int | None = None
        self.unit = ""
        self.done = self._done_at_begin = 0
        self._begun: float | None = None

    def begin(self, total: int, unit: str, done: int = 0, phase: str = "") -> None:
        """The counted work starts now: ``total`` units, ``done`` of them finished before (a resume)."""
        with self._lock:
            self.total, self.unit, self.done, self.phase = int(total), unit, int(done), phase
            self._done_at_begin, self._begun = int(done), self.now()
            self._redraw()

    def advance(self, units: int = 1) -> None:
        with self._lock:
            self.done += units

    def update(self, done: int | None = None, total: int | None = None, phase: str | None = None,
               unit: str | None = None) -> None:
        """Set what is known; a first total begins the count, a new phase is drawn at once on a terminal."""
        with self._lock:
            if total is not None and self._begun is None:
                self.begin(total, unit or self.unit, done or 0, self.phase if phase is None else phase)
                return
            changed = phase is not None and phase != self.phase
            if phase is not None:
                self.phase = phase
            if done is not None:
                self.done = int(done)
            if changed:
                self._redraw()

    def _redraw(self) -> None:
        """A new phase or count shows at once on a terminal that shows the line already."""
        if self.tty and self._shown:
            self.draw()

    def counting(self, items: Iterable[T], units: Callable[[T], int] = lambda item: 1) -> Iterator[T]:
        """``items`` passed through, each counted (``units(item)``) once the consumer is done with it."""
        for item in items:
            yield item
            self.advance(units(item))

    def counted_seconds(self) -> float:
        """Seconds since the work began (0 before)."""
        with self._lock:
            return 0.0 if self._begun is None else self.now() - self._begun

    def rate(self) -> float | None:
        """Units per second since the work began, or None before a unit is done."""
        with self._lock:
            seconds = self.counted_seconds()
            if self.done <= self._done_at_begin or seconds <= 0:
                return None
            return (self.done - self._done_at_begin) / seconds

    def status(self) -> str:
        with self._lock:
            parts = [self.label, clock(self.now() - self.started)] + ([self.phase] if self.phase else [])
            if self.total is not None:
                parts.append(f"{self.done:,}/{self.total:,} {self.unit}")
                rate = self.rate()
                if rate:
                    parts.append(rate_text(rate, self.unit))
                    if self.done < self.total:
                        parts.append(left_text((self.total - self.done) / rate))
            return " | ".join(parts)


class Throttled:
    """A ``(done, total, phase)`` callback that passes calls on to ``send`` at most once per
    ``seconds``, and at once when the phase changes: progress that crosses a process boundary
    (a Ray Train worker's to its driver) costs a message a second, not one per batch."""

    def __init__(self, send: Callable[[int, int, str], None], seconds: float = 1.0,
                 clock_fn: Callable[[], float] = time.monotonic):
        self.send, self.seconds, self.now = send, seconds, clock_fn
        self._sent_at, self._phase = -float("inf"), None

    def __call__(self, done: int, total: int, phase: str) -> None:
        now = self.now()
        if phase != self._phase or now - self._sent_at >= self.seconds:
            self._sent_at, self._phase = now, phase
            self.send(done, total, phase)


def line_for(progress: Progress | None, label: str) -> ContextManager[Progress]:
    """The line a command's function draws on: the caller's ``progress`` (a command opens its line before
    it imports torch), or a new one labelled ``label`` (the function called from Python)."""
    return contextlib.nullcontext(progress) if progress is not None else Progress(label)
