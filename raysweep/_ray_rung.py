"""One rung of the sweep as Ray Tune experiments, and the Ray around it: connection, callbacks.

:class:`RungExperiments` runs the configs of a :class:`raysweep.halving.Rung` that its ledger lacks: it starts
the rung's shared builds (:class:`raysweep._shared_builds.SharedBuilds`), runs one Ray Tune experiment over the
pending configs (:func:`run_rung_trials`, the trial being :func:`raysweep._trainable.sweep_trial`), and records every
result in the ledger as it reaches the driver (:func:`ledger_callback`), with :class:`raysweep._progress.ProgressLine`
instead of Tune's tables. A config left without a result (a lost node that Tune could not retry) gets a new
experiment, up to ``RUNG_ATTEMPTS`` per command.

Ray (and :mod:`raysweep._trainable`, which imports it) is imported inside the functions: a command that stops
on bad input never imports it, and a test's patch of a ``_trainable`` function reaches every trial.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass

from raysweep._shared_builds import SharedBuilds
from raysweep.families import REGISTRY
from raysweep.halving import Rung
from raysweep.run_folder import (BUILDS, LEADERBOARD_COLUMNS, Ledger, RunFolder, RunStorage, StorageUnavailable,
                                 append_line, config_key, rung_ledger)
from raysweep.scores import exact_silhouette_limit

RUNG_ATTEMPTS = 3  # experiments per rung and command for configs left without a result (lost nodes)
TRIAL_RETRIES = 2  # Ray Tune's own retries of a trial whose actor or node was lost (FailureConfig.max_failures)
MIRROR_SECONDS = 5.0  # longest time a trial result stays only on the head's disk when --storage is a URI


class SweepInterrupted(RuntimeError):
    """A rung ended with configs that neither finished nor failed (Ctrl-C): rerun the command to resume."""


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a run is given besides its config: the seed and how silhouette is scored.

    Attributes
    ----------
    seed : int, seed of the models
    query_points : int, silhouette query points above the exact limit
    exact_max_n : int, exact silhouette at or below this many rows on the top rung
    promotion_exact_max_n : int, the same on a lower rung (capped by ``exact_max_n``)
    """

    seed: int
    query_points: int
    exact_max_n: int
    promotion_exact_max_n: int

    def exact_limit(self, rung: Rung) -> int:
        """Exact silhouette at or below this many rows of ``rung`` (:func:`raysweep.scores.exact_silhouette_limit`)."""
        return exact_silhouette_limit(self.exact_max_n, self.promotion_exact_max_n, rung.top)


# --------------------------------------------------------------------------------------------- Ray itself


def connect(address, num_cpus):
    """Join the cluster at ``address`` or start a local Ray; returns True if this call started/joined it."""
    import ray

    if ray.is_initialized():
        return False
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False)  # None: RAY_ADDRESS, as inside a Ray job
    else:
        # "local" starts a new instance: without it ray.init joins any Ray already running on the machine.
        # The dashboard stays off: an exposed dashboard is remote code execution (CVE-2023-48022).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def quiet_ray_output():
    """One progress line and one-line errors instead of Ray Tune's tables, tracebacks and colour codes."""
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    # On Ctrl-C these two would suggest Tuner.restore and list the unfinished trials; our own message says
    # how to resume instead (the same command).
    for noisy in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Tune logs a failed upload of its experiment state, and Ray a trial folder it cannot create (storage
    # unreachable), with a traceback; one line is enough, and our own error names the URI.
    for storage_logger in ("ray.tune.execution.experiment_state", "ray.train._internal.storage"):
        logging.getLogger(storage_logger).addFilter(without_traceback)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, our progress line instead
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's own messages (a lost node) without colour codes


def without_traceback(record):
    """Logging filter: a record's exception as its last line appended to the message, instead of a traceback."""
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text = str(exc).strip()
        record.msg = f"{record.getMessage()}{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"
        record.args, record.exc_info, record.exc_text = None, None, None
    return True


# --------------------------------------------------------------------------------------------- one rung


class RungExperiments:
    """Computes rungs of one run: Ray Tune experiments over the configs each rung's ledger lacks.

    Parameters
    ----------
    folder : RunFolder
    store : RunStorage, where Ray Tune writes and the ledger is mirrored
    builds : SharedBuilds
    trial : TrialSettings
    progress : bool, print the progress line to stderr
    """

    def __init__(self, folder: RunFolder, store: RunStorage, builds: SharedBuilds, trial: TrialSettings,
                 progress: bool):
        self.folder, self.store, self.builds, self.trial, self.progress = folder, store, builds, trial, progress

    def run(self, rung: Rung) -> list[dict]:
        """The leaderboard rows of every config of ``rung``, resuming its ledger.

        Raises SweepInterrupted when configs are left without a result (Ctrl-C), RuntimeError when every trial
        of the rung raised.
        """
        import ray

        from raysweep import _trainable
        from raysweep._progress import ProgressLine

        ledger = Ledger(self.folder / rung_ledger(rung.index))
        if not ledger.path.exists():
            self.store.fetch(rung_ledger(rung.index))  # a new head: the finished trials of a cut rung
        cut = ledger.repair()
        if cut:
            print(f"[raysweep] {ledger.path}: ignored its last line ({cut} bytes), cut while being written when the "
                  "command was killed; that trial runs again", file=sys.stderr)
        done, attempts = ledger.read()
        pending = [c for c in rung.configs if config_key(c["model"], c["k"]) not in done]
        failed = {}
        # A trial that Ray Tune could not retry (e.g. it was handed a reused actor on a node that had just died)
        # ends without a result; such configs get a fresh experiment, a bounded number of times per command.
        # A trial that raised keeps its error row and is not run again.
        for _ in range(RUNG_ATTEMPTS):
            if not pending:
                break
            structures = sorted({_trainable.SHARED_STRUCTURE[c["model"]] for c in pending
                                 if c["model"] in _trainable.SHARED_STRUCTURE})
            # The builds start before the trials and are not waited for: trials of other models run meanwhile.
            refs = {"X": self.builds.x_ref, **self.builds.launch(structures, rung.n)}
            distance_refs, distance_info = ({}, None) if rung.n > self.trial.exact_limit(rung) else (
                self.builds.launch_distance_matrix(rung.n, len(pending)))
            ledger.append({"event": "attempt", "attempt": attempts, "pending": len(pending)})
            experiment = f"rung_{rung.index}" if attempts == 0 else f"rung_{rung.index}-resume{attempts}"
            callbacks = [ledger_callback(ledger, attempts, self.store, rung_ledger(rung.index))]
            if self.progress:
                callbacks.append(ProgressLine(rung.index, rung.n_rungs, rung.n, len(rung.configs), rung.stopped,
                                              already_done=len(done)))
            raised = run_rung_trials(rung, pending, {**refs, **distance_refs}, self.store, experiment, callbacks,
                                     self.trial)
            failed.update({config_key(row["model"], row["k"]): row for row in raised})
            for structure in structures:
                append_line(self.folder / BUILDS, {"rung": rung.index, **ray.get(refs[structure])[1]})
            if distance_info is not None:
                append_line(self.folder / BUILDS, {"rung": rung.index, **ray.get(distance_info)})
            self.store.mirror([BUILDS])
            done, attempts = ledger.read()
            finished = done.keys() | failed.keys()
            pending = [c for c in rung.configs if config_key(c["model"], c["k"]) not in finished]
        keys = [config_key(c["model"], c["k"]) for c in rung.configs]
        rows = [done[key] for key in keys if key in done] + [row for key, row in failed.items() if key not in done]
        if len(rows) != len(rung.configs):
            raise SweepInterrupted(f"interrupted in rung {rung.index}: {len(rows)} of {len(rung.configs)} configs "
                                   f"finished, kept in {ledger.path}; run the same command again to resume")
        if all(str(r.get("status", "")).startswith("error") for r in rows):
            raise RuntimeError(f"rung {rung.index}: every trial failed; first error: {rows[0]['status']}")
        return rows


def run_rung_trials(rung, pending, refs, store, experiment, callbacks, trial):
    """One Ray Tune experiment over ``pending`` configs of ``rung``; returns rows of the trials that raised.

    Parameters
    ----------
    rung : Rung
    pending : list of dict, ``{"model", "k"}`` to run
    refs : dict, object references the trials read (``"X"``, one per shared structure, the distance matrix)
    store : RunStorage, where Ray Tune writes the experiment
    experiment : str, its name
    callbacks : list of ray.tune.Callback
    trial : TrialSettings
    """
    import ray.exceptions as errors
    from ray import tune
    from ray.tune.error import TuneError

    from raysweep import _trainable

    cluster_failures = (errors.RayActorError, errors.NodeDiedError, errors.WorkerCrashedError, errors.ObjectLostError)
    trainable = tune.with_resources(tune.with_parameters(_trainable.sweep_trial, data=refs), {"cpu": 1})
    # Families without a shared structure first, so they run while the ward tree and the CF-tree are being built;
    # within that, the most expensive configs first (largest k, then the family's cost_rank): fewer idle cores at
    # the rung barrier.
    ordered = sorted(pending, key=lambda c: (c["model"] in _trainable.SHARED_STRUCTURE, -c["k"],
                                             REGISTRY[c["model"]].cost_rank))
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(ordered), "rung": rung.index, "n": rung.n, "seed": trial.seed,
                     "query_points": trial.query_points, "exact_max_n": trial.exact_limit(rung)},
        tune_config=tune.TuneConfig(reuse_actors=True, trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(
            name=experiment, storage_path=store.base, storage_filesystem=store.filesystem, verbose=0,
            callbacks=callbacks, failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
        ),
    )
    # Tune's own SIGINT handler ends only the current experiment and returns; Ctrl-C must end the command
    # (the ledger already holds every finished trial, so a rerun resumes).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # A callback's own error (storage unreachable, disk full) ends the experiment; Tune wraps it into a
    # traceback string, so the original is raised instead: it names the file or URI at fault.
    errors_of_callbacks = lambda: [c.error for c in callbacks if getattr(c, "error", None) is not None]  # noqa: E731
    try:
        grid = tuner.fit()
    except TuneError:
        if errors_of_callbacks():
            raise errors_of_callbacks()[0] from None
        raise
    if errors_of_callbacks():
        raise errors_of_callbacks()[0]
    failed = []
    for result in grid:
        # A lost node or actor is the cluster's fault, not the config's: the caller runs that config again.
        if result.error is not None and not isinstance(result.error, cluster_failures):
            config = result.config["trial"]
            failed.append({"model": config["model"], "k": config["k"], "rung": rung.index, "n": rung.n,
                           "status": error_status(result.error),
                           "trial_id": result.metrics.get("trial_id", "") if result.metrics else ""})
    return failed


def ledger_callback(ledger, attempt, store, relative):
    """A Ray Tune callback appending every trial result to ``ledger`` and mirroring it to ``store``.

    Parameters
    ----------
    ledger : Ledger
    attempt : int, the experiment's attempt number, recorded with each result
    store : RunStorage (or anything with ``mirror(relative_paths)``)
    relative : str, the ledger's path relative to the run folder
    """
    from ray.tune import Callback

    class LedgerCallback(Callback):
        """Appends every trial result to the rung's ledger as it reaches the driver, and mirrors the ledger.

        With a storage URI the ledger is copied to the bucket at most every ``MIRROR_SECONDS`` (checked at
        every step of Tune's loop, so also when no result arrives) and when the experiment ends: a lost head
        loses at most the results of the last ``MIRROR_SECONDS`` plus one upload. An error here (storage
        unreachable, disk full) is kept in ``error`` and ends the experiment; Tune itself reports it only as
        a traceback string.
        """

        def __init__(self):
            self.error = None
            self._unmirrored, self._mirrored_at = False, time.monotonic()

        def _mirror(self, force=False):
            if self._unmirrored and (force or time.monotonic() - self._mirrored_at >= MIRROR_SECONDS):
                store.mirror([relative])
                self._unmirrored, self._mirrored_at = False, time.monotonic()

        def _guarded(self, action):
            try:
                action()
            except (OSError, StorageUnavailable) as exc:
                self.error = exc
                raise

        def on_trial_result(self, iteration, trials, trial, result, **info):
            row = {column: result.get(column) for column in LEADERBOARD_COLUMNS if column != "trial_id"}
            self._guarded(lambda: ledger.append({"event": "result", **row, "trial_id": trial.trial_id,
                                                 "attempt": attempt}))
            self._unmirrored = True

        def on_step_end(self, iteration, trials, **info):
            self._guarded(self._mirror)

        def on_experiment_end(self, trials, **info):
            self._guarded(lambda: self._mirror(force=True))

    return LedgerCallback()


_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_status(error):
    """One plain line for a trial that raised: ``error: <type>: <first line>``, never a traceback or colour codes.

    Ray wraps the trial's exception in a RayTaskError whose text starts with the task name in terminal colours
    and holds the remote traceback; its ``cause`` is the trial's own exception.
    """
    cause = getattr(error, "cause", None) or error
    lines = [line.strip() for line in _TERMINAL_CODES.sub("", str(cause)).splitlines() if line.strip()]
    return f"error: {type(cause).__name__}: {lines[0] if lines else 'no message'}"


def _trial_dirname(trial):
    return f"{trial.config['trial']['model']}_k{trial.config['trial']['k']}_{trial.trial_id}"
