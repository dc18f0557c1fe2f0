"""The recommender's index: the ingest tables as sparse playlist x track matrices, and the clusterings on them.

Everything a query needs is an array: the binary playlist x track matrix in CSR (a row is a playlist's distinct
tracks) and its transpose (a row is the playlists holding a track), track popularity, the playlists' raw features,
a feature vector per track, the playlists' normalized titles as integer codes, and per clustering the cluster of
every playlist, the playlists of each cluster (rows grouped by cluster: ``members[starts[c]:starts[c + 1]]``)
and the most frequent tracks of each cluster. A query touches the playlists that share a seed track (one sparse
row gather), or one cluster's rows, never every playlist.

Rows are the playlists of the sweep's feature matrix minus the ones excluded (the held-out playlists of an
evaluation): an excluded playlist adds nothing to any count, title statistic or track feature. Playlists absent
from the feature matrix (audio features below ``--min-coverage``) have no cluster and are left out too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from raysweep.dataset import PidIndex, open_table
from raysweep.feature_matrix import FeatureMatrix, apply_scaling, read_feature_matrix
from raysweep.mpd import normalize_name

TOP_TRACKS = 2000  # popular tracks kept per cluster and overall: 500 to recommend plus up to 250 seeds and margin
GMM_MASS = 0.8  # GMM: a seed belongs to its most probable components until they hold this much probability
GMM_MAX_COMPONENTS = 3
# The points whose nearest one (Euclidean, scaled space) decides the cluster in each model's own predict: KMeans and
# the ward cut assign to the nearest cluster centre, Birch to its nearest subcluster's cluster. A query places
# its seed against them in NumPy: scikit-learn's pairwise argmin costs 70-150 ms per single-row call on this
# machine under load (measured), more than the whole recommendation. GMM is not nearest-centre: predict_proba.
REFERENCE_POINTS = {"kmeans": lambda final: final.cluster_centers_,
                    "agglomerative": lambda final: final.cluster_centers_,
                    "birch": lambda final: final.estimator.subcluster_centers_}


@dataclass
class Catalog:
    """The ``tracks`` table by dense track id.

    Attributes
    ----------
    uri, name, artist_name : pyarrow arrays of length n_tracks, indexed by track id
    artist : ndarray of shape (n_tracks,), int32, a dense artist code per track (for the artist-level metric)
    lookup : pandas Index of the URIs, position = track id
    """

    uri: pa.Array
    name: pa.Array
    artist_name: pa.Array
    artist: np.ndarray
    lookup: pd.Index

    def ids(self, uris: list[str]) -> np.ndarray:
        """Track ids of ``uris``, shape (len(uris),), int64, -1 for an unknown URI."""
        return self.lookup.get_indexer(pd.Index(uris, dtype=object)).astype(np.int64)


@dataclass
class Clustering:
    """One clustering of the index's playlists and what a query needs of it.

    Attributes
    ----------
    name : str, e.g. ``kmeans k=17``
    model, k : the configuration
    estimator : raysweep.models.FinalModel (``predict``, and ``predict_proba`` for gmm), fitted in the sweep's
        scaled space
    scaling : dict, the sweep's scaling record
    labels : ndarray of shape (n_rows,), int32, the cluster of every index row
    members : ndarray of shape (n_rows,), int64, index rows grouped by cluster
    starts : ndarray of shape (n_clusters + 1,), int64, cluster c's rows are ``members[starts[c]:starts[c + 1]]``
    popular : list of ndarray, per cluster its most frequent track ids (at most ``TOP_TRACKS``), most frequent first
    centres : ndarray of shape (n_points, n_features) or None, the model's reference points (``REFERENCE_POINTS``);
        None for a GMM
    centre_labels : ndarray of shape (n_points,) or None, the cluster the model predicts for each reference point
    features : ndarray of shape (n_rows, n_features) or None, the index rows' raw features (``Index.features``)
    """

    name: str
    model: str
    k: int
    estimator: object
    scaling: dict
    labels: np.ndarray
    members: np.ndarray
    starts: np.ndarray
    popular: list
    centres: np.ndarray | None = None
    centre_labels: np.ndarray | None = None
    features: np.ndarray | None = field(default=None, repr=False)

    def clusters_of(self, raw_features: np.ndarray) -> np.ndarray:
        """The clusters of a seed from its raw features (d,): one cluster, or a GMM's top components.

        Returns ndarray of cluster ids, most likely first.
        """
        scaled = apply_scaling(raw_features[None, :], self.scaling)
        if self.model == "gmm":
            proba = self.estimator.predict_proba(scaled)[0]
            order = np.argsort(-proba)[:GMM_MAX_COMPONENTS]
            kept = np.searchsorted(np.cumsum(proba[order]), GMM_MASS) + 1  # the fewest reaching GMM_MASS
            return order[:kept]
        nearest = np.argmin(((self.centres - scaled[0]) ** 2).sum(axis=1))
        return self.centre_labels[nearest:nearest + 1]

    @cached_property
    def scaled_rows(self) -> np.ndarray:
        """The index rows' ``features`` (n_rows, d) in this clustering's scaled space, float32; computed once.

        Scaling is elementwise, so a row scaled here equals the same row scaled on its own, bit for bit.
        """
        return apply_scaling(self.features, self.scaling)

    def rows_of(self, clusters: np.ndarray) -> np.ndarray:
        """Index rows of ``clusters``, shape (n,), int64."""
        return np.concatenate([self.members[self.starts[c]:self.starts[c + 1]] for c in clusters])


@dataclass
class Index:
    """The training playlists as matrices (see the module docstring).

    Attributes
    ----------
    pid : ndarray of shape (n_rows,), int64, the playlist of each row
    by_playlist : scipy.sparse.csr_matrix of shape (n_rows, n_tracks), float32, 1 where a playlist holds a track
    by_track : scipy.sparse.csr_matrix of shape (n_tracks, n_rows), its transpose
    lengths : ndarray of shape (n_rows,), distinct tracks per playlist
    popularity : ndarray of shape (n_tracks,), int64, playlists holding each track
    popular : ndarray, the most frequent track ids overall (at most ``TOP_TRACKS``)
    features : ndarray of shape (n_rows, n_features), float32, the rows' raw features (the sweep's columns)
    track_features : ndarray of shape (n_tracks, n_features), float32, NaN where a track has none
    track_feature_source : str, where ``track_features`` came from (for the reports)
    title_code : ndarray of shape (n_rows,), int64, code of each row's normalized title (-1: none)
    titles : pandas Index of the normalized titles, position = code
    title_rows : ndarray of shape (n_rows,), int64, rows grouped by title code; title_starts its offsets
    catalog : Catalog
    feature_source : str, the feature matrix's ``source`` (``audio``, ``cooccurrence``, ...)
    excluded : int, playlists of the feature matrix excluded from the index
    """

    pid: np.ndarray
    by_playlist: sp.csr_matrix
    by_track: sp.csr_matrix
    lengths: np.ndarray
    popularity: np.ndarray
    popular: np.ndarray
    features: np.ndarray
    track_features: np.ndarray
    track_feature_source: str
    title_code: np.ndarray
    titles: pd.Index
    title_rows: np.ndarray
    title_starts: np.ndarray
    catalog: Catalog
    feature_source: str
    excluded: int

    @property
    def n_tracks(self) -> int:
        return self.by_playlist.shape[1]

    @cached_property
    def used_tracks(self) -> np.ndarray:
        """Track ids some index playlist holds, shape (n_used,): computed once, not per query."""
        return np.flatnonzero(self.popularity)

    def rows_titled(self, title: str) -> np.ndarray:
        """Index rows whose normalized title equals ``normalize_name(title)``, shape (n,), int64."""
        code = self.titles.get_indexer([normalize_name(title)])[0]
        if code < 0:
            return np.empty(0, dtype=np.int64)
        return self.title_rows[self.title_starts[code]:self.title_starts[code + 1]]

    def clustering(self, name: str, model: str, k: int, estimator, scaling: dict,
                   labels: np.ndarray) -> Clustering:
        """A :class:`Clustering` of the index rows from their ``labels`` (n_rows,)."""
        labels = np.asarray(labels, dtype=np.int32)
        n_clusters = max(int(k), int(labels.max(initial=-1)) + 1)  # a GMM may predict a component no row has
        members, starts = _grouped(labels, n_clusters)
        # Cluster x track counts in one sparse product: (n_clusters x n_rows indicator) @ (n_rows x n_tracks).
        indicator = sp.csr_matrix((np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))),
                                  shape=(n_clusters, len(labels)))
        counts = (indicator @ self.by_playlist).tocsr()
        popular = [_top(counts.indices[counts.indptr[c]:counts.indptr[c + 1]],
                        counts.data[counts.indptr[c]:counts.indptr[c + 1]], self.popularity)
                   for c in range(n_clusters)]
        centres = centre_labels = None
        if model in REFERENCE_POINTS:
            points = np.asarray(REFERENCE_POINTS[model](estimator))
            centre_labels = np.asarray(estimator.predict(points), dtype=np.int64)  # one batch call, native dtype
            centres = points.astype(np.float64)
        return Clustering(name, model, int(k), estimator, scaling, labels, members, starts, popular, centres,
                          centre_labels, self.features)


def _grouped(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by code (stable) and the offsets of each group, shapes (n,) and (n_groups + 1,)."""
    members = np.argsort(codes, kind="stable").astype(np.int64)
    kept = codes[members] >= 0
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    starts[1:] = np.cumsum(np.bincount(codes[codes >= 0], minlength=n_groups))
    return members[kept], starts


def _top(tracks: np.ndarray, counts: np.ndarray, popularity: np.ndarray, top: int = TOP_TRACKS) -> np.ndarray:
    """The ``top`` tracks by count, ties to the overall more popular, then the smaller id."""
    if len(counts) > top:  # only tracks counted at least as often as the top-th can be among the top: sort those
        kept = counts >= np.partition(counts, len(counts) - top)[len(counts) - top]
        tracks, counts = tracks[kept], counts[kept]
    order = np.lexsort((tracks, -popularity[tracks], -counts))[:top]
    return tracks[order].astype(np.int64)


def read_catalog(dataset: str | os.PathLike) -> Catalog:
    """The dataset's ``tracks`` table in track id order (ids must be dense, as ingest writes them)."""
    table = open_table(dataset, "tracks", ["track_id", "track_uri", "track_name", "artist_uri", "artist_name"]
                       ).to_table(columns=["track_id", "track_uri", "track_name", "artist_uri", "artist_name"])
    track_id = table.column("track_id").to_numpy()
    dense = np.arange(len(track_id))
    if not np.array_equal(track_id, dense):  # ingest writes them in order: no take over 2.4M strings then
        order = np.argsort(track_id)
        if not np.array_equal(track_id[order], dense):
            raise ValueError(f"dataset {dataset}: tracks/ track_id is not dense 0..{len(track_id) - 1}")
        table = table.take(pa.array(order))
    # Arrow's dictionary encoding: the same codes as a factorize, without 2.4M Python strings.
    artist = pc.dictionary_encode(table.column("artist_uri").combine_chunks()).indices
    uri = table.column("track_uri").combine_chunks()
    return Catalog(uri=uri, name=table.column("track_name").combine_chunks(),
                   artist_name=table.column("artist_name").combine_chunks(),
                   artist=pc.fill_null(artist, -1).to_numpy().astype(np.int32),
                   lookup=pd.Index(uri.to_pandas(), dtype=object))


def build_index(dataset: str | os.PathLike, features: str | os.PathLike | FeatureMatrix,
                exclude_pids: np.ndarray | None = None, track_features: str | os.PathLike | None = None) -> Index:
    """Build the index of an ingest dataset's playlists that are in the feature matrix and not excluded.

    Parameters
    ----------
    dataset : ingest output folder (``playlists/``, ``tracks/``, ``playlist_tracks/``)
    features : the sweep's feature matrix (path or FeatureMatrix), raw values in the sweep's column order
    exclude_pids : ndarray of shape (n_excluded,), playlists left out of every count (held-out playlists)
    track_features : Parquet/CSV table of track audio features (track_uri + the 13 fields); None: the table or
        the cache the audio feature matrix was built from when it is an audio matrix, else derived (see
        :func:`derived_track_features`)

    Returns
    -------
    Index
    """
    matrix = features if isinstance(features, FeatureMatrix) else read_feature_matrix(features)
    catalog = read_catalog(dataset)
    n_tracks = len(catalog.uri)
    keep = np.ones(len(matrix.pid), dtype=bool) if exclude_pids is None else ~np.isin(matrix.pid, exclude_pids)
    pid = matrix.pid[keep]
    values = np.ascontiguousarray(matrix.values[keep])
    row_of = PidIndex(pid).lookup

    entries = open_table(dataset, "playlist_tracks", ["pid", "track_id"]).to_table(columns=["pid", "track_id"])
    row = row_of(entries.column("pid").to_numpy())
    track = entries.column("track_id").to_numpy()
    inside = row >= 0
    if len(track) and (track.min() < 0 or track.max() >= n_tracks):
        raise ValueError(f"dataset {dataset}: playlist_tracks/ refers to track ids not in tracks/")
    row, track = row[inside], track[inside].astype(np.int32)
    by_playlist = _binary_csr(row, track, (len(pid), n_tracks))  # a track listed twice counts once
    by_track = by_playlist.T.tocsr()
    lengths = np.diff(by_playlist.indptr).astype(np.int64)
    popularity = np.diff(by_track.indptr).astype(np.int64)

    playlists = open_table(dataset, "playlists", ["pid", "name_normalized"]).to_table(
        columns=["pid", "name_normalized"])
    title_code = np.full(len(pid), -1, dtype=np.int64)
    codes, titles = pd.factorize(playlists.column("name_normalized").to_pandas(), use_na_sentinel=True)
    playlist_row = row_of(playlists.column("pid").to_numpy())
    title_code[playlist_row[playlist_row >= 0]] = codes[playlist_row >= 0]
    title_rows, title_starts = _grouped(title_code, len(titles))

    used = np.flatnonzero(popularity)
    track_values, source = _track_features(matrix, catalog, by_track, values, track_features)
    return Index(pid=pid, by_playlist=by_playlist, by_track=by_track, lengths=lengths, popularity=popularity,
                 popular=_top(used, popularity[used], popularity), features=values, track_features=track_values,
                 track_feature_source=source, title_code=title_code, titles=pd.Index(titles, dtype=object),
                 title_rows=title_rows, title_starts=title_starts, catalog=catalog,
                 feature_source=str(matrix.metadata.get("source", "unknown")), excluded=int((~keep).sum()))


def _binary_csr(row: np.ndarray, column: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """The 0/1 matrix with a 1 at every (row, column) pair (a pair given twice is one 1), canonical CSR.

    ``column`` (int32) becomes the matrix's indices when ``row`` is non-decreasing and is then sorted in place:
    pass an array of your own (build_index passes a fresh one; a copy of 66M entries is what this avoids).
    """
    if len(row) and np.all(row[1:] >= row[:-1]):
        # Entries grouped by row already (playlist_tracks is in pid order, as is the feature matrix): the CSR
        # arrays directly, without the COO detour's copies and sort over 66M entries.
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=shape[0]), out=indptr[1:])
        matrix = sp.csr_matrix((np.ones(len(column), np.float32), column, indptr), shape=shape)
    else:
        matrix = sp.csr_matrix((np.ones(len(row), np.float32), (row, column)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def derived_track_features(by_track: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """Each track's mean feature vector over the index playlists holding it, shape (n_tracks, n_features).

    For a co-occurrence embedding this puts tracks in the playlists' own space (a track is where the playlists
    holding it are); NaN for a track no index playlist holds.
    """
    sums = by_track @ values.astype(np.float64)
    counts = np.diff(by_track.indptr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts[:, None]).astype(np.float32)


def track_feature_source(matrix: FeatureMatrix, table: str | os.PathLike | None) -> tuple[str, Path | None]:
    """Where :func:`build_index` takes per-track features from: ``("table", path)``, ``("cache", path)`` (the
    audio feature cache beside an audio feature matrix) or ``("derived", None)``."""
    from raysweep.features.audio import AUDIO_FEATURES

    audio = matrix.metadata.get("source") == "audio" and set(matrix.columns) <= set(AUDIO_FEATURES)
    recorded = matrix.metadata.get("table")
    if table is None and audio and recorded and Path(recorded).exists():
        table = recorded
    if table is not None:
        return "table", Path(table)
    cache = Path(matrix.path).resolve().parent / "audio_features_cache.sqlite" if matrix.path else None
    if audio and cache is not None and cache.exists():
        return "cache", cache
    return "derived", None


def _track_features(matrix: FeatureMatrix, catalog: Catalog, by_track: sp.csr_matrix, values: np.ndarray,
                    table: str | os.PathLike | None) -> tuple[np.ndarray, str]:
    """Per-track raw features in the feature matrix's columns, and a phrase saying where they came from."""
    from raysweep.features.audio import AUDIO_FEATURES, AudioFeatureCache, read_feature_table

    kind, path = track_feature_source(matrix, table)
    if kind == "table":
        found = read_feature_table(path, columns=list(matrix.columns))
        # The join on URI in Arrow (one hash of the table's URIs), not a pandas reindex of 2.4M strings.
        position = pc.index_in(catalog.uri, value_set=found.column("track_uri").combine_chunks())
        has = position.is_valid().to_numpy(zero_copy_only=False)
        columns = np.column_stack([found.column(c).to_numpy() for c in matrix.columns]).astype(np.float32)
        aligned = np.full((len(catalog.uri), len(matrix.columns)), np.nan, dtype=np.float32)
        aligned[has] = columns[position.drop_null().to_numpy()]
        return aligned, f"the track audio-feature table {path}"
    if kind == "cache":
        with AudioFeatureCache(path) as store:
            found, has = store.lookup(catalog.uri)
        columns = [AUDIO_FEATURES.index(c) for c in matrix.columns]
        found = found[:, columns].astype(np.float32)
        found[~has] = np.nan
        return found, f"the audio feature cache {path}"
    return derived_track_features(by_track, values), (
        "each track's mean feature vector over the index playlists holding it (the feature matrix has no "
        "per-track features)")
