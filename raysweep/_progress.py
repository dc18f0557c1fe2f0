"""One compact progress line for the sweep, instead of Ray Tune's tables.

A Ray Tune callback (it runs in the driver) that counts trials as they start, finish or fail and prints, at most
every ``interval`` seconds or when a rung ends, one line to stderr (rewritten in place on a terminal) such as::

    [raysweep] rung 2/3 n=6,667 | 40/132 done, 2 running, 0 failed | 264 stopped | best silhouette: kmeans k=17 0.412
"""

from __future__ import annotations

import math
import sys
import time

from ray.tune import Callback


class ProgressLine(Callback):
    """Prints the state of one rung's trials as a single throttled line.

    Parameters
    ----------
    rung : int
        Index of the rung (0-based; printed 1-based).
    n_rungs : int
        Number of rungs of the run.
    n : int
        Rows of the rung's sample.
    total : int
        Configs of the rung (including those already finished before a resume).
    stopped : int
        Configs stopped at earlier rungs (not promoted).
    already_done : int, default=0
        Configs of this rung finished by an earlier, interrupted run.
    interval : float, default=2.0
        Minimum seconds between two lines while nothing finishes.
    stream : file, default=sys.stderr
    """

    def __init__(self, rung, n_rungs, n, total, stopped, already_done=0, interval=2.0, stream=None):
        self.rung, self.n_rungs, self.n, self.total, self.stopped = rung, n_rungs, n, total, stopped
        self.done, self.failed = already_done, 0
        self.running: set[str] = set()
        self.best: tuple[float, str, int] | None = None
        self.interval = interval
        self._stream = stream  # None: sys.stderr, looked up when printing (Tune pickles its callbacks)
        self._last_print = -math.inf
        self._last_line = ""

    @property
    def stream(self):
        return sys.stderr if self._stream is None else self._stream

    def line(self) -> str:
        """The current progress line (without a newline)."""
        best = "-" if self.best is None else f"{self.best[1]} k={self.best[2]} {self.best[0]:.3f}"
        return (f"[raysweep] rung {self.rung + 1}/{self.n_rungs} n={self.n:,} | {self.done}/{self.total} done, "
                f"{len(self.running)} running, {self.failed} failed | {self.stopped} stopped | "
                f"best silhouette: {best}")

    def _tty(self):
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def _emit(self, force=False):
        now = time.monotonic()
        line = self.line()
        if line == self._last_line or (not force and now - self._last_print < self.interval):
            return
        if self._tty():
            # On a terminal the line rewrites itself in place.
            self.stream.write("\r" + line.ljust(len(self._last_line)))
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)
        self._last_print, self._last_line = now, line

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._emit()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        silhouette = result.get("silhouette")
        if silhouette is not None and not math.isnan(silhouette):
            if self.best is None or silhouette > self.best[0]:
                self.best = (silhouette, result["model"], result["k"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.done += 1
        self._emit()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._emit(force=True)

    def on_experiment_end(self, trials, **info):
        self._emit(force=True)
        if self._tty():
            self.stream.write("\n")
            self.stream.flush()
