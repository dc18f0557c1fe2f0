"""Audio features: the SQLite track cache and the playlist means the original study clustered.

A playlist's features are the means of 13 Spotify audio features over its track entries that have features
(a track listed twice counts twice, as in a groupby over the playlist's rows). Features come from a table
(``--table``: Parquet or CSV, e.g. the generator's ``track_audio_features.parquet``) or from the Web API
(:mod:`raysweep.features.spotify`); both fill one SQLite cache keyed by track URI, so no track is fetched twice.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from raysweep.feature_matrix import validate_values, write_feature_matrix
from raysweep.ingest import open_table
from raysweep.storage import is_uri

AUDIO_FEATURES = ("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
                  "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature")
STATUS_OK = "ok"  # the track has features
STATUS_NULL = "null"  # the API answered null for the track (unknown id or no analysis)
_IMPORT_CHUNK = 50_000  # rows per transaction when importing a table


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class AudioFeatureCache:
    """One SQLite row per track URI: the 13 features, a status (``ok`` / ``null``), its source, when fetched.

    The database runs in WAL mode and every :meth:`store` is one transaction, so a killed process loses at most
    the batch it was storing.

    Parameters
    ----------
    path : str or path-like
        The SQLite file; created with its table if absent.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process kill
            columns = ", ".join(f"{name} REAL" for name in AUDIO_FEATURES)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS audio_features ("
                "track_uri TEXT PRIMARY KEY, "
                f"status TEXT NOT NULL CHECK (status IN ('{STATUS_OK}', '{STATUS_NULL}')), "
                f"{columns}, source TEXT NOT NULL, fetched_at TEXT NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"audio feature cache {self.path}: not a usable SQLite database ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "AudioFeatureCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def counts(self) -> dict:
        """Number of cached tracks per status, e.g. ``{"ok": 120, "null": 3}``."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM audio_features GROUP BY status").fetchall()
        return {STATUS_OK: 0, STATUS_NULL: 0, **dict(rows)}

    def cached_uris(self, status: str | None = None) -> pa.Array:
        """The cached track URIs (all, or those with one status), as an Arrow string array."""
        if status is None:
            cursor = self._db.execute("SELECT track_uri FROM audio_features")
        else:
            cursor = self._db.execute("SELECT track_uri FROM audio_features WHERE status = ?", (status,))
        return pa.array([row[0] for row in cursor], type=pa.string())

    def missing(self, uris) -> list[str]:
        """The distinct URIs of ``uris`` that have no cache row, in first-seen order."""
        uris = pc.unique(pa.array(uris, type=pa.string()))
        known = pc.is_in(uris, value_set=self.cached_uris())
        return pc.filter(uris, pc.invert(known)).to_pylist()

    def store(self, records: list[tuple[str, dict | None]], source: str) -> None:
        """Store ``(uri, features-or-None)`` records in one transaction; ``None`` means status ``null``.

        Raises ValueError naming the URI whose features lack a field or hold a non-number.
        """
        now = _utc_now()
        rows = []
        for uri, features in records:
            if features is None:
                rows.append((uri, STATUS_NULL, *([None] * len(AUDIO_FEATURES)), source, now))
                continue
            try:
                values = [float(features[name]) for name in AUDIO_FEATURES]
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"audio features of {uri} from {source}: missing or non-numeric field "
                                 f"({exc!r})") from exc
            rows.append((uri, STATUS_OK, *values, source, now))
        placeholders = ", ".join("?" * (len(AUDIO_FEATURES) + 4))
        with self._db:  # one transaction: all of the batch or none of it
            self._db.execute("BEGIN")
            self._db.executemany(f"INSERT OR REPLACE INTO audio_features VALUES ({placeholders})", rows)

    def import_table(self, table: pa.Table, source: str) -> int:
        """Upsert the rows of a validated feature table; tracks already cached as ``ok`` keep their row.

        Returns the number of rows written.
        """
        now = _utc_now()
        placeholders = ", ".join("?" * (len(AUDIO_FEATURES) + 4))
        updates = ", ".join(f"{name} = excluded.{name}" for name in
                            ("status", *AUDIO_FEATURES, "source", "fetched_at"))
        sql = (f"INSERT INTO audio_features VALUES ({placeholders}) ON CONFLICT(track_uri) DO UPDATE SET "
               f"{updates} WHERE audio_features.status != '{STATUS_OK}'")
        before = self._db.total_changes
        for start in range(0, table.num_rows, _IMPORT_CHUNK):
            chunk = table.slice(start, _IMPORT_CHUNK)
            uris = chunk.column("track_uri").to_pylist()
            values = np.column_stack([chunk.column(name).to_numpy().astype(np.float64)
                                      for name in AUDIO_FEATURES]).tolist()
            rows = [(uri, STATUS_OK, *row, source, now) for uri, row in zip(uris, values)]
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql, rows)
        return self._db.total_changes - before

    def lookup(self, uris: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Features of ``uris`` (in that order) and whether each is cached as ``ok``.

        Returns
        -------
        values : ndarray of shape (len(uris), 13), float64, NaN where the track has no features
        has_features : ndarray of shape (len(uris),), bool
        """
        names = ", ".join(AUDIO_FEATURES)
        cursor = self._db.execute(f"SELECT track_uri, {names} FROM audio_features WHERE status = ?",
                                  (STATUS_OK,))
        cached_uris, cached_values = [], []
        while chunk := cursor.fetchmany(100_000):
            cached_uris.extend(row[0] for row in chunk)
            cached_values.append(np.array([row[1:] for row in chunk], dtype=np.float64))
        values = np.full((len(uris), len(AUDIO_FEATURES)), np.nan)
        if not cached_uris:
            return values, np.zeros(len(uris), dtype=bool)
        cached = np.concatenate(cached_values)
        position = pc.index_in(pa.array(uris, type=pa.string()),
                               value_set=pa.array(cached_uris, type=pa.string()))
        has_features = position.is_valid().to_numpy(zero_copy_only=False)
        values[has_features] = cached[position.drop_null().to_numpy()]
        return values, has_features


def read_feature_table(path: str | os.PathLike) -> pa.Table:
    """Read a track audio-feature table (Parquet, or CSV by its ``.csv``/``.csv.gz`` suffix) and validate it.

    Returns a table with ``track_uri`` (string) and the 13 features (float64), one row per URI. Raises
    ValueError naming the file and the missing columns, the column holding nulls, or a duplicated URI.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio feature table {path}: no such file")
    if path.name.endswith((".csv", ".csv.gz")):
        table = pcsv.read_csv(path)
    else:
        table = pq.read_table(path)
    absent = [name for name in ("track_uri", *AUDIO_FEATURES) if name not in table.column_names]
    if absent:
        raise ValueError(f"audio feature table {path}: missing columns {', '.join(absent)}")
    columns = {"track_uri": table.column("track_uri").cast(pa.string())}
    for name in ("track_uri", *AUDIO_FEATURES):
        if table.column(name).null_count:
            raise ValueError(f"audio feature table {path}: column {name} has "
                             f"{table.column(name).null_count} null values")
    for name in AUDIO_FEATURES:
        try:
            columns[name] = table.column(name).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"audio feature table {path}: column {name} is not numeric ({exc})") from exc
    table = pa.table(columns)
    if pc.count_distinct(table.column("track_uri")).as_py() != table.num_rows:
        counts = pc.value_counts(table.column("track_uri"))
        duplicate = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))[0]
        raise ValueError(f"audio feature table {path}: track_uri {duplicate} appears more than once")
    return table


def default_cache_path(out: str | os.PathLike) -> Path:
    """The cache beside a local output: ``<out dir>/audio_features_cache.sqlite``."""
    if is_uri(out):
        raise ValueError(f"--out {out} is a URI: pass --cache with a local path for the audio feature cache")
    return Path(out).resolve().parent / "audio_features_cache.sqlite"


def dataset_track_uris(dataset: str | os.PathLike) -> tuple[np.ndarray, pa.Array]:
    """The ``tracks`` table of an ingest output: dense ``track_id`` (int64) and ``track_uri`` arrays."""
    tracks = _read_dataset(dataset, "tracks", ["track_id", "track_uri"])
    return tracks.column("track_id").to_numpy().astype(np.int64), tracks.column("track_uri").combine_chunks()


def _read_dataset(dataset, name: str, columns: list[str]) -> pa.Table:
    return open_table(dataset, name, columns).to_table(columns=columns)


def playlist_track_sums(dataset: str | os.PathLike, pid: np.ndarray, track_values: np.ndarray,
                        track_has_features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream ``playlist_tracks`` and sum the features of each playlist's entries.

    Parameters
    ----------
    dataset : path of the ingest output
    pid : ndarray of shape (n_playlists,), int64, sorted ascending
    track_values : ndarray of shape (n_tracks, 13), float64, indexed by dense track_id (NaN: no features)
    track_has_features : ndarray of shape (n_tracks,), bool

    Returns
    -------
    sums : ndarray of shape (n_playlists, 13), float64, sums over the entries with features
    n_entries : ndarray of shape (n_playlists,), int64, all entries
    n_with_features : ndarray of shape (n_playlists,), int64
    """
    path = Path(dataset) / "playlist_tracks"
    if not path.exists():
        raise FileNotFoundError(f"dataset {dataset}: no playlist_tracks/ folder")
    n_playlists, n_tracks = len(pid), len(track_values)
    sums = np.zeros((n_playlists, track_values.shape[1]))
    n_entries = np.zeros(n_playlists, dtype=np.int64)
    n_with = np.zeros(n_playlists, dtype=np.int64)
    filled = np.where(track_has_features[:, None], track_values, 0.0)
    for batch in ds.dataset(path, format="parquet").to_batches(columns=["pid", "track_id"]):
        row = _playlist_rows(batch.column("pid").to_numpy(), pid, dataset)
        tid = batch.column("track_id").to_numpy().astype(np.int64)
        if len(tid) and (tid.min() < 0 or tid.max() >= n_tracks):
            raise ValueError(f"dataset {dataset}: playlist_tracks holds track_id outside 0..{n_tracks - 1}")
        n_entries += np.bincount(row, minlength=n_playlists)
        n_with += np.bincount(row, weights=track_has_features[tid], minlength=n_playlists).astype(np.int64)
        entry_values = filled[tid]
        for j in range(entry_values.shape[1]):
            sums[:, j] += np.bincount(row, weights=entry_values[:, j], minlength=n_playlists)
    return sums, n_entries, n_with


def _playlist_rows(batch_pid: np.ndarray, pid: np.ndarray, dataset) -> np.ndarray:
    """Row of each batch pid in the sorted ``pid`` array; ValueError for a pid not in ``playlists``."""
    row = np.searchsorted(pid, batch_pid)
    row = np.minimum(row, len(pid) - 1)
    unknown = pid[row] != batch_pid
    if unknown.any():
        raise ValueError(f"dataset {dataset}: playlist_tracks references pid {batch_pid[unknown][0]} "
                         "that is not in playlists/")
    return row


def build_audio_features(dataset: str | os.PathLike, out: str | os.PathLike, table: str | os.PathLike | None = None,
                         cache: str | os.PathLike | None = None, min_coverage: float = 0.5) -> dict:
    """Write the audio feature matrix of an ingest output (no network).

    Imports ``table`` into the cache if given, then takes every playlist's mean of the 13 features over its
    entries that have features. Playlists whose coverage (entries with features / entries) is below
    ``min_coverage`` are left out and counted. The matrix holds raw means; its metadata records the
    standardization (mean and std per column over the kept playlists) every later stage applies.

    Parameters
    ----------
    dataset : path of the ingest output (``playlists/``, ``tracks/``, ``playlist_tracks/``)
    out : path or URI of the feature matrix to write
    table : optional Parquet/CSV of track audio features (``track_uri`` + the 13 fields)
    cache : SQLite cache path; default ``audio_features_cache.sqlite`` beside ``out``
    min_coverage : float in [0, 1]

    Returns
    -------
    summary : dict with ``out``, ``cache``, ``n_playlists``, ``n_playlists_left_out``, ``coverage``, ``seconds``
    """
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage={min_coverage}: must be within [0, 1]")
    start = time.perf_counter()
    cache_path = Path(cache) if cache is not None else default_cache_path(out)
    track_id, track_uri = dataset_track_uris(dataset)
    if len(track_id) and not np.array_equal(np.sort(track_id), np.arange(len(track_id))):
        raise ValueError(f"dataset {dataset}: tracks/ track_id is not dense 0..{len(track_id) - 1}")
    pid = np.sort(_read_dataset(dataset, "playlists", ["pid"]).column("pid").to_numpy().astype(np.int64))
    if len(pid) == 0:
        raise ValueError(f"dataset {dataset}: playlists/ is empty")
    with AudioFeatureCache(cache_path) as store:
        if table is not None:
            features = read_feature_table(table)
            wanted = pc.is_in(features.column("track_uri"), value_set=track_uri)
            store.import_table(features.filter(wanted), source=f"table:{Path(table).name}")
        cache_counts = store.counts()
        by_uri, has_by_uri = store.lookup(track_uri)
    # reorder from tracks-table order to dense track_id order
    values = np.empty_like(by_uri)
    has_features = np.empty_like(has_by_uri)
    values[track_id], has_features[track_id] = by_uri, has_by_uri
    sums, n_entries, n_with = playlist_track_sums(dataset, pid, values, has_features)
    coverage = np.divide(n_with, n_entries, out=np.zeros(len(pid)), where=n_entries > 0)
    keep = (coverage >= min_coverage) & (n_with > 0)
    if not keep.any():
        raise ValueError(f"dataset {dataset}: no playlist reaches min_coverage={min_coverage} "
                         f"({int(has_features.sum())} of {len(has_features)} tracks have features): "
                         "fetch or import more features, or lower --min-coverage")
    means = sums[keep] / n_with[keep, None]
    validate_values(means, list(AUDIO_FEATURES), f"audio features of {dataset}")
    coverage_record = {
        "tracks": int(len(has_features)),
        "tracks_with_features": int(has_features.sum()),
        "track_coverage": float(has_features.mean()) if len(has_features) else 0.0,
        "entry_coverage": float(n_with.sum() / max(n_entries.sum(), 1)),
        "playlist_coverage_min": float(coverage.min()),
        "playlist_coverage_median": float(np.median(coverage)),
        "cache_ok": int(cache_counts[STATUS_OK]),
        "cache_null": int(cache_counts[STATUS_NULL]),
    }
    metadata = {
        "source": "audio",
        "scaling": {"kind": "standard", "mean": means.mean(axis=0).tolist(), "std": means.std(axis=0).tolist()},
        "coverage": coverage_record,
        "n_playlists": int(keep.sum()),
        "n_playlists_left_out": int((~keep).sum()),
        "min_coverage": float(min_coverage),
        "dataset": str(dataset),
        "table": str(table) if table is not None else None,
    }
    write_feature_matrix(out, pid[keep], means.astype(np.float32), list(AUDIO_FEATURES), metadata)
    return {"out": str(out), "cache": str(cache_path), "n_playlists": int(keep.sum()),
            "n_playlists_left_out": int((~keep).sum()), "coverage": coverage_record,
            "seconds": time.perf_counter() - start}
