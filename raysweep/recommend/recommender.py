"""Recommendations from a finalized run: load once, then ask for any seed.

>>> rec = Recommender.load("results/RUN", "OUT")                     # doctest: +SKIP
>>> rec.recommend(tracks=["spotify:track:..."], n=30).table         # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raysweep import run_folder as rf
from raysweep.dataset import open_table
from raysweep.feature_matrix import FeatureMatrix, read_feature_matrix
from raysweep.mpd import normalize_name
from raysweep.recommend.index import Clustering, Index, build_index
from raysweep.recommend.index_store import cached_index
from raysweep.recommend.methods import DEFAULT_METHOD, Seed, get_method, seed_clusters
from raysweep.run_folder import RunFolder, RunRecord


INDEX_FOLDER = "index"  # RUN/recommend/index/: the saved index of Recommender.load


class SeedError(ValueError):
    """A seed with nothing usable; ``str()`` is the one-line message for the user."""


@dataclass
class Recommendations:
    """One answer.

    Attributes
    ----------
    method : str
    table : DataFrame with columns rank, track_uri, track_name, artist_name (one row per recommendation)
    clusters : list of int, the seed's cluster(s) in the clustering used ([] when none placed it)
    seed_tracks : int, known seed tracks used
    title : str or None, the seed title (given, or the playlist's for --pid and --playlist)
    unknown : list of str, seed URIs not in the dataset (skipped)
    """

    method: str
    table: pd.DataFrame
    clusters: list
    seed_tracks: int
    title: str | None
    unknown: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"method": self.method, "clusters": self.clusters, "seed_tracks": self.seed_tracks,
                "title": self.title, "unknown_uris": self.unknown, "recommendations": self.table.to_dict("records")}


def run_features(run: str | os.PathLike) -> tuple[RunRecord, FeatureMatrix]:
    """The run's run.json record and its feature matrix, restricted to and ordered by the sweep's columns."""
    record_path = RunFolder(run) / rf.RUN_RECORD
    if not record_path.exists():
        raise FileNotFoundError(f"{record_path}: no such file (is --run a sweep run folder written by raysweep.tune?)")
    record = RunRecord.read(record_path)
    matrix = read_feature_matrix(record.features)
    columns = list(record.feature_columns)
    missing = [c for c in columns if c not in matrix.columns]
    if missing:
        raise ValueError(f"feature matrix {record.features}: lacks the sweep's columns {', '.join(missing)}")
    order = [matrix.columns.index(c) for c in columns]
    return record, FeatureMatrix(pid=matrix.pid, values=np.ascontiguousarray(matrix.values[:, order]),
                                 columns=columns, metadata=matrix.metadata, path=matrix.path)


def final_clustering(run: str | os.PathLike, index: Index) -> Clustering:
    """The finalized clustering of ``run`` (``final/``: model and assignments) on the index rows."""
    from raysweep.finalize import load_model

    final = RunFolder(run) / rf.FINAL
    if not (final / rf.MODEL_RECORD).exists():
        raise FileNotFoundError(f"{final}: no finalized model (run `python -m raysweep.finalize --run {run}` first)")
    loaded = load_model(final)
    assignments = pq.read_table(final / rf.ASSIGNMENTS, columns=["pid", "cluster"])
    lookup = pd.Series(assignments.column("cluster").to_numpy(), index=assignments.column("pid").to_numpy())
    labels = lookup.reindex(index.pid).to_numpy()
    if np.isnan(labels.astype(np.float64)).any():
        raise ValueError(f"{final / rf.ASSIGNMENTS}: does not assign every playlist of the feature matrix "
                         f"(was final/ written for another feature matrix?)")
    model, k = loaded.metadata["model"], int(loaded.metadata["k"])
    return index.clustering(f"{model} k={k}", model, k, loaded.estimator, loaded.metadata["scaling"],
                            labels.astype(np.int32))


class Recommender:
    """An index and the run's final clustering, loaded once (:meth:`load`), serving any seed."""

    def __init__(self, index: Index, clustering: Clustering, dataset: str | os.PathLike):
        self.index, self.clustering, self.dataset = index, clustering, dataset

    @classmethod
    def load(cls, run: str | os.PathLike, dataset: str | os.PathLike,
             track_features: str | os.PathLike | None = None, index_cache: bool = True,
             say: Callable[[str], None] | None = None) -> "Recommender":
        """The index of ``dataset`` for the finalized ``run`` (:func:`raysweep.recommend.index.build_index`) and
        the run's final clustering. With ``index_cache`` the built index is kept in ``RUN/recommend/index/`` and
        loaded from there while its inputs are unchanged (:func:`raysweep.recommend.index_store.cached_index`);
        ``say`` gets a line on which happened."""
        _, matrix = run_features(run)
        if index_cache:
            index = cached_index(RunFolder(run) / rf.RECOMMEND / INDEX_FOLDER, dataset, matrix,
                                 track_features=track_features, say=say)
        else:
            index = build_index(dataset, matrix, track_features=track_features)
        return cls(index, final_clustering(run, index), dataset)

    def seed(self, pid: int | None = None, tracks: list[str] | None = None, title: str | None = None,
             playlist: str | None = None, client=None) -> tuple[Seed, list[str]]:
        """Resolve one seed given by exactly one of ``pid``, ``tracks`` (URIs, with an optional ``title``),
        ``title`` alone or ``playlist`` (a Spotify URL/URI/id read with ``client``); returns the Seed and the
        unknown URIs. Raises SeedError when nothing usable remains."""
        given = [name for name, value in (("--pid", pid), ("--tracks", tracks), ("--playlist", playlist))
                 if value is not None]
        if len(given) > 1:
            raise SeedError(f"give one seed, not {' and '.join(given)}")
        if pid is None and tracks is None and playlist is None and not title:
            raise SeedError("no seed: give --pid, --tracks, --title or --playlist")
        where = "--tracks"
        if pid is not None:
            tracks, title = self._playlist_of(pid)
            where = f"--pid {pid}"
        elif playlist is not None:
            from raysweep.recommend.spotify_playlist import read_playlist

            found = read_playlist(playlist, client)
            tracks, title, where = found.track_uris, title or found.name, f"--playlist {playlist}"
        tracks = list(tracks or [])
        ids = self.index.catalog.ids(tracks)
        unknown = [uri for uri, i in zip(tracks, ids) if i < 0]
        _, first = np.unique(ids[ids >= 0], return_index=True)
        known = ids[ids >= 0][np.sort(first)]
        if known.size == 0 and not title:
            detail = f" ({len(unknown)} URIs, none in the dataset, e.g. {unknown[0]})" if unknown else ""
            raise SeedError(f"{where}: no usable seed{detail}: give track URIs of the dataset or a --title")
        if known.size == 0 and self.index.rows_titled(title).size == 0:
            raise SeedError(f"--title {title!r}: no playlist of the index has the normalized title "
                            f"{normalize_name(title)!r}, and no known seed track was given")
        return Seed(known, title), unknown

    def _playlist_of(self, pid: int) -> tuple[list[str], str | None]:
        entries = open_table(self.dataset, "playlist_tracks", ["pid", "pos", "track_id"]).to_table(
            columns=["pos", "track_id"], filter=pc.field("pid") == pid)
        names = open_table(self.dataset, "playlists", ["pid", "name"]).to_table(
            columns=["name"], filter=pc.field("pid") == pid)
        if names.num_rows == 0:
            raise SeedError(f"--pid {pid}: no such playlist in dataset {self.dataset}")
        ordered = entries.sort_by("pos").column("track_id").to_numpy()
        return self.index.catalog.uri.take(ordered).to_pylist(), names.column("name")[0].as_py()

    def recommend(self, pid: int | None = None, tracks: list[str] | None = None, title: str | None = None,
                  playlist: str | None = None, n: int = 500, method: str = DEFAULT_METHOD,
                  client=None) -> Recommendations:
        """Ranked recommendations for one seed (see :meth:`seed`) by ``method`` (a name of ``METHODS``)."""
        chosen = get_method(method)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"--n {n!r}: must be a positive integer")
        seed, unknown = self.seed(pid=pid, tracks=tracks, title=title, playlist=playlist, client=client)
        ranked = chosen.rank(self.index, self.clustering, seed, n)
        catalog = self.index.catalog
        table = pd.DataFrame({"rank": np.arange(1, ranked.size + 1), "track_uri": catalog.uri.take(ranked).to_pylist(),
                              "track_name": catalog.name.take(ranked).to_pylist(),
                              "artist_name": catalog.artist_name.take(ranked).to_pylist()})
        clusters = seed_clusters(self.index, self.clustering, seed).tolist() if chosen.uses_clusters else []
        return Recommendations(method, table, clusters, int(seed.tracks.size), seed.title, unknown)


def recommend(run: str | os.PathLike, dataset: str | os.PathLike, **seed_and_options) -> Recommendations:
    """One call for a notebook: load the run's recommender and answer one seed (keywords of
    :meth:`Recommender.recommend`). Loading dominates: keep a :class:`Recommender` for several questions."""
    return Recommender.load(run, dataset).recommend(**seed_and_options)
