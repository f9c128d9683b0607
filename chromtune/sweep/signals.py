"""Stopping a sweep: SIGINT (Ctrl-C) or SIGTERM ends it cleanly and resumably; a second one at once.

The first signal only sets :data:`STOP`. The sweep checks it between steps (before a stage, before
a fold's test evaluation), and inside a running Tune experiment :class:`StopTune` (a callback,
so it runs in Tune's own loop) hands it to Tune as SIGUSR1 — the signal Tune documents for
ending a run gracefully: it saves its experiment state, stops the running trials (each keeps
its last epoch checkpoint) and returns. The sweep then raises :class:`Interrupted` instead of
selecting a winner, so the stage is neither selected nor marked done and no later stage starts.

A second signal exits at once (status 130) after ``on_exit`` hooks that must not wait (the lease
is released, fold processes are killed); what is on disk is then what a killed driver leaves,
which ``--resume`` handles.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Callable

from ray import tune

from chromtune.errors import user_error_in

EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """The sweep stopped on a signal; the message says what was interrupted."""


class StopRequest:
    """Whether a stop was asked for, and what runs on an immediate exit."""

    def __init__(self):
        self.event = threading.Event()
        self.tune_stopped = False  # set when a running Tune experiment was told to stop
        self.resume_hint = ""
        self.reason = ""
        self.on_exit: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.event.set()

    def check(self, what: str) -> None:
        """Raise :class:`Interrupted` before starting ``what`` if a stop was asked for."""
        if self.requested:
            raise Interrupted(what)

    def install(self, resume_hint: str, signals=(signal.SIGINT, signal.SIGTERM)) -> None:
        """Handle ``signals`` in this (main) thread; Tune must not take SIGINT over."""
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.resume_hint = resume_hint
        for sig in signals:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if not self.requested:  # the one line comes when the sweep has stopped
            self.request(name)
            return
        for hook in self.on_exit:
            try:
                hook()
            except Exception:  # exiting at once: nothing may hold this up
                pass
        if self.resume_hint:
            print(f"chromtune: interrupted at once; continue with: {self.resume_hint}", file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)


STOP = StopRequest()


class StopTune(tune.Callback):
    """Ends the running Tune experiment gracefully once :data:`STOP` is set (from Tune's loop,
    where Tune's SIGUSR1 handler is installed)."""

    def __init__(self):
        self.sent = False

    def on_step_begin(self, iteration, trials, **info):
        if STOP.requested and not self.sent and signal.getsignal(signal.SIGUSR1) not in (
                signal.SIG_DFL, signal.SIG_IGN, None):
            self.sent = STOP.tune_stopped = True
            signal.raise_signal(signal.SIGUSR1)


class _Hide(logging.Filter):
    """Drops a logger's records that contain any of ``texts``."""

    def __init__(self, *texts: str):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.texts)


class _UserErrorsInOneLine(logging.Filter):
    """Tune's report of a failed trial in one line when a UserError failed it (bad input, an undefined
    metric: its message says all); any other failure keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = user_error_in(record.exc_info[1]) if record.exc_info and record.exc_info[1] else None
        if found is not None:
            record.msg, record.args = f"{record.getMessage()}: {found}", ()
            record.exc_info, record.exc_text = None, None
        return True


# Tune's own stop notes name ``Tuner.restore(...)``, the wrong instruction for this tool (``--resume``
# is the right one, and the sweep prints it).
TUNE_STOP_HINTS = ("Stop signal received", "Tuner.restore", "Trials did not complete", "Failed to fetch metrics")


def quiet_libraries() -> None:
    """Concise progress: our own lines, not Tune's tables, Optuna's study notes, sync warnings or
    Tune's stop hints, nor notes that mean nothing to a user (each silenced at its logger, in the
    sweep's processes only)."""
    import optuna

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):  # a stopped trial may have no result yet
        logging.getLogger(name).addFilter(_Hide(*TUNE_STOP_HINTS))
    # The private local Ray keeps its token authentication on; the note that it is on is Ray's.
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
        _Hide("Token authentication is enabled for this Ray cluster"))
    # "Creating initial MLflow database tables...", "Updating database tables": a new sqlite store.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    # Optuna's GridSampler calls Study.stop() once the grid is used up; outside Study.optimize that
    # raises, and OptunaSearch logs it once per stage. Tune stops at the grid's size anyway.
    logging.getLogger("ray.tune.search.optuna.optuna_search").addFilter(_Hide("Study.stop"))
    # "The `on_step_begin` operation took 0.6 s, which may be a performance bottleneck": the
    # driver's MLflow logging on a busy machine, not something a user can act on.
    logging.getLogger("ray.tune.utils.util").addFilter(_Hide("may be a performance bottleneck"))
    logging.getLogger("ray.tune.execution.tune_controller").addFilter(_UserErrorsInOneLine())
