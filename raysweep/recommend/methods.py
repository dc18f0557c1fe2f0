"""Recommendation methods: a registry of functions from a seed to ranked track ids.

Every method returns distinct track ids, best first, never a seed track, at most ``n`` of them; when its own
candidates run out it continues with the seed's cluster's popular tracks and then the overall popular tracks, so
every list is full (the challenge scores 500). A seed is its known track ids and/or a title: with tracks, methods
use the tracks (the title is then ignored); with a title only, they use the index playlists of the same
normalized title (the MPD's own normalization, :func:`raysweep.mpd.normalize_name`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from raysweep.feature_matrix import apply_scaling
from raysweep.recommend.index import Clustering, Index

NEIGHBOURS = 100  # playlists whose tracks a neighbour-scoring query sums
STUDY_NEIGHBOURS = 10  # the study's app: the 10 nearest playlists of the predicted cluster
EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Seed:
    """What a recommendation starts from.

    Attributes
    ----------
    tracks : ndarray of shape (n_seed,), int64, distinct known track ids (may be empty)
    title : str or None, the playlist's title (normalized when matched)
    """

    tracks: np.ndarray
    title: str | None = None


def seed_features(index: Index, seed: Seed) -> np.ndarray | None:
    """The seed's raw feature vector (n_features,): the mean over its tracks with features, else the mean over the
    index playlists of its title; None when neither exists."""
    if seed.tracks.size:
        values = index.track_features[seed.tracks]
        known = ~np.isnan(values).any(axis=1)
        if known.any():
            return values[known].mean(axis=0)
    if seed.title:
        rows = index.rows_titled(seed.title)
        if rows.size:
            return index.features[rows].mean(axis=0)
    return None


def seed_clusters(index: Index, clustering: Clustering, seed: Seed) -> np.ndarray:
    """The seed's cluster(s), most likely first; empty when nothing places it.

    With tracks: the model's prediction from the seed's mean features (the study's way; a GMM gives its top
    components). Title only: the cluster holding most index playlists of that normalized title, i.e. the cluster
    whose playlist names match it best.
    """
    if seed.tracks.size:
        features = seed_features(index, Seed(seed.tracks))
        if features is not None:
            return clustering.clusters_of(features)
    if seed.title:
        rows = index.rows_titled(seed.title)
        if rows.size:
            return np.array([np.bincount(clustering.labels[rows]).argmax()], dtype=np.int64)
    return EMPTY


def _distinct(candidates: list[np.ndarray], exclude: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` distinct ids of the concatenated ``candidates`` that are not in ``exclude``."""
    ranked = np.concatenate([np.asarray(c, dtype=np.int64) for c in candidates])
    ranked = ranked[~np.isin(ranked, exclude)]
    _, first = np.unique(ranked, return_index=True)
    return ranked[np.sort(first)][:n]


def _cluster_popular(clustering: Clustering | None, clusters: np.ndarray) -> list[np.ndarray]:
    return [] if clustering is None else [clustering.popular[c] for c in clusters]


def _sum_rows(index: Index, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Tracks of the playlists ``rows`` ranked by the summed ``weights`` of the playlists holding them (ties: the
    more popular, then the smaller id)."""
    held = index.by_playlist[rows]
    tracks, inverse = np.unique(held.indices, return_inverse=True)
    scores = np.bincount(inverse, weights=np.repeat(weights, np.diff(held.indptr)))
    return tracks[np.lexsort((tracks, -index.popularity[tracks], -scores))]


def neighbour_scores(index: Index, seed_tracks: np.ndarray, allowed: Callable | None = None) -> np.ndarray:
    """Playlist-neighbour scoring: tracks of the seed's nearest playlists, weighted by cosine similarity.

    Playlists sharing a seed track come from one gather of the track x playlist matrix; their similarity is the
    cosine between binary track sets, |P ∩ S| / sqrt(|P| |S|); the ``NEIGHBOURS`` most similar ones vote for their
    tracks with that weight (playlist-based kNN, the neighbourhood method of many RecSys Challenge 2018 entries:
    Zamani et al. 2019, section 5). ``allowed`` maps rows (n,) to a bool mask restricting the neighbours.

    Returns ranked track ids (seed tracks included: the caller drops them).
    """
    rows, overlap = np.unique(index.by_track[seed_tracks].indices, return_counts=True)
    if allowed is not None:
        keep = allowed(rows)
        rows, overlap = rows[keep], overlap[keep]
    if rows.size == 0:
        return EMPTY
    similarity = overlap / np.sqrt(index.lengths[rows] * float(seed_tracks.size))
    if rows.size > NEIGHBOURS:
        nearest = np.argpartition(-similarity, NEIGHBOURS - 1)[:NEIGHBOURS]
        rows, similarity = rows[nearest], similarity[nearest]
    return _sum_rows(index, rows, similarity)


# --------------------------------------------------------------------------------------------- the methods

def _popular(index: Index, clustering: Clustering | None, seed: Seed, n: int) -> np.ndarray:
    return _distinct([index.popular], seed.tracks, n)


def _popular_cluster(index: Index, clustering: Clustering, seed: Seed, n: int) -> np.ndarray:
    clusters = seed_clusters(index, clustering, seed)
    return _distinct(_cluster_popular(clustering, clusters) + [index.popular], seed.tracks, n)


def _cluster_cooccurrence(index: Index, clustering: Clustering, seed: Seed, n: int) -> np.ndarray:
    clusters = seed_clusters(index, clustering, seed)
    found = EMPTY
    if seed.tracks.size and clusters.size:
        found = neighbour_scores(index, seed.tracks, lambda rows: np.isin(clustering.labels[rows], clusters))
    return _distinct([found] + _cluster_popular(clustering, clusters) + [index.popular], seed.tracks, n)


def _cooccurrence(index: Index, clustering: Clustering | None, seed: Seed, n: int) -> np.ndarray:
    if seed.tracks.size:
        found = neighbour_scores(index, seed.tracks)
    elif seed.title:
        rows = index.rows_titled(seed.title)
        found = _sum_rows(index, rows, np.ones(rows.size)) if rows.size else EMPTY
    else:
        found = EMPTY
    return _distinct([found, index.popular], seed.tracks, n)


def smallest(values: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` smallest of ``values`` (m,), smallest first: ``np.argsort(values, kind="stable")[:n]``.

    A partition finds the n-th smallest value, and only the values up to it are sorted (O(m), not O(m log m):
    the study method ranks a cluster of ~50,000 playlists per query at 1M).
    """
    if values.size <= n:
        return np.argsort(values, kind="stable")
    kth = np.partition(values, n - 1)[n - 1]
    if np.isnan(kth):  # fewer than n numbers: NaN sorts last, as argsort puts it
        return np.argsort(values, kind="stable")[:n]
    candidates = np.flatnonzero(values <= kth)  # ascending positions, so a stable sort keeps argsort's tie order
    return candidates[np.argsort(values[candidates], kind="stable")[:n]]


def _study(index: Index, clustering: Clustering, seed: Seed, n: int) -> np.ndarray:
    features = seed_features(index, seed)
    if features is None:
        return _distinct([index.popular], seed.tracks, n)
    cluster = clustering.clusters_of(features)[:1]
    point = apply_scaling(features[None, :], clustering.scaling)[0]
    rows = clustering.rows_of(cluster)
    found = EMPTY
    if rows.size:
        cityblock = np.abs(clustering.scaled_rows[rows] - point).sum(axis=1)
        nearest = rows[smallest(cityblock, STUDY_NEIGHBOURS)]
        candidates = np.unique(index.by_playlist[nearest].indices).astype(np.int64)
        squared = ((apply_scaling(index.track_features[candidates], clustering.scaling) - point) ** 2).sum(axis=1)
        squared[np.isnan(squared)] = np.inf  # a track without features goes last
        found = candidates[np.lexsort((candidates, squared))]
    return _distinct([found] + _cluster_popular(clustering, cluster) + [index.popular], seed.tracks, n)


def _random(index: Index, clustering: Clustering | None, seed: Seed, n: int) -> np.ndarray:
    # Seeded by the seed itself: the same playlist gets the same list on every run.
    rng = np.random.default_rng(zlib.crc32(seed.tracks.tobytes() + (seed.title or "").encode()))
    used = index.used_tracks
    draw = rng.choice(used, size=min(used.size, n + seed.tracks.size), replace=False)
    return _distinct([draw], seed.tracks, n)


@dataclass(frozen=True)
class Method:
    """A registered method: its name, whether it needs a clustering, the ranking function and its description."""

    name: str
    uses_clusters: bool
    rank: Callable[[Index, Clustering | None, Seed, int], np.ndarray]
    description: str


METHODS = {method.name: method for method in (
    Method("cluster-cooccurrence", True, _cluster_cooccurrence,
           "Playlist-neighbour scoring restricted to the seed's cluster(s): the seed's cluster is predicted from "
           "its mean features (a GMM gives its most probable components, up to 3, until they hold 80% of the "
           "probability); among that cluster's playlists sharing a seed track, the 100 most similar by cosine of "
           "their track sets vote for their tracks with their similarity (playlist-based kNN, the neighbourhood "
           "method of many RecSys Challenge 2018 entries; Zamani et al. 2019, section 5). A query gathers the "
           "playlists sharing a seed track (one row gather of the track x playlist matrix) and keeps the "
           "cluster's; it never scans all playlists. Title-only seeds get the popular tracks of the "
           "cluster holding most playlists of that normalized title; short lists are filled with the cluster's "
           "popular tracks."),
    Method("cooccurrence", False, _cooccurrence,
           "The same neighbour scoring over all playlists, no clusters: what the clusters cost or gain. A title-only "
           "seed is served by the tracks of the playlists with the same normalized title, most frequent first."),
    Method("study", True, _study,
           "The original study's app (nsanka/RecSys, streamlit): the seed's mean features, scaled as in the sweep, "
           "predict its cluster; the 10 nearest playlists of that cluster by cityblock distance are taken and "
           "their songs ranked by squared Euclidean feature distance to the seed (the app returned the top 30; "
           "here the list continues with the cluster's popular tracks up to 500). Track features are the audio "
           "features when the run clustered audio features; with another feature source (the co-occurrence "
           "embedding) a track's vector is the mean of the index playlists holding it. A title-only seed's "
           "features are the mean over the playlists of that title."),
    Method("popular-cluster", True, _popular_cluster,
           "The seed's cluster's most frequent tracks (playlists holding them), then the overall ones."),
    Method("popular", False, _popular,
           "The most frequent tracks overall: the classic floor of playlist continuation (the challenge's "
           "popularity baseline)."),
    Method("random", False, _random,
           "Uniformly random tracks of the index, seeded by the seed: the floor every method must beat."),
)}
DEFAULT_METHOD = "cluster-cooccurrence"


def get_method(name: str) -> Method:
    """The registered method ``name``; ValueError listing the known ones otherwise."""
    if name not in METHODS:
        raise ValueError(f"--method {name!r}: unknown; expected one of {', '.join(METHODS)}")
    return METHODS[name]
