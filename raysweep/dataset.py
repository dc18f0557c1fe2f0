"""The ingest dataset, as every later stage reads it: the tables' schemas, :func:`open_table`, :class:`PidIndex`.

An ingest output folder (written by :mod:`raysweep.ingest`) holds three Parquet datasets, each readable with
``pyarrow.dataset.dataset(OUT / name)``:

- ``playlists`` (:data:`PLAYLISTS_SCHEMA`): one row per playlist, keyed by ``pid``;
- ``tracks`` (:data:`TRACKS_SCHEMA`): one row per distinct track, keyed by a dense ``track_id``;
- ``playlist_tracks`` (:data:`PLAYLIST_TRACKS_SCHEMA`): one row per playlist entry (pid, pos, track_id).

Beside them the generator writes, and ``features audio`` reads, a table of ``track_uri`` plus the 13 Spotify audio
features, :data:`AUDIO_FEATURES`.

The stages after ingest (features, finalize, the recommender) read the tables through :func:`open_table` and look
playlists up with :class:`PidIndex`, so none of them imports the ingest stage. Plain pyarrow and NumPy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

PLAYLISTS_SCHEMA = pa.schema([
    ("pid", pa.int64()), ("name", pa.string()), ("name_normalized", pa.string()), ("collaborative", pa.bool_()),
    ("modified_at", pa.int64()), ("num_tracks", pa.int32()), ("num_albums", pa.int32()),
    ("num_artists", pa.int32()), ("num_followers", pa.int32()), ("num_edits", pa.int32()),
    ("duration_ms", pa.int64()), ("description", pa.string()),
])
TRACKS_SCHEMA = pa.schema([
    ("track_id", pa.int32()), ("track_uri", pa.string()), ("track_name", pa.string()), ("artist_uri", pa.string()),
    ("artist_name", pa.string()), ("album_uri", pa.string()), ("album_name", pa.string()),
    ("duration_ms", pa.int32()),
])
PLAYLIST_TRACKS_SCHEMA = pa.schema([("pid", pa.int64()), ("pos", pa.int32()), ("track_id", pa.int32())])
TABLES = {"playlists": PLAYLISTS_SCHEMA, "tracks": TRACKS_SCHEMA, "playlist_tracks": PLAYLIST_TRACKS_SCHEMA}

# The 13 Spotify audio features of a track, in the Web API's order: the columns of a track audio-feature table.
AUDIO_FEATURES = ("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
                  "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature")


def open_table(dataset: str | os.PathLike, name: str, columns: list[str]) -> pads.Dataset:
    """One table (``playlists``, ``tracks`` or ``playlist_tracks``) of an ingest output, checked for ``columns``."""
    path = Path(dataset) / name
    if not path.exists():
        raise FileNotFoundError(f"dataset {dataset}: no {name}/ folder (is it the output of raysweep.ingest?)")
    table = pads.dataset(path, format="parquet")
    absent = [c for c in columns if c not in table.schema.names]
    if absent:
        raise ValueError(f"dataset {dataset}: {name}/ lacks columns {', '.join(absent)}")
    return table


class PidIndex:
    """The row of each pid in an array of distinct pids (any order): a vectorized pid -> row lookup.

    Dense pids (the MPD's are 0..999,999) get a direct table, several times faster than a binary search over the
    66M entries of the full data set; sparse ones a sorted copy and a binary search.

    Parameters
    ----------
    pid : array-like of int of shape (n,)
        Distinct pids; row ``i`` is ``pid[i]``.
    source : str, default="the index"
        What holds these pids, for the error of :meth:`known_rows` (e.g. ``"playlists/"``).

    Examples
    --------
    >>> index = PidIndex([7, 3, 5], source="playlists/")
    >>> index.rows(np.array([5, 4, 7])).tolist()
    [2, -1, 0]
    >>> index.known_rows(np.array([3, 4]), where="playlist_tracks/")
    Traceback (most recent call last):
    ...
    ValueError: playlist_tracks/ references pid 4 that is not in playlists/
    """

    def __init__(self, pid, source: str = "the index"):
        self.pid = np.asarray(pid)
        self.source = source
        n = len(self.pid)
        self._table = self._sorted = self._order = None
        if n and self.pid.min() >= 0 and self.pid.max() < 4 * n + 1024:
            self._table = np.full(int(self.pid.max()) + 1, -1, dtype=np.int64)
            self._table[self.pid] = np.arange(n)
        else:
            self._order = np.argsort(self.pid, kind="stable")
            self._sorted = self.pid[self._order]

    def __len__(self) -> int:
        return len(self.pid)

    def rows(self, query: np.ndarray) -> np.ndarray:
        """Row of each pid of ``query`` (m,), int64, shape (m,); -1 for a pid not in the index."""
        query = np.asarray(query)
        if self._table is not None:
            inside = (query >= 0) & (query < len(self._table))
            return np.where(inside, self._table[np.where(inside, query, 0)], -1)
        if len(self._sorted) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        position = np.minimum(np.searchsorted(self._sorted, query), len(self._sorted) - 1)
        return np.where(self._sorted[position] == query, self._order[position], -1).astype(np.int64)

    def known_rows(self, query: np.ndarray, where: str) -> np.ndarray:
        """Like :meth:`rows`, but a pid not in the index is a ValueError naming ``where`` and the unknown pids."""
        rows = self.rows(query)
        unknown = rows < 0
        if unknown.any():
            missing = np.unique(np.asarray(query)[unknown])
            more = (f" ({len(missing) - 1:,} more unknown pids, e.g. {', '.join(map(str, missing[1:6]))})"
                    if len(missing) > 1 else "")
            raise ValueError(f"{where} references pid {missing[0]} that is not in {self.source}{more}")
        return rows
