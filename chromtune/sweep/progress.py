"""Live progress of a sweep: one status line for the whole run, above it one line per finished trial.

The status line reads, for example::

    resnet tune+mean | 12:04 | folds 1/5 | trials 14/60 done, 2 running | about 41 min left

On a terminal it is redrawn in place every second; elsewhere (a log file, ``ray job logs``) it is a
plain line every 30 s and at the end of each fold. The estimate scales the wall time per trial
finished in this run (since the first trial started) to the trials left.

Events come from wherever a fold runs. In the driver's process they go straight to its
:class:`Progress`; a fold in a process of its own (folds at once) sends them through a
multiprocessing queue that the driver's reader thread hands to the same Progress (:func:`connect`,
:func:`relay`). Lines about trials and stages are events too (:func:`say`), so only the driver
writes to the terminal and the status line stays below them. Events are idempotent (sets of
trial ids), so a trial that Tune starts again, or that ``--resume`` finds finished, counts once.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Iterable

from ray import tune

from chromtune.progress import StatusLine, clock, left_text

_sink: Callable[[tuple], None] | None = None  # where this process's events go (None: printed plainly)

def emit(event: tuple) -> None:
    """Hand an event to the sweep's Progress (in this process or through the driver's queue)."""
    if _sink is not None:
        _sink(event)


def say(text: str) -> None:
    """Print a line of the sweep (above its status line when one is shown)."""
    if _sink is None:
        print(text, flush=True)
    else:
        _sink(("line", text))


def connect(queue) -> None:
    """In a fold process: send this process's events to the driver through ``queue``."""
    global _sink
    _sink = queue.put


def relay(queue, progress: "Progress") -> threading.Thread:
    """In the driver: a thread that hands the fold processes' events to ``progress`` until it
    reads ``None``."""
    def run():
        for event in iter(queue.get, None):
            progress.handle(event)

    thread = threading.Thread(target=run, name="chromtune-progress-relay", daemon=True)
    thread.start()
    return thread


class Progress(StatusLine):
    """A sweep's counters and the status line drawn from them (thread-safe); a context manager
    that draws the line while it is open and makes itself this process's event sink."""

    def __init__(self, folds: int, stage_trials: dict[int, int], label: str = "", stream=None,
                 interval: float | None = None, clock_fn: Callable[[], float] = time.monotonic):
        super().__init__(stream or sys.stdout, interval, clock_fn=clock_fn)
        self.folds, self.stage_trials, self.label = folds, dict(stage_trials), label
        self.first_start: float | None = None  # the first trial started in this run
        self.folds_done: set[int] = set()
        self.errors: dict[int, str] = {}  # fold -> the one-line error (a UserError) that stopped its process
        self.stages_done: set[tuple[int, int]] = set()
        self.finished: dict[tuple[int, int], set[str]] = {}
        self.running: set[tuple[int, int, str]] = set()
        self.ended_here: set[tuple[int, int, str]] = set()  # finished in this run: the estimate's basis

    # events -----------------------------------------------------------------------------------
    def handle(self, event: tuple) -> None:
        kind, *rest = event
        with self._lock:
            if kind == "line":
                self.write_line(rest[0])
            elif kind == "start":
                fold, stage, trial = rest
                if trial not in self.finished.get((fold, stage), ()):
                    self.running.add((fold, stage, trial))
                    self.first_start = self.first_start or self.now()
            elif kind == "end":
                fold, stage, trial = rest
                self.running.discard((fold, stage, trial))
                if trial not in self.finished.setdefault((fold, stage), set()):
                    self.finished[(fold, stage)].add(trial)
                    self.ended_here.add((fold, stage, trial))
            elif kind == "stage":  # a stage begins: the trials that finished before it (--resume)
                fold, stage, finished = rest
                self.finished[(fold, stage)] = set(finished)
            elif kind == "stage_done":
                self.stages_done.add(tuple(rest))
                self.running = {key for key in self.running if key[:2] != tuple(rest)}
            elif kind == "error":
                self.errors[rest[0]] = rest[1]
            elif kind == "fold_done" and rest[0] not in self.folds_done:  # a resumed sweep re-announces its done folds
                self.folds_done.add(rest[0])
                if not self.tty:  # a log also gets the line at each fold's end, however short the fold
                    self.draw()

    def seed(self, stages_done: Iterable[tuple[int, int]], finished: dict[tuple[int, int], set[str]],
             folds_done: Iterable[int]) -> None:
        """What an earlier run of this sweep finished (``--resume``): it counts as done from the start."""
        with self._lock:
            self.stages_done |= set(stages_done)
            for key, trials in finished.items():
                self.finished.setdefault(key, set()).update(trials)
            self.folds_done |= set(folds_done)

    # the line ---------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return self.folds * sum(self.stage_trials.values())

    def done_trials(self) -> int:
        count = 0
        for fold in range(self.folds):
            for stage, size in self.stage_trials.items():
                done = (fold, stage) in self.stages_done or fold in self.folds_done
                count += size if done else min(size, len(self.finished.get((fold, stage), ())))
        return count

    def status(self) -> str:
        with self._lock:
            now = self.now()
            done, total = self.done_trials(), self.total
            parts = ([self.label] if self.label else []) + [
                clock(now - self.started), f"folds {len(self.folds_done)}/{self.folds}",
                f"trials {done}/{total} done, {len(self.running)} running"]
            if self.ended_here and self.first_start is not None and done < total:
                per_trial = (now - self.first_start) / len(self.ended_here)
                parts.append(left_text(per_trial * (total - done)))
            elif done < total:
                parts.append("estimate after the first trial")
            return " | ".join(parts)

    def __enter__(self) -> "Progress":
        global _sink
        _sink = self.handle
        self.open()  # draws the first line at once
        return self

    def __exit__(self, *exc) -> None:
        global _sink
        self.close(final=True)  # an interrupted sweep shows where it stopped too
        _sink = None


class ProgressCallback(tune.Callback):
    """A Tune callback in the process running a (fold, stage) experiment: its trials' starts and
    ends, as events. It holds only the fold and stage, so it pickles with Tune's state and works
    again in whatever process restores it."""

    def __init__(self, fold: int, stage: int):
        self.fold, self.stage = fold, stage

    def on_trial_start(self, iteration, trials, trial, **info):
        emit(("start", self.fold, self.stage, trial.trial_id))

    def on_trial_complete(self, iteration, trials, trial, **info):
        emit(("end", self.fold, self.stage, trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        emit(("end", self.fold, self.stage, trial.trial_id))
