"""The sweep's run folder ``RESULTS/RUN``: its layout, how its files are written, and the tune -> finalize contract.

Every path of the folder is spelled here, once::

    RESULTS/RUN/
      leaderboard.parquet, .csv    one row per trial (LEADERBOARD_COLUMNS)
      winner.json                  the chosen config and why (Winner)
      run.json                     what finalize needs and how the run went (RunRecord)
      plots/, tensorboard/         figures; per-model curves with k on the x axis
      ray/                         Ray Tune's experiments, one per rung (without --storage)
      run.lock                     held by the command working on the run
      rungs/settings.json          the settings the run started with: a rerun resumes only with the same ones
      rungs/rung_<r>.parquet       a finished rung's rows, read back by a rerun
      rungs/rung_<r>.trials.jsonl  the ledger of rung r: every trial result as it reached the driver
      rungs/builds.jsonl           one line per shared build (ward tree, CF-tree, distance matrix) of every attempt
      rungs/null_scores.parquet    the scores of data without clusters, per k, which the winner rule compares with
      final/                       finalize's output: assignments.parquet, cluster_profiles.parquet,
                                   model.joblib + model.json, final.json, report.md, plots/
      recommend/                   the recommender's saved indexes, refits and offline evaluation

Writing: every file is written aside and renamed into place (:func:`raysweep.storage.atomic_file`); a ledger line
is appended and fsync'd. With a storage URI (:class:`RunStorage`) the files are copied to ``<storage>/<RUN>/``, and
a new head fetches what it lacks from there.

Format: ``run.json``, ``winner.json`` and ``rungs/settings.json`` carry ``"format": FORMAT``. Format 1 is every
folder written before the field existed (the same records without it): it is read and resumed as is. A folder of
an unknown (newer) format is refused with one line naming the file.

One module for the folder (over 400 lines) because its parts are one contract: the layout, the record types that
fill it, the ledger, and the mirror that copies exactly those files; split, each part would spell paths again.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from raysweep.storage import atomic_file, filesystem_and_path, is_uri

FORMAT = 2
READABLE_FORMATS = (1, FORMAT)  # 1: written before the "format" field existed

LEADERBOARD = "leaderboard.parquet"
LEADERBOARD_CSV = "leaderboard.csv"
WINNER = "winner.json"
RUN_RECORD = "run.json"
PLOTS = "plots"
TENSORBOARD = "tensorboard"
RAY = "ray"
LOCK = "run.lock"
RUNGS = "rungs"
SETTINGS = f"{RUNGS}/settings.json"
BUILDS = f"{RUNGS}/builds.jsonl"
NULL_SCORES = f"{RUNGS}/null_scores.parquet"  # the scores of data without clusters per k
FINAL = "final"
RECOMMEND = "recommend"
# final/'s files, relative to final/: finalize writes them into a folder that becomes final/ whole, and
# ``raysweep.finalize.load_model`` takes the final/ folder.
ASSIGNMENTS = "assignments.parquet"
CLUSTER_PROFILES = "cluster_profiles.parquet"
MODEL_ARTIFACT = "model.joblib"
MODEL_RECORD = "model.json"
FINAL_RECORD = "final.json"
FINAL_REPORT = "report.md"
# What the end of a run publishes to the storage URI (the ledgers and rung tables are inside rungs/).
RESULTS = (LEADERBOARD, LEADERBOARD_CSV, WINNER, RUN_RECORD, PLOTS, TENSORBOARD, RUNGS)

LEADERBOARD_COLUMNS = ["model", "k", "effective_k", "rung", "n", "silhouette", "silhouette_se", "davies_bouldin",
                       "calinski_harabasz", "min_cluster_size", "min_cluster_share", "max_cluster_share",
                       "fit_seconds", "status", "warnings", "trial_id", "score_seconds", "shared_build", "node_id",
                       "distance_build"]
_TEXT_COLUMNS = ("status", "warnings", "trial_id", "shared_build", "node_id", "distance_build")


def config_key(model, k) -> str:
    """``"model:k"``: how the ledger and the read-back rungs name a config."""
    return f"{model}:{int(k)}"


def rung_rows(rung: int) -> str:
    """Relative path of a finished rung's rows."""
    return f"{RUNGS}/rung_{rung}.parquet"


def rung_ledger(rung: int) -> str:
    """Relative path of a rung's trial ledger."""
    return f"{RUNGS}/rung_{rung}.trials.jsonl"


@dataclass(frozen=True)
class RunFolder:
    """``RESULTS/RUN``: ``folder / relative`` is a file of it, with the relative paths of this module."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, relative: str) -> Path:
        return self.path / relative

    @property
    def name(self) -> str:
        return self.path.name


# --------------------------------------------------------------------------------------------- writing


def json_default(value):
    """JSON for what ``json`` cannot encode itself: NumPy scalars and arrays, paths; anything else is an error.

    Every conversion keeps the value (a number stays a number, a path its text). An unknown object raises
    TypeError at write time rather than being written as its ``str()``: these files are read back as data by the
    next stage, where a repr such as ``<object at 0x...>`` would pass for a value.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path: str | os.PathLike, record: dict) -> None:
    """Write ``record`` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=json_default) + "\n")


def write_table(df: pd.DataFrame, parquet_path: str | os.PathLike, csv_path: str | os.PathLike | None = None):
    """Write ``df`` to Parquet (and CSV), each file atomically."""
    with atomic_file(parquet_path) as tmp:
        df.to_parquet(tmp, index=False)
    if csv_path is not None:
        with atomic_file(csv_path) as tmp:
            df.to_csv(tmp, index=False)


def append_line(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and fsync it: once this returns, the record survives a kill of the command."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(record, default=json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"could not append to {path}: {exc.strerror}") from exc


def read_lines(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines file (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


RUN_LIBRARIES = ("ray", "scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "joblib")  # what a run's results need


def library_versions(libraries: tuple[str, ...] = RUN_LIBRARIES) -> dict:
    """Versions of Python, raysweep and ``libraries`` (distribution names), in that order; None: not installed.

    The one place versions are read: run.json records ``RUN_LIBRARIES``, model.json the libraries its pickle
    needs (``raysweep.finalize.artifact.MODEL_LIBRARIES``).
    """
    from raysweep import __version__

    found = {"python": platform.python_version(), "raysweep": __version__}
    for name in libraries:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def leaderboard_frame(rows: list[dict]) -> pd.DataFrame:
    """Leaderboard rows (ledger records, read-back rows) as a frame of ``LEADERBOARD_COLUMNS``, sorted.

    Returns a DataFrame of shape (len(rows), len(LEADERBOARD_COLUMNS)), sorted by rung, model, k; a missing
    column is NaN (text columns: empty), ``effective_k`` a nullable integer.
    """
    df = pd.DataFrame(rows)
    for column in LEADERBOARD_COLUMNS:
        if column not in df.columns:
            df[column] = np.nan if column not in _TEXT_COLUMNS else ""
    for column in _TEXT_COLUMNS:
        df[column] = df[column].fillna("").astype(str)
    df["effective_k"] = df["effective_k"].astype("Int64")
    return df[LEADERBOARD_COLUMNS].sort_values(["rung", "model", "k"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- reading


def read_json_object(path: str | os.PathLike, what: str) -> dict:
    """A JSON object from ``path``; errors are one line naming the file.

    Parameters
    ----------
    path : path of the file
    what : what the file is, for the message of a missing file ("the run record, written by raysweep.tune")
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file ({what})")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def read_json(path: str | os.PathLike, what: str) -> dict:
    """A JSON object from ``path`` (:func:`read_json_object`) whose run folder format this raysweep reads."""
    record = read_json_object(path, what)
    check_format(record, path)
    return record


def check_format(record: dict, path: str | os.PathLike) -> int:
    """The record's format (1 when it has none); ValueError naming ``path`` when this raysweep cannot read it."""
    found = record.get("format", 1)
    if found not in READABLE_FORMATS:
        raise ValueError(f"{path}: run folder format {found!r}; this raysweep reads formats "
                         f"{', '.join(map(str, READABLE_FORMATS))} (written by a newer raysweep? upgrade it, or use "
                         "another run folder)")
    return found


def read_settings(path: str | os.PathLike) -> dict | None:
    """The settings a run started with (``rungs/settings.json``), without its format; None if there are none."""
    if not Path(path).exists():
        return None
    record = read_json(path, "the run's settings")
    record.pop("format", None)
    return record


def write_settings(path: str | os.PathLike, settings: dict) -> None:
    """Write ``rungs/settings.json``: the settings and the folder's format."""
    write_json(path, {**settings, "format": FORMAT})


class _Record:
    """A JSON record with a format: written with ``"format": FORMAT``, read from any readable format."""

    REQUIRED: tuple = ()
    WHAT = ""

    def to_json(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | os.PathLike):
        """Read the record at ``path``; keys this raysweep does not know are left out."""
        record = read_json(path, cls.WHAT)
        missing = [key for key in cls.REQUIRED if key not in record]
        if missing:
            raise ValueError(f"{path}: missing keys {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


@dataclass(frozen=True)
class RunRecord(_Record):
    """``run.json``: what finalize needs (the first fields, required) and how the run went.

    Attributes
    ----------
    features : str, the feature matrix (path or URI) the sweep ran on
    feature_columns : list of str, the columns it used, in order
    scaling : dict, the scaling applied to them (``raysweep.feature_matrix.apply_scaling``)
    seed : int, seed of the permutation (the samples) and of the models
    n_total : int, rows of the feature matrix
    name : str, the run name
    agglomerative_method, birch_threshold : dict by rung (str), the shared builds' facts that the refit reuses
        (:meth:`top_rung_build`)
    dropped_feature_columns : dict, constant columns left out of the matrix, and why
    fraction, models, k_min, k_max, k_values, exhaustive : the search
    rungs : list of dict, per rung ``rung``, ``n``, ``configs``, ``promoted``, ``silhouette`` (how it was scored)
    promotion : dict, the promotion rule, why, and eta
    birch_method, kmeans_method, gmm_method, silhouette, permutation : how each was done, in words and settings
    shared_builds : dict, ``counts`` (structure -> rung -> builds) and every build's record
    plots : list of str, relative paths; versions : dict; storage : str; wall_seconds : float
    """

    REQUIRED = ("features", "feature_columns", "scaling", "seed", "n_total")
    WHAT = "the run record, written by raysweep.tune"

    features: str
    feature_columns: list
    scaling: dict
    seed: int
    n_total: int
    name: str = ""
    dropped_feature_columns: dict = field(default_factory=dict)
    fraction: float | None = None
    rungs: list = field(default_factory=list)
    promotion: dict = field(default_factory=dict)
    models: list = field(default_factory=list)
    k_min: int | None = None
    k_max: int | None = None
    k_values: list = field(default_factory=list)
    exhaustive: bool = False
    agglomerative_method: dict = field(default_factory=dict)
    birch_threshold: dict = field(default_factory=dict)
    birch_method: dict = field(default_factory=dict)
    kmeans_method: str = ""
    gmm_method: str = ""
    silhouette: dict = field(default_factory=dict)
    shared_builds: dict = field(default_factory=dict)
    permutation: str = ""
    plots: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    storage: str = ""
    wall_seconds: float | None = None

    def top_rung_build(self, fact: str):
        """A shared build's ``fact`` (``"agglomerative_method"``, ``"birch_threshold"``) at the highest rung that
        recorded one, or None: what a family's refit reuses (``ClusterFamily.refit_options``)."""
        by_rung = getattr(self, fact)
        return by_rung[max(by_rung, key=int)] if by_rung else None


@dataclass(frozen=True)
class Winner(_Record):
    """``winner.json``: the config the rule chose and why (:func:`raysweep.selection.select_winner`'s record).

    Attributes
    ----------
    model : str; k : int
    rule, reasoning : str, the winner rule and why it is the rule
    scores : dict, the winner's scores, head-to-head wins and losses, cluster shares
    per_metric_best : dict, each metric's own best config; pareto_front : list of dict
    beats_all : bool, a Condorcet winner; eligibility : dict, the excluded configs and why
    at_edge, edge_advice : str or None, when k is at the edge of the searched range
    n, rung, n_candidates : the top rung's rows, index and eligible configs
    promotion : dict, the promotion rule (``raysweep.halving.promotion_record``) and ``exhaustive``
    null_model : dict, the null model the scores were compared with (method, rows, its scores' path)
    """

    REQUIRED = ("model", "k")
    WHAT = "the winner, written by raysweep.tune"

    model: str
    k: int
    rule: str = ""
    reasoning: str = ""
    scores: dict = field(default_factory=dict)
    per_metric_best: dict = field(default_factory=dict)
    beats_all: bool | None = None
    eligibility: dict = field(default_factory=dict)
    at_edge: str | None = None
    edge_advice: str | None = None
    pareto_front: list = field(default_factory=list)
    n: int | None = None
    rung: int | None = None
    n_candidates: int | None = None
    promotion: dict = field(default_factory=dict)
    null_model: dict = field(default_factory=dict)

    @classmethod
    def from_selection(cls, selected: dict, promotion: dict) -> Winner:
        """The winner from :func:`raysweep.selection.select_winner`'s record and the promotion rule."""
        unknown = set(selected) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"select_winner returned keys Winner does not hold: {', '.join(sorted(unknown))}; "
                            "add them to raysweep.run_folder.Winner")
        return cls(**selected, promotion=promotion)


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep, as :func:`raysweep.sweep` returns it.

    Attributes
    ----------
    run_dir : Path, ``RESULTS/RUN``
    leaderboard : DataFrame of shape (n_trials, len(LEADERBOARD_COLUMNS)), one row per trial
    winner : Winner
    """

    run_dir: Path
    leaderboard: pd.DataFrame
    winner: Winner

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> SweepResult:
        folder = RunFolder(run_dir)
        # Through leaderboard_frame: a run written before a column was added gets it (empty) too.
        rows = pd.read_parquet(folder / LEADERBOARD).to_dict("records")
        return cls(folder.path, leaderboard_frame(rows), Winner.read(folder / WINNER))


# --------------------------------------------------------------------------------------------- the ledger


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
        append_line(self.path, record)


# --------------------------------------------------------------------------------------------- storage


class StorageUnavailable(RuntimeError):
    """The storage URI could not be reached; everything finished is kept locally and the same command resumes."""


class RunStorage:
    """Where Ray Tune writes its experiments, and (for a URI) where the run's result files are mirrored.

    Parameters
    ----------
    storage : str or None, ``--storage`` (a local path or a pyarrow URI); None: ``RESULTS/RUN/ray``
    run_dir : path of ``RESULTS/RUN``
    name : the run name (``RUN``)
    """

    def __init__(self, storage, run_dir, name):
        self.uri = storage
        self.run_dir = Path(run_dir)
        if storage is None:
            self.filesystem, self.base = None, str((self.run_dir / RAY).resolve())
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
                                  f"{self.run_dir / RUNGS}: run the same command again once it is reachable")

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
