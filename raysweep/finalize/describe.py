"""Describe the clusters from the ingest dataset: top playlist names, artists and tracks per cluster.

:func:`check_dataset` checks that a dataset holds every pid of the feature matrix (before the refit, so a bad
dataset fails in seconds); :func:`describe_from_dataset` counts names, artists and tracks per cluster with
integer work (dictionary encoding, one radix sort, ``numpy.bincount``), streaming the track entries.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from raysweep.dataset import PidIndex, open_table

TOP = 10  # names, artists and tracks listed per cluster


def describe_from_dataset(dataset: str | os.PathLike, pid: np.ndarray, labels: np.ndarray,
                          top: int = TOP) -> pd.DataFrame:
    """Per cluster, the most common normalized playlist names, artists and tracks in an ingest dataset.

    Counting is integer work: names and artists are dictionary-encoded, track entries are streamed by record
    batch, grouped by cluster with one radix sort and counted per cluster with ``numpy.bincount``.

    Parameters
    ----------
    dataset : ingest output folder with ``playlists/``, ``tracks/`` and ``playlist_tracks/``
    pid : ndarray of shape (n_samples,), the feature matrix's pids
    labels : ndarray of shape (n_samples,), their clusters
    top : int, how many of each to keep

    Returns
    -------
    DataFrame with one row per non-empty cluster: cluster, top_names (list of {name, count}: playlists),
    top_artists (list of {artist_name, artist_uri, count}: track entries by the artist), top_tracks (list of
    {track_name, artist_name, track_uri, count}: entries of the track). Ties go to the earlier name or artist in
    the dataset and to the smaller track id.
    """
    import pyarrow.compute as pc

    playlists, tracks, entries = check_dataset(dataset, pid)
    playlists, tracks = playlists.to_table(), tracks.to_table()
    playlist_pid = playlists.column("pid").to_numpy()
    cluster_of = PidIndex(pid, values=np.asarray(labels, dtype=np.int32)).lookup  # -1: a pid without a cluster
    clusters = np.unique(labels)

    names = pc.dictionary_encode(playlists.column("name_normalized").combine_chunks())
    name_index = names.indices.fill_null(-1).to_numpy()
    named = name_index >= 0
    [top_names] = _top_counts(cluster_of(playlist_pid)[named], clusters, top,
                              (name_index[named], len(names.dictionary)))

    track_id = tracks.column("track_id").to_numpy()
    if len(track_id) and track_id.min() < 0:
        raise ValueError(f"dataset {dataset}: tracks/ has negative track ids")
    row_of_track = np.full(int(track_id.max(initial=-1)) + 1, -1, dtype=np.int64)
    row_of_track[track_id] = np.arange(len(track_id))
    artists = pc.dictionary_encode(tracks.column("artist_uri").combine_chunks())
    artist_of_row = artists.indices.fill_null(-1).to_numpy()

    entry_cluster, entry_row = [], []
    for batch in entries.to_batches(columns=["pid", "track_id"]):
        cluster = cluster_of(batch.column("pid").to_numpy())
        kept = cluster >= 0  # entries of playlists the feature matrix left out have no cluster
        ids = batch.column("track_id").to_numpy()[kept]
        rows = row_of_track[np.clip(ids, 0, len(row_of_track) - 1)] if len(row_of_track) else np.full(len(ids), -1)
        unknown = (ids < 0) | (ids >= len(row_of_track)) | (rows < 0)
        if unknown.any():
            raise ValueError(f"dataset {dataset}: playlist_tracks/ refers to track ids not in tracks/ "
                             f"(e.g. {ids[unknown][0]})")
        entry_cluster.append(cluster[kept])
        entry_row.append(rows.astype(np.int32))
    entry_cluster = np.concatenate(entry_cluster) if entry_cluster else np.empty(0, np.int32)
    entry_row = np.concatenate(entry_row) if entry_row else np.empty(0, np.int32)
    n_artists = len(artists.dictionary)
    entry_artist = artist_of_row[entry_row]
    entry_artist[entry_artist < 0] = n_artists  # a track without artist: counted in a bin that is never listed
    top_tracks, top_artists = _top_counts(entry_cluster, clusters, top, (entry_row, len(track_id)),
                                          (entry_artist, n_artists))

    def listing(found, fields):
        return [{**{name: column[index].as_py() for name, column in fields.items()}, "count": count}
                for index, count in found]

    # An artist's name: the one on its first track (dictionary_encode numbers values by first appearance).
    with_uri = np.flatnonzero(artist_of_row >= 0)
    first_track = with_uri[np.unique(artist_of_row[with_uri], return_index=True)[1]]
    artist_name_of = pc.take(tracks.column("artist_name"), pa.array(first_track))
    return pd.DataFrame({
        "cluster": clusters.astype(np.int32),
        "top_names": [listing(top_names[c], {"name": names.dictionary}) for c in clusters],
        "top_artists": [listing(top_artists[c], {"artist_name": artist_name_of, "artist_uri": artists.dictionary})
                        for c in clusters],
        "top_tracks": [listing(top_tracks[c], {"track_name": tracks.column("track_name"),
                                               "artist_name": tracks.column("artist_name"),
                                               "track_uri": tracks.column("track_uri")})
                       for c in clusters],
    })


def check_dataset(dataset: str | os.PathLike, pid: np.ndarray):
    """Check that ``dataset`` is an ingest output holding every pid of the feature matrix.

    Returns the ``playlists``, ``tracks`` and ``playlist_tracks`` datasets (pyarrow), restricted to the columns
    the finalizer reads; raises naming the folder, table, columns or pids at fault.
    """
    if not Path(dataset).is_dir():
        raise FileNotFoundError(f"dataset {dataset} does not exist (expected the output folder of raysweep.ingest)")
    playlists = _dataset(dataset, "playlists", ["pid", "name_normalized"])
    tracks = _dataset(dataset, "tracks", ["track_id", "track_uri", "track_name", "artist_uri", "artist_name"])
    entries = _dataset(dataset, "playlist_tracks", ["pid", "track_id"])
    known = PidIndex(playlists.to_table(columns=["pid"]).column("pid").to_numpy()).lookup(pid) >= 0
    if not known.all():
        examples = ", ".join(str(p) for p in pid[~known][:5])
        raise ValueError(f"dataset {dataset}: {int((~known).sum()):,} of the feature matrix's {len(pid):,} pids "
                         f"are not among its playlists (e.g. {examples}); is it the dataset the features came from?")
    return playlists, tracks, entries


def _dataset(dataset, name: str, columns: list[str]):
    part = open_table(dataset, name, columns)
    return part.replace_schema(pa.schema([part.schema.field(c) for c in columns]))


def _top_counts(group: np.ndarray, clusters: np.ndarray, top: int,
                *columns: tuple[np.ndarray, int]) -> list[dict[int, list[tuple[int, int]]]]:
    """Per cluster, the ``top`` most frequent items of each column as (item, count), ties to the smaller item.

    Parameters
    ----------
    group : ndarray of shape (n,), the cluster of each occurrence
    clusters : ndarray, the clusters to report (an absent one gets an empty list)
    top : int
    *columns : (item, n_items) pairs; item is an int ndarray of shape (n,) with values in [0, n_items], where the
        value n_items is a bin that is counted but never listed

    Returns
    -------
    one dict {cluster: [(item, count), ...]} per column
    """
    # A stable sort of 16-bit keys is a radix sort in NumPy: O(n) for tens of millions of entries.
    keys = group.astype(np.int16) if clusters.max(initial=0) < 2**15 else group
    order = np.argsort(keys, kind="stable")
    sorted_group = keys[order]
    starts = np.searchsorted(sorted_group, clusters, side="left")
    ends = np.searchsorted(sorted_group, clusters, side="right")
    found = []
    for item, n_items in columns:
        sorted_item = item[order]
        per_cluster = {}
        for cluster, start, end in zip(clusters.tolist(), starts, ends):
            counts = np.bincount(sorted_item[start:end], minlength=n_items + 1)[:n_items]
            floor = np.partition(counts, n_items - top)[n_items - top] if top < n_items else 0
            candidates = np.flatnonzero(counts >= max(floor, 1))
            best = candidates[np.lexsort((candidates, -counts[candidates]))][:top]
            per_cluster[cluster] = [(int(i), int(counts[i])) for i in best]
        found.append(per_cluster)
    return found

