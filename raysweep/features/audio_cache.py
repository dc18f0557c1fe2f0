"""The SQLite track cache of audio features: one row per track URI, whether it came from a table or the Web API.

Every source fills the one cache (:class:`AudioFeatureCache`), keyed by track URI, so no track is fetched twice
and a rerun of a killed fetch asks only for what is missing. A track's row holds the 13 features (NULL where its
source lacked one), a status (``ok``, or ``null`` when the API answered null for it), its source and when it was
stored. :func:`default_cache_path` is where the command keeps it.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raysweep.dataset import AUDIO_FEATURES
from raysweep.storage import is_uri

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
        """Upsert the rows of a validated feature table (``track_uri`` + some or all of the 13 features).

        A track cached as ``ok`` keeps its values and only gets those it lacks (its fields are NULL when it came
        from a table without them); a feature the table lacks stays NULL. Returns the number of rows written.
        """
        now = _utc_now()
        placeholders = ", ".join("?" * (len(AUDIO_FEATURES) + 4))
        ok = f"audio_features.status = '{STATUS_OK}'"
        updates = ", ".join([f"{name} = COALESCE(audio_features.{name}, excluded.{name})" for name in AUDIO_FEATURES]
                            + [f"{name} = CASE WHEN {ok} THEN audio_features.{name} ELSE excluded.{name} END"
                               for name in ("source", "fetched_at")] + [f"status = '{STATUS_OK}'"])
        lacking = " OR ".join(f"audio_features.{name} IS NULL" for name in AUDIO_FEATURES)
        sql = (f"INSERT INTO audio_features VALUES ({placeholders}) ON CONFLICT(track_uri) DO UPDATE SET "
               f"{updates} WHERE NOT {ok} OR {lacking}")
        before = self._db.total_changes
        for start in range(0, table.num_rows, _IMPORT_CHUNK):
            chunk = table.slice(start, _IMPORT_CHUNK)
            uris = chunk.column("track_uri").to_pylist()
            values = [chunk.column(name).to_pylist() if name in chunk.column_names else [None] * chunk.num_rows
                      for name in AUDIO_FEATURES]
            rows = [(uri, STATUS_OK, *row, source, now) for uri, *row in zip(uris, *values)]
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql, rows)
        return self._db.total_changes - before

    def lookup(self, uris: pa.Array, columns: tuple[str, ...] | list[str] = AUDIO_FEATURES
               ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``columns`` of ``uris`` (in that order) and whether each is cached as ``ok`` with all of them.

        Returns
        -------
        values : ndarray of shape (len(uris), len(columns)), float64, NaN where the track has no features
        has_features : ndarray of shape (len(uris),), bool
        """
        complete = "".join(f" AND {name} IS NOT NULL" for name in columns)
        cursor = self._db.execute(f"SELECT track_uri, {', '.join(columns)} FROM audio_features "
                                  f"WHERE status = ?{complete}", (STATUS_OK,))
        cached_uris, cached_values = [], []
        while chunk := cursor.fetchmany(100_000):
            cached_uris.extend(row[0] for row in chunk)
            cached_values.append(np.array([row[1:] for row in chunk], dtype=np.float64))
        values = np.full((len(uris), len(columns)), np.nan)
        if not cached_uris:
            return values, np.zeros(len(uris), dtype=bool)
        cached = np.concatenate(cached_values)
        position = pc.index_in(pa.array(uris, type=pa.string()),
                               value_set=pa.array(cached_uris, type=pa.string()))
        has_features = position.is_valid().to_numpy(zero_copy_only=False)
        values[has_features] = cached[position.drop_null().to_numpy()]
        return values, has_features


def default_cache_path(out: str | os.PathLike) -> Path:
    """The cache beside a local output: ``<out dir>/audio_features_cache.sqlite``."""
    if is_uri(out):
        raise ValueError(f"--out {out} is a URI: pass --cache with a local path for the audio feature cache")
    return Path(out).resolve().parent / "audio_features_cache.sqlite"
