"""The sweep: Ray Tune over model families x k with early stopping on nested samples.

``python -m raysweep.tune [--features F] [--fraction 0.1] [--models kmeans,birch,agglomerative,gmm] [--k-min 2]
[--k-max 100] [--exhaustive] [--results results] [--name RUN] [--address ADDR] [--storage URI] [--seed 0]``

Exit status: 0 done; 2 bad input, or the run is in use by another command (the message names the lock file);
3 stopped by the environment (storage unreachable, disk full: the message names the URI or file), everything
finished kept; 130 interrupted. After 3 or 130, the same command resumes.

Early stopping is synchronous successive halving with an explicit rung barrier (Jamieson & Talwalkar 2016,
"Non-stochastic best arm identification and hyperparameter optimization"): rung r is one Ray Tune experiment over
the configs still alive, on the first n_r rows of one seeded permutation; when every trial of the rung has ended,
the driver ranks them with :func:`raysweep.selection.rank_configs` (the winner rule itself) and promotes the top
``ceil(alive / eta)`` to rung r + 1. Ray's ASHA decides asynchronously, on whichever trials reached a rung first,
so its outcome depends on trial order and worker count; with the barrier the same inputs promote the same configs
on 2 cores or 200. ``--exhaustive`` runs every config at the top rung only: the reference.

Resume: every trial result reaching the driver is appended at once (fsync'd) to
``RESULTS/RUN/rungs/rung_<r>.trials.jsonl`` (the ledger); a finished rung is written to ``rung_<r>.parquet``. A rerun
with the same settings reads finished rungs back and, for an interrupted rung, starts a new Ray Tune experiment over
the configs the ledger lacks. (``Tuner.restore`` is not used: Tune snapshots its experiment state on a throttle of
>= 10 s, so trials that ended after the last snapshot would be computed again; the ledger records each one as it
ends.) With a storage URI the ledger is mirrored to ``<storage>/<RUN>/rungs/`` at most ``MIRROR_SECONDS`` after a
result, so a new head (an empty ``--results``) resumes a cut rung from the bucket. One command at a time writes a
run folder (``RESULTS/RUN/run.lock``). RELIABILITY.md lists the faults this survives and how each is tested.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from raysweep import samples, selection
from raysweep.halving import ETA, config_grid, config_key, plan_rungs, promote, promotion_record
from raysweep.feature_matrix import read_feature_matrix
from raysweep.families import MODEL_NAMES, REGISTRY
from raysweep.models import AGGLOMERATIVE_MAX_N, GMM_MAX_N, birch_method
from raysweep.scores import DEFAULT_QUERY_POINTS, EXACT_SILHOUETTE_MAX_N
from raysweep.storage import LockHeld, atomic_file, exclusive_lock, filesystem_and_path, is_uri

RUNG_ATTEMPTS = 3  # experiments per rung and command for configs left without a result (lost nodes)
TRIAL_RETRIES = 2  # Ray Tune's own retries of a trial whose actor or node was lost (FailureConfig.max_failures)
MIRROR_SECONDS = 5.0  # longest time a trial result stays only on the head's disk when --storage is a URI
EXIT_RESUMABLE = 3  # stopped by the environment (storage unreachable, disk full), everything finished kept
BUILDS = "rungs/builds.jsonl"  # one line per shared build (ward tree, CF-tree) of every attempt
LEADERBOARD_COLUMNS = ["model", "k", "effective_k", "rung", "n", "silhouette", "silhouette_se", "davies_bouldin",
                       "calinski_harabasz", "min_cluster_size", "min_cluster_share", "max_cluster_share",
                       "fit_seconds", "status", "warnings", "trial_id", "score_seconds", "shared_build", "node_id"]
log = logging.getLogger(__name__)


class SweepInterrupted(RuntimeError):
    """A rung ended with configs that neither finished nor failed (Ctrl-C): rerun the command to resume."""


# --------------------------------------------------------------------------------------------- the plan


def _check_settings(fraction, models, k_min, k_max, eta):
    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    unknown = [m for m in models if m not in REGISTRY]
    if unknown or not models:
        raise ValueError(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(REGISTRY)}")
    if len(set(models)) != len(models):
        raise ValueError(f"--models: a model is listed twice: {','.join(models)}")
    if k_min < 2:
        raise ValueError(f"--k-min must be >= 2 (scores need two clusters), got {k_min}")
    if k_max < k_min:
        raise ValueError(f"--k-max ({k_max}) must be >= --k-min ({k_min})")
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")


def _default_name(features, settings):
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    stem = Path(str(features).split("?")[0]).stem
    mode = "-exhaustive" if settings["exhaustive"] else ""
    return f"{stem}-f{settings['fraction']:g}-k{settings['k_min']}-{settings['k_max']}{mode}-{digest}"


# --------------------------------------------------------------------------------------------- files


def _write_json(path, record):
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _write_table(df, parquet_path, csv_path=None):
    with atomic_file(parquet_path) as tmp:
        df.to_parquet(tmp, index=False)
    if csv_path is not None:
        with atomic_file(csv_path) as tmp:
            df.to_csv(tmp, index=False)


def _append_line(path, record):
    """Append one JSON line and fsync it: once this returns, the record survives a kill of the command."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"could not append to {path}: {exc.strerror}") from exc


class Ledger:
    """Append-only record of one rung's trial results, durable as each one arrives (JSON lines, fsync'd).

    A line is either ``{"event": "attempt", "attempt": j}`` (an experiment over the rung started) or
    ``{"event": "result", ...leaderboard row...}``. A last line cut by a crash is ignored when read, and
    :meth:`repair` removes it before the ledger is appended to again.
    """

    def __init__(self, path):
        self.path = Path(path)

    def read(self):
        """Return ``(results, attempts)``: the result rows by config key, and how many attempts started."""
        results, attempts = {}, 0
        if not self.path.exists():
            return results, attempts
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) - 1:
                    break  # cut by a crash while writing: that result was not recorded
                raise ValueError(f"{self.path}: line {number + 1} is not valid JSON") from None
            if record["event"] == "attempt":
                attempts += 1
            else:
                results[config_key(record["model"], record["k"])] = record
        return results, attempts

    def repair(self):
        """Remove a last line cut by a crash before the ledger is appended to; returns the bytes removed.

        Without this, the next append would join the cut line and leave a corrupt line inside the ledger. A last
        line that is whole JSON but lost only its newline is kept (it is a recorded result) and completed.
        """
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1  # the end of the last complete line
        tail = data[keep:]
        if not tail:
            return 0
        try:
            json.loads(tail)
        except ValueError:
            with open(self.path, "r+b") as handle:
                handle.truncate(keep)
                os.fsync(handle.fileno())
            return len(tail)
        with open(self.path, "ab") as handle:
            handle.write(b"\n")
            os.fsync(handle.fileno())
        return 0

    def append(self, record):
        _append_line(self.path, record)


class StorageUnavailable(RuntimeError):
    """The storage URI could not be reached; everything finished is kept locally and the same command resumes."""


class _Storage:
    """Where Ray Tune writes its experiments, and (for a URI) where the run's result files are mirrored."""

    def __init__(self, storage, run_dir, name):
        self.uri = storage
        self.run_dir = Path(run_dir)
        if storage is None:
            self.filesystem, self.base = None, str((self.run_dir / "ray").resolve())
        else:
            filesystem, path = filesystem_and_path(storage)
            self.filesystem = filesystem if is_uri(storage) else None
            self.base = f"{path.rstrip('/')}/{name}"
        self.mirrors = storage is not None and is_uri(storage)

    def describe(self):
        return self.base if self.uri is None or not is_uri(self.uri) else f"{self.uri} (run folder {self.base})"

    def _unavailable(self, relative, exc):
        # The URI without its query and credentials: scheme://bucket/prefix/RUN/relative.
        where = f"{urlparse(self.uri).scheme}://{self.base}/{relative}"
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return StorageUnavailable(f"storage unreachable at {where} ({reason}); every finished trial is kept in "
                                  f"{self.run_dir / 'rungs'}: run the same command again once it is reachable")

    def mirror(self, relative_paths):
        """Copy files of RESULTS/RUN (relative paths) to ``<storage>/<RUN>/`` when storage is a URI.

        Raises StorageUnavailable naming the URI when the storage cannot be written.
        """
        if not self.mirrors:
            return
        local = pafs.LocalFileSystem()
        for relative in relative_paths:
            source = self.run_dir / relative
            if not source.exists():
                continue
            target = f"{self.base}/{relative}"
            try:
                self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
                pafs.copy_files(str(source.resolve()), target, source_filesystem=local,
                                destination_filesystem=self.filesystem)
            except OSError as exc:
                raise self._unavailable(relative, exc) from None

    def fetch(self, relative):
        """Copy ``<storage>/<RUN>/<relative>`` to RESULTS/RUN when it exists there only; True if fetched.

        Raises StorageUnavailable naming the URI when the storage cannot be read.
        """
        if not self.mirrors:
            return False
        source = f"{self.base}/{relative}"
        try:
            if self.filesystem.get_file_info(source).type != pafs.FileType.File:
                return False
            with atomic_file(self.run_dir / relative) as tmp:
                pafs.copy_files(source, str(tmp.resolve()), source_filesystem=self.filesystem,
                                destination_filesystem=pafs.LocalFileSystem())
        except OSError as exc:
            raise self._unavailable(relative, exc) from None
        return True


# --------------------------------------------------------------------------------------------- Ray


def _ledger_callback(ledger, attempt, store):
    from ray.tune import Callback

    relative = f"rungs/{ledger.path.name}"

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


def _connect(address, num_cpus):
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


class _SharedBuilds:
    """The run's shared structures (ward tree, Birch CF-tree): one Ray task per structure and rung sample.

    A capped ward tree is built on the first ``ward_max_n`` rows of the permutation, the same rows at every rung
    above the cap: it is built at the first such rung and reused at the later ones instead of being rebuilt.
    """

    def __init__(self, x_ref, seed, ward_max_n):
        self.x_ref, self.seed = x_ref, seed
        self.options = {"agglomerative": {"max_n": ward_max_n}}  # the run settings of a family's builds
        self._reusable = {}  # structure -> ref of (built, info) of this command's build that serves larger rungs

    def launch(self, structures, n):
        """Start the builds for a rung of ``n`` rows (in parallel); returns {structure: ref of (built, info)}."""
        import ray

        from raysweep._trainable import SHARED, build_shared, reuse_shared

        refs = {}
        for structure in structures:
            family = SHARED[structure]
            options = self.options.get(family.name, {})
            reusable = family.build_serves_larger_samples(n, **options)
            if reusable and structure in self._reusable:
                refs[structure] = ray.remote(num_cpus=0)(reuse_shared).remote(structure, self._reusable[structure], n)
                continue
            # Submitted before the trials, so it gets a CPU before their actors take them all.
            first = ray.remote(build_shared).options(num_cpus=1, max_retries=0).remote(
                structure, self.x_ref, n, self.seed, **options)
            # The trials read the build through a 0-CPU task that rebuilds it if its node is lost. The lists keep
            # the references from being resolved into values at that task's start.
            refs[structure] = ray.remote(num_cpus=0)(_build_or_rebuild).remote(
                [first], build_shared, structure, [self.x_ref], n, self.seed, options)
            if reusable:
                self._reusable[structure] = refs[structure]
        return refs


def _build_or_rebuild(first, build_shared, structure, x, n, seed, options):
    """The ``(built, info)`` of the build ``first[0]``; if its node was lost, of the same build run again.

    Ray's own retry of a lost task would wait for a free CPU, but every CPU may be held by trials waiting for this
    very structure (a Tune trial is an actor, which keeps its CPU while blocked in ``ray.get``): a deadlock. The
    rebuild asks for no CPU, so it runs beside them; only a lost node leads to it.
    """
    import ray
    import ray.exceptions as errors

    try:
        return ray.get(first[0])
    except errors.RayTaskError:
        raise  # the build itself raised: not the cluster's fault
    except errors.RayError:
        rebuild = ray.remote(build_shared).options(num_cpus=0)
        return ray.get(rebuild.remote(structure, x[0], n, seed, **options))


def _run_rung_trials(rung, n, pending, refs, storage, experiment, callbacks, seed, query_points, exact_max_n):
    """One Ray Tune experiment over ``pending`` configs at one rung; returns rows of the trials that raised."""
    import ray.exceptions as errors
    from ray import tune
    from ray.tune.error import TuneError

    from raysweep._trainable import SHARED_STRUCTURE, sweep_trial

    cluster_failures = (errors.RayActorError, errors.NodeDiedError, errors.WorkerCrashedError, errors.ObjectLostError)
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, data=refs), {"cpu": 1})
    # Families without a shared structure first, so they run while the ward tree and the CF-tree are being built;
    # within that, the most expensive configs first (largest k, then the family's cost_rank): fewer idle cores at
    # the rung barrier.
    ordered = sorted(pending, key=lambda c: (c["model"] in SHARED_STRUCTURE, -c["k"], REGISTRY[c["model"]].cost_rank))
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(ordered), "rung": rung, "n": n, "seed": seed,
                     "query_points": query_points, "exact_max_n": exact_max_n},
        tune_config=tune.TuneConfig(reuse_actors=True, trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(
            name=experiment, storage_path=storage.base, storage_filesystem=storage.filesystem, verbose=0,
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
            failed.append({"model": config["model"], "k": config["k"], "rung": rung, "n": n,
                           "status": error_status(result.error),
                           "trial_id": result.metrics.get("trial_id", "") if result.metrics else ""})
    return failed


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


# --------------------------------------------------------------------------------------------- outputs


_TEXT_COLUMNS = ("status", "warnings", "trial_id", "shared_build", "node_id")


def _frame(rows):
    df = pd.DataFrame(rows)
    for column in LEADERBOARD_COLUMNS:
        if column not in df.columns:
            df[column] = np.nan if column not in _TEXT_COLUMNS else ""
    for column in _TEXT_COLUMNS:
        df[column] = df[column].fillna("").astype(str)
    df["effective_k"] = df["effective_k"].astype("Int64")
    return df[LEADERBOARD_COLUMNS].sort_values(["rung", "model", "k"], kind="stable").reset_index(drop=True)


def _write_tensorboard(leaderboard, out_dir):
    """Per-model curves with k on the x axis.

    One writer per model in ``<out_dir>/<model>/``, with tags ``top_rung/<metric>`` and ``rung_<r>/<metric>``.
    """
    from tensorboardX import SummaryWriter

    from raysweep.storage import atomic_dir

    top = int(leaderboard["rung"].max())
    metrics = ("silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz")
    with atomic_dir(out_dir) as tmp:
        for model, rows in leaderboard.groupby("model"):
            writer = SummaryWriter(logdir=str(tmp / model))
            for _, row in rows.sort_values(["rung", "k"]).iterrows():
                prefix = "top_rung" if row["rung"] == top else f"rung_{int(row['rung'])}"
                for metric in metrics:
                    if pd.notna(row[metric]):
                        writer.add_scalar(f"{prefix}/{metric}", float(row[metric]), global_step=int(row["k"]))
            writer.close()


def _versions():
    names = ("raysweep", "ray", "scikit-learn", "numpy", "scipy", "pandas", "pyarrow")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


# --------------------------------------------------------------------------------------------- the sweep


def run_sweep(features=None, *, fraction=0.1, models=MODEL_NAMES, k_min=2, k_max=100, exhaustive=False,
              k_values=None, results="results", name=None, address=None, storage=None, seed=0, eta=ETA,
              query_points=DEFAULT_QUERY_POINTS, exact_max_n=EXACT_SILHOUETTE_MAX_N, min_rung_size=None,
              agglomerative_max_n=AGGLOMERATIVE_MAX_N, num_cpus=None, progress=True):
    """Run (or resume) a sweep and write its results to ``RESULTS/RUN/``.

    Parameters
    ----------
    features : str or Path, default=None
        Feature matrix (local path or pyarrow URI); None uses the embedded default data set.
    fraction : float, default=0.1
        The top rung holds this fraction of the playlists.
    models : sequence of str, default=MODEL_NAMES
        Names in ``raysweep.families.REGISTRY``; the default is the four families of the design card.
    k_min, k_max : int, default=2, 100
    k_values : sequence of int, default=None
        Search only these k (e.g. a subset for benchmarks); overrides ``k_min`` and ``k_max``.
    exhaustive : bool, default=False
        Every config runs at the top rung only (no early stopping): the reference.
    results : str or Path, default="results"
    name : str, default=None
        Run name; None derives a stable one from the settings, so the same command resumes the same run.
    address : str, default=None
        Ray cluster to join (``auto`` inside one); None starts a local Ray (unless one is already running).
    storage : str, default=None
        Where Ray Tune writes its experiments (local path or URI such as ``s3://bucket/prefix``); None means
        ``RESULTS/RUN/ray``. With a URI, the run's result files are also copied to ``<storage>/<RUN>/``.
    seed : int, default=0
        Seed of the permutation (the samples) and of the models.
    eta : int, default=3
        Successive halving factor: samples grow and configs shrink by it.
    query_points : int, default=DEFAULT_QUERY_POINTS
        Silhouette query points above ``exact_max_n`` rows.
    exact_max_n : int, default=EXACT_SILHOUETTE_MAX_N
        Exact silhouette at or below this many rows.
    min_rung_size : int, default=None
        Smallest sample; None means ``max(20 * k_max, 2000)`` (:func:`raysweep.samples.smallest_rung_size`).
    agglomerative_max_n : int, default=AGGLOMERATIVE_MAX_N
        The ward tree holds at most this many rows of a sample; the others join the nearest centroid of its cut.
    num_cpus : int, default=None
        CPUs of a local Ray (None: all).
    progress : bool, default=True
        Print the compact progress line to stderr.

    Returns
    -------
    run_dir : Path
        ``RESULTS/RUN``, holding leaderboard.parquet/.csv, winner.json, run.json, plots/, tensorboard/, rungs/.
    """
    started = time.perf_counter()
    models = list(models)
    if k_values is not None:
        k_values = sorted({int(k) for k in k_values})
        if not k_values:
            raise ValueError("--k-values: no value given")
        k_min, k_max = k_values[0], k_values[-1]
    _check_settings(fraction, models, k_min, k_max, eta)
    if features is None:
        from raysweep.default_data import default_features

        features = default_features()
    matrix = read_feature_matrix(features)
    n_total = len(matrix.pid)
    configs = config_grid(models, k_values or range(k_min, k_max + 1))
    sizes = plan_rungs(n_total, fraction, len(configs), k_max, exhaustive, eta, min_rung_size)
    scaling = matrix.scaling()
    settings = {"features": str(features), "n_total": n_total, "feature_columns": matrix.columns,
                "fraction": fraction, "models": models, "k_min": k_min, "k_max": k_max, "exhaustive": exhaustive,
                "seed": seed, "eta": eta, "query_points": query_points, "exact_max_n": exact_max_n,
                "min_rung_size": min_rung_size, "k_values": k_values, "agglomerative_max_n": agglomerative_max_n}
    if matrix.dropped_columns:  # only then, so that runs of other matrices keep their names
        settings["dropped_feature_columns"] = matrix.dropped_columns
    name = name or _default_name(features, settings)
    run_dir = Path(results) / name
    # One writer per run folder: a second command on the same run name refuses instead of sharing the ledger.
    with exclusive_lock(run_dir / "run.lock", f"run {name!r}") as stale:
        if stale is not None:
            print(f"[raysweep] {run_dir / 'run.lock'}: taking over the lock of pid {stale['pid']} on host "
                  f"{stale['host']}, which ended without releasing it", file=sys.stderr)
        _check_same_run(run_dir / "rungs" / "settings.json", settings, name)
        store = _Storage(storage, run_dir, name)
        _write_json(run_dir / "rungs" / "settings.json", settings)
        store.mirror(["rungs/settings.json"])
        if not (run_dir / BUILDS).exists():
            store.fetch(BUILDS)  # a new head: the builds of the rungs the first head ran
        Ledger(run_dir / BUILDS).repair()  # a line cut by a kill: that build's record is lost, not its rung

        order = samples.permutation(n_total, seed)
        X = np.ascontiguousarray(matrix.scaled()[order[: sizes[-1]]])

        logging.getLogger("ray.tune").setLevel(logging.WARNING)
        # On Ctrl-C these two would suggest Tuner.restore and list the unfinished trials; our own message says
        # how to resume instead (the same command).
        for noisy in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        # Tune logs a failed upload of its experiment state, and Ray a trial folder it cannot create (storage
        # unreachable), with a traceback; one line is enough, and our own error names the URI.
        for storage_logger in ("ray.tune.execution.experiment_state", "ray.train._internal.storage"):
            logging.getLogger(storage_logger).addFilter(_without_traceback)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, our progress line instead
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's own messages (a lost node) without colour codes
        started_ray = _connect(address, num_cpus)
        import ray

        try:
            x_ref = ray.put(X)  # once per run: every rung's trials and builds read their prefix of it
            builds = _SharedBuilds(x_ref, seed, agglomerative_max_n)
            alive = configs
            rung_records, frames = [], []
            stopped = 0
            for rung, n in enumerate(sizes):
                rows = _run_or_read_rung(run_dir, store, rung, n, alive, len(sizes), stopped, builds, seed,
                                         query_points, exact_max_n, progress)
                frame = _frame(rows)
                frames.append(frame)
                top = rung == len(sizes) - 1
                promoted = [] if top else promote(frame, eta)
                rung_records.append({"rung": rung, "n": n, "configs": len(alive), "promoted": len(promoted),
                                     "silhouette": "exact" if n <= exact_max_n else
                                     f"query estimator, first {min(query_points, n):,} rows of the sample"})
                if not top:
                    stopped += len(alive) - len(promoted)
                    alive = promoted
        finally:
            if started_ray:
                ray.shutdown()

        leaderboard = pd.concat(frames, ignore_index=True)
        _write_outputs(run_dir, store, leaderboard, rung_records, settings, scaling, time.perf_counter() - started)
    return run_dir


def _without_traceback(record):
    """Logging filter: a record's exception as its last line appended to the message, instead of a traceback."""
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text = str(exc).strip()
        record.msg = f"{record.getMessage()}{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"
        record.args, record.exc_info, record.exc_text = None, None, None
    return True


# Settings recorded only since a later version, with the value every run written before then used.
_SETTINGS_ADDED_LATER = {"agglomerative_max_n": AGGLOMERATIVE_MAX_N}


def _check_same_run(path, settings, name):
    if not path.exists():
        return
    previous = {**_SETTINGS_ADDED_LATER, **json.loads(path.read_text())}
    differ = sorted(key for key in set(previous) | set(settings) if previous.get(key) != settings.get(key))
    if differ:
        raise ValueError(f"run {name!r} already exists with other settings ({', '.join(differ)} differ; see {path}): "
                         "pass another --name, or the same settings to resume it")


def _run_or_read_rung(run_dir, store, rung, n, alive, n_rungs, stopped, builds, seed, query_points, exact_max_n,
                      progress):
    """The leaderboard rows of one rung: read back when finished earlier, else computed (resuming a ledger)."""
    from raysweep._progress import ProgressLine
    from raysweep._trainable import SHARED_STRUCTURE

    relative = f"rungs/rung_{rung}.parquet"
    path = run_dir / relative
    if path.exists() or store.fetch(relative):
        rows = pd.read_parquet(path)
        _check_rung_configs(rows, alive, path)
        return rows.to_dict("records")

    ledger = Ledger(run_dir / "rungs" / f"rung_{rung}.trials.jsonl")
    if not ledger.path.exists():
        store.fetch(f"rungs/{ledger.path.name}")  # a new head: the finished trials of a cut rung
    cut = ledger.repair()
    if cut:
        print(f"[raysweep] {ledger.path}: ignored its last line ({cut} bytes), cut while being written when the "
              "command was killed; that trial runs again", file=sys.stderr)
    done, attempts = ledger.read()
    pending = [c for c in alive if config_key(c["model"], c["k"]) not in done]
    failed = {}
    # A trial that Ray Tune could not retry (e.g. it was handed a reused actor on a node that had just died)
    # ends without a result; such configs get a fresh experiment, a bounded number of times per command.
    # A trial that raised keeps its error row and is not run again.
    for _ in range(RUNG_ATTEMPTS):
        if not pending:
            break
        import ray

        structures = sorted({SHARED_STRUCTURE[c["model"]] for c in pending if c["model"] in SHARED_STRUCTURE})
        # The builds start before the trials and are not waited for: trials of other models run meanwhile.
        refs = {"X": builds.x_ref, **builds.launch(structures, n)}
        ledger.append({"event": "attempt", "attempt": attempts, "pending": len(pending)})
        experiment = f"rung_{rung}" if attempts == 0 else f"rung_{rung}-resume{attempts}"
        callbacks = [_ledger_callback(ledger, attempts, store)]
        if progress:
            callbacks.append(ProgressLine(rung, n_rungs, n, len(alive), stopped, already_done=len(done)))
        raised = _run_rung_trials(rung, n, pending, refs, store, experiment, callbacks, seed, query_points,
                                  exact_max_n)
        failed.update({config_key(row["model"], row["k"]): row for row in raised})
        for structure in structures:
            _append_line(run_dir / BUILDS, {"rung": rung, **ray.get(refs[structure])[1]})
        store.mirror([BUILDS])
        done, attempts = ledger.read()
        finished = done.keys() | failed.keys()
        pending = [c for c in alive if config_key(c["model"], c["k"]) not in finished]
    rows = [done[config_key(c["model"], c["k"])] for c in alive if config_key(c["model"], c["k"]) in done]
    rows += [row for key, row in failed.items() if key not in done]
    if len(rows) != len(alive):
        raise SweepInterrupted(f"interrupted in rung {rung}: {len(rows)} of {len(alive)} configs finished, kept in "
                               f"{ledger.path}; run the same command again to resume")
    if all(str(r.get("status", "")).startswith("error") for r in rows):
        raise RuntimeError(f"rung {rung}: every trial failed; first error: {rows[0]['status']}")
    frame = _frame(rows)
    _write_table(frame, path)
    store.mirror([relative])
    return frame.to_dict("records")


def _check_rung_configs(rows, alive, path):
    found = {config_key(m, k) for m, k in zip(rows["model"], rows["k"])}
    expected = {config_key(c["model"], c["k"]) for c in alive}
    if found != expected:
        raise ValueError(f"{path}: holds other configs than this run promotes to it; the run folder is "
                         "inconsistent: delete it or use another --name")


def _write_outputs(run_dir, store, leaderboard, rung_records, settings, scaling, seconds):
    from raysweep.plots import write_plots

    _write_table(leaderboard, run_dir / "leaderboard.parquet", run_dir / "leaderboard.csv")
    top = leaderboard[leaderboard["rung"] == leaderboard["rung"].max()]
    k_values = settings["k_values"] or [settings["k_min"], settings["k_max"]]
    winner = selection.select_winner(top, k_range=(min(k_values), max(k_values)))
    eta = settings["eta"]
    winner["promotion"] = {**promotion_record(eta), "exhaustive": settings["exhaustive"]}
    _write_json(run_dir / "winner.json", winner)
    plots = write_plots(leaderboard, rung_records, run_dir / "plots")
    _write_tensorboard(leaderboard, run_dir / "tensorboard")

    # Every build of every attempt (a rung resumed after a crash builds again, once); counts leave out a capped
    # ward tree reused from an earlier rung (listed in builds with "reused": true).
    all_builds = _read_builds(run_dir / BUILDS)
    counts = {}
    for build in all_builds:
        if build.get("reused"):
            continue
        counts.setdefault(build["structure"], {}).setdefault(str(build["rung"]), 0)
        counts[build["structure"]][str(build["rung"])] += 1
    ward = [b for b in all_builds if b["structure"] == "ward_tree"]
    birch = [b for b in all_builds if b["structure"] == "birch_cf_tree"]
    run_record = {
        "name": run_dir.name,
        "features": settings["features"],
        "feature_columns": settings["feature_columns"],
        "dropped_feature_columns": settings.get("dropped_feature_columns", {}),
        "scaling": scaling,
        "seed": settings["seed"],
        "fraction": settings["fraction"],
        "n_total": settings["n_total"],
        "rungs": rung_records,
        "promotion": {**promotion_record(eta), "eta": eta},
        "models": settings["models"],
        "k_min": settings["k_min"],
        "k_max": settings["k_max"],
        "k_values": settings["k_values"] or list(range(settings["k_min"], settings["k_max"] + 1)),
        "exhaustive": settings["exhaustive"],
        "agglomerative_method": {str(b["rung"]): b["agglomerative_method"] for b in ward},
        "birch_threshold": {str(b["rung"]): b["birch_threshold"] for b in birch},
        "birch_method": {str(b["rung"]): birch_method(b["n"])["description"] for b in birch},
        "gmm_method": (f"GaussianMixture fitted on at most the first {GMM_MAX_N:,} rows of the sample (a uniform "
                       "random subset); every row labelled by predict"),
        "silhouette": {"exact_max_n": settings["exact_max_n"], "query_points": settings["query_points"],
                       "estimator": "above exact_max_n rows: the first query_points rows of the rung's sample "
                                    "(a uniform random subset, the same playlists for every config and rung), "
                                    "each scored exactly against all n rows; SE with finite-population correction",
                       "per_rung": {str(r["rung"]): r["silhouette"] for r in rung_records}},
        "shared_builds": {"counts": counts, "builds": all_builds},
        "permutation": "numpy.random.default_rng(seed).permutation(n_total); rung r = its first n_r rows",
        "plots": [str(p.relative_to(run_dir)) for p in plots],
        "versions": _versions(),
        "storage": store.describe(),
        "wall_seconds": seconds,
    }
    _write_json(run_dir / "run.json", run_record)
    store.mirror(["leaderboard.parquet", "leaderboard.csv", "winner.json", "run.json", "plots",
                           "tensorboard", "rungs"])


def _read_builds(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------- CLI


def _parser():
    parser = argparse.ArgumentParser(prog="python -m raysweep.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", help="feature matrix (Parquet path or URI); default: the embedded demo data")
    parser.add_argument("--fraction", type=float, default=0.1, help="top sample as a fraction of the playlists")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help=f"comma-separated model families, of {', '.join(REGISTRY)}")
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=100)
    parser.add_argument("--k-values", help="comma-separated k to search instead of --k-min..--k-max")
    parser.add_argument("--exhaustive", action="store_true", help="no early stopping: every config at the top rung")
    parser.add_argument("--results", default="results", help="results folder (RESULTS)")
    parser.add_argument("--name", help="run name (RUN); default derived from the settings, so reruns resume")
    parser.add_argument("--address", help="Ray cluster to join ('auto' inside one); default: start a local Ray")
    parser.add_argument("--storage", help="Ray Tune storage: path or URI (s3://...); default RESULTS/RUN/ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eta", type=int, default=ETA, help="successive halving factor")
    parser.add_argument("--min-rung-size", type=int, help="smallest sample (default max(20 * k_max, 2000))")
    return parser


def _int_list(text):
    if text is None:
        return None
    try:
        return [int(value) for value in text.split(",") if value.strip()]
    except ValueError:
        raise ValueError(f"--k-values: expected comma-separated integers, got {text!r}") from None


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        run_dir = run_sweep(args.features, fraction=args.fraction, models=[m for m in args.models.split(",") if m],
                            k_min=args.k_min, k_max=args.k_max, k_values=_int_list(args.k_values),
                            exhaustive=args.exhaustive, results=args.results, name=args.name, address=args.address,
                            storage=args.storage, seed=args.seed, eta=args.eta, min_rung_size=args.min_rung_size)
    except (ValueError, FileNotFoundError, LockHeld) as exc:
        print(f"raysweep.tune: error: {exc}", file=sys.stderr)
        return 2
    except (StorageUnavailable, OSError) as exc:  # a full disk or an unreachable bucket: the message names it
        print(f"raysweep.tune: error: {exc}", file=sys.stderr)
        return EXIT_RESUMABLE
    except SweepInterrupted as exc:
        print(f"raysweep.tune: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("raysweep.tune: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    winner = json.loads((run_dir / "winner.json").read_text())
    print(f"winner: {winner['model']} k={winner['k']} ({json.dumps(winner['scores'])})")
    eligibility = winner["eligibility"]
    if eligibility["n_excluded"]:
        print(f"{eligibility['n_excluded']} config(s) at the top rung split a few points off (a cluster of fewer "
              f"than {eligibility['min_cluster_size']} rows or {eligibility['min_relative_size']:g} x n/k) and ranked "
              "below every sound config")
    if eligibility["winner_excluded"]:
        print("warning: every config splits a few points off; the winner is the best of them, not a sound clustering")
    if winner["edge_advice"]:
        print(f"warning: {winner['edge_advice']}")
    print(f"results in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
