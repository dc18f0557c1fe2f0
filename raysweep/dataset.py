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
    """A vectorized pid -> integer lookup over distinct pids in any order: by default each pid's row.

    Dense pids (the MPD's are 0..999,999) get a direct table, several times faster than a binary search over the
    66M entries of the full data set; sparse ones a sorted copy and a binary search.

    Parameters
    ----------
    pid : array-like of int of shape (n,)
        Distinct pids.
    values : array-like of int >= 0 of shape (n,), default=None
        What ``pid[i]`` maps to (e.g. its cluster); None: its row ``i``. Looking values up directly saves a
        gather per query over looking rows up and then indexing.
    source : str, default="the index"
        What holds these pids, for the error of :meth:`lookup_known` (e.g. ``"playlists/"``).

    Examples
    --------
    >>> index = PidIndex([7, 3, 5], source="playlists/")
    >>> index.lookup(np.array([5, 4, 7])).tolist()
    [2, -1, 0]
    >>> PidIndex([7, 3, 5], values=[1, 1, 0]).lookup(np.array([5, 4, 7])).tolist()
    [0, -1, 1]
    >>> index.lookup_known(np.array([3, 4]), where="playlist_tracks/")
    Traceback (most recent call last):
    ...
    ValueError: playlist_tracks/ references pid 4 that is not in playlists/
    """

    def __init__(self, pid, values=None, source: str = "the index"):
        self.pid = np.asarray(pid)
        n = len(self.pid)
        values = np.arange(n, dtype=np.int64) if values is None else np.asarray(values)
        if values.shape != self.pid.shape:
            raise ValueError(f"values must have one entry per pid ({n}), got shape {values.shape}")
        self.source = source
        self._table = self._sorted = self._values = None
        if n and self.pid.min() >= 0 and self.pid.max() < 4 * n + 1024:
            self._table = np.full(int(self.pid.max()) + 1, -1, dtype=values.dtype)
            self._table[self.pid] = values
        else:
            order = np.argsort(self.pid, kind="stable")
            self._sorted, self._values = self.pid[order], values[order]

    def __len__(self) -> int:
        return len(self.pid)

    def lookup(self, query: np.ndarray) -> np.ndarray:
        """The value (by default the row) of each pid of ``query``, shape (m,); -1 for a pid not in the index."""
        query = np.asarray(query)
        if self._table is not None:
            inside = (query >= 0) & (query < len(self._table))
            return np.where(inside, self._table[np.where(inside, query, 0)], -1).astype(self._table.dtype, copy=False)
        if len(self._sorted) == 0:
            return np.full(len(query), -1, dtype=self._values.dtype)
        position = np.minimum(np.searchsorted(self._sorted, query), len(self._sorted) - 1)
        return np.where(self._sorted[position] == query, self._values[position], -1).astype(self._values.dtype, copy=False)

    def lookup_known(self, query: np.ndarray, where: str) -> np.ndarray:
        """Like :meth:`lookup`, but a pid not in the index is a ValueError naming ``where`` and the unknown pids."""
        found = self.lookup(query)
        unknown = found < 0
        if unknown.any():
            missing = np.unique(np.asarray(query)[unknown])
            more = (f" ({len(missing) - 1:,} more unknown pids, e.g. {', '.join(map(str, missing[1:6]))})"
                    if len(missing) > 1 else "")
            raise ValueError(f"{where} references pid {missing[0]} that is not in {self.source}{more}")
        return found
