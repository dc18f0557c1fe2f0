"""Audio features: a track feature table read and checked, and the playlist means the original study clustered.

A playlist's features are the means of 13 Spotify audio features over its track entries that have features
(a track listed twice counts twice, as in a groupby over the playlist's rows). Features come from a table
(``--table``: Parquet or CSV, e.g. the generator's ``track_audio_features.parquet``) or from the Web API
(:mod:`raysweep.features.spotify`); both fill one SQLite cache keyed by track URI
(:mod:`raysweep.features.audio_cache`), so no track is fetched twice.
A real table often lacks a feature or holds one constant value for it (a filler): such columns are left out with
a warning, and the matrix's metadata says which and why.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from raysweep.dataset import AUDIO_FEATURES, PidIndex, open_table
from raysweep.feature_matrix import validate_values, write_feature_matrix
from raysweep.features.audio_cache import STATUS_NULL, STATUS_OK, AudioFeatureCache, default_cache_path

TRACK_URI_PREFIX = "spotify:track:"
ID_COLUMNS = ("id", "track_id")  # where public audio-feature exports keep the bare 22-character track id
_log = logging.getLogger(__name__)


def check_columns(columns: list[str] | None) -> list[str] | None:
    """``columns`` (names of audio features) in the canonical order, or None; ValueError naming an unknown one."""
    if columns is None:
        return None
    unknown = [name for name in columns if name not in AUDIO_FEATURES]
    if unknown:
        raise ValueError(f"--columns: unknown audio feature {', '.join(unknown)} "
                         f"(available: {', '.join(AUDIO_FEATURES)})")
    if not columns:
        raise ValueError("--columns: no column given")
    return [name for name in AUDIO_FEATURES if name in columns]


def read_feature_table(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Read a track audio-feature table (Parquet, or CSV by its ``.csv``/``.csv.gz`` suffix) and validate it.

    The table is keyed by ``track_uri``, or by bare 22-character track ids in ``id`` or ``track_id`` (as the
    public audio-feature exports are), which become ``spotify:track:<id>``.

    Parameters
    ----------
    path : path of the table
    columns : list of str, optional
        Features to read, each of which the table must have; default: every one of the 13 it has.

    Returns
    -------
    table : pa.Table
        ``track_uri`` (string) and the features read (float64, in the canonical order), one row per URI.

    Raises ValueError naming the file and: the missing key, a requested feature it lacks (with those it has), no
    feature at all, a bad track id, a column (among those read) holding nulls or non-numbers, a duplicated URI.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio feature table {path}: no such file")
    if path.name.endswith((".csv", ".csv.gz")):
        table = pcsv.read_csv(path)
    else:
        table = pq.read_table(path)
    key = next((name for name in ("track_uri", *ID_COLUMNS) if name in table.column_names), None)
    if key is None:
        raise ValueError(f"audio feature table {path}: no track_uri column, nor a track id column "
                         f"({' or '.join(ID_COLUMNS)}); it has {', '.join(table.column_names)}")
    present = [name for name in AUDIO_FEATURES if name in table.column_names]
    if columns is None:
        used = present
    else:
        absent = [name for name in columns if name not in present]
        if absent:
            raise ValueError(f"audio feature table {path}: has no column {', '.join(absent)} "
                             f"(its audio features: {', '.join(present) or 'none'})")
        used = [name for name in AUDIO_FEATURES if name in columns]
    if not used:
        raise ValueError(f"audio feature table {path}: none of the 13 audio features ({', '.join(AUDIO_FEATURES)}) "
                         f"is among its columns ({', '.join(table.column_names)})")
    for name in (key, *used):
        if table.column(name).null_count:
            raise ValueError(f"audio feature table {path}: column {name} has "
                             f"{table.column(name).null_count} null values")
    uris = table.column(key).cast(pa.string())
    arrays = {"track_uri": uris if key == "track_uri" else _track_uris(uris, path, key)}
    for name in used:
        try:
            arrays[name] = table.column(name).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"audio feature table {path}: column {name} is not numeric ({exc})") from exc
    table = pa.table(arrays)
    if pc.count_distinct(table.column("track_uri")).as_py() != table.num_rows:
        counts = pc.value_counts(table.column("track_uri"))
        duplicate = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))[0]
        raise ValueError(f"audio feature table {path}: track_uri {duplicate} appears more than once")
    return table


def _track_uris(ids: pa.ChunkedArray, path: Path, key: str) -> pa.ChunkedArray:
    """``spotify:track:<id>`` of bare track ids; ValueError naming the first value that is not one."""
    bad = pc.invert(pc.match_substring_regex(ids, r"^[0-9A-Za-z]{22}$"))
    if pc.any(bad).as_py():
        first = pc.filter(ids, bad)[0].as_py()
        raise ValueError(f"audio feature table {path}: column {key} holds {first!r}, not a bare 22-character "
                         "Spotify track id (or name the URIs column track_uri)")
    return pc.binary_join_element_wise(TRACK_URI_PREFIX, ids, "")


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
    entries = open_table(dataset, "playlist_tracks", ["pid", "track_id"])
    playlist_rows = PidIndex(pid, source="playlists/")
    n_playlists, n_tracks = len(pid), len(track_values)
    sums = np.zeros((n_playlists, track_values.shape[1]))
    n_entries = np.zeros(n_playlists, dtype=np.int64)
    n_with = np.zeros(n_playlists, dtype=np.int64)
    filled = np.where(track_has_features[:, None], track_values, 0.0)
    for batch in entries.to_batches(columns=["pid", "track_id"]):
        row = playlist_rows.lookup_known(batch.column("pid").to_numpy(), where=f"dataset {dataset}: playlist_tracks")
        tid = batch.column("track_id").to_numpy().astype(np.int64)
        if len(tid) and (tid.min() < 0 or tid.max() >= n_tracks):
            raise ValueError(f"dataset {dataset}: playlist_tracks holds track_id outside 0..{n_tracks - 1}")
        n_entries += np.bincount(row, minlength=n_playlists)
        n_with += np.bincount(row, weights=track_has_features[tid], minlength=n_playlists).astype(np.int64)
        entry_values = filled[tid]
        for j in range(entry_values.shape[1]):
            sums[:, j] += np.bincount(row, weights=entry_values[:, j], minlength=n_playlists)
    return sums, n_entries, n_with


def build_audio_features(dataset: str | os.PathLike, out: str | os.PathLike, table: str | os.PathLike | None = None,
                         cache: str | os.PathLike | None = None, min_coverage: float = 0.5,
                         columns: list[str] | None = None) -> dict:
    """Write the audio feature matrix of an ingest output (no network).

    Imports ``table`` into the cache if given, then takes every playlist's mean of the features over its
    entries that have them. The features are ``columns``, else those the table has, else all 13; one that is
    constant over the dataset's tracks (a filler value) carries nothing and cannot be standardized, so it is left
    out too. Every feature left out is logged in one warning line and recorded, with the reason, in the
    metadata's ``columns``. Playlists whose coverage (entries with features / entries) is below ``min_coverage``
    are left out and counted. The matrix holds raw means; its metadata records the standardization (mean and std
    per column over the kept playlists) every later stage applies.

    Parameters
    ----------
    dataset : path of the ingest output (``playlists/``, ``tracks/``, ``playlist_tracks/``)
    out : path or URI of the feature matrix to write
    table : optional Parquet/CSV of track audio features (``track_uri``, ``id`` or ``track_id`` + features)
    cache : SQLite cache path; default ``audio_features_cache.sqlite`` beside ``out``
    min_coverage : float in [0, 1]
    columns : list of str, optional; the features to use (names among the 13)

    Returns
    -------
    summary : dict with ``out``, ``cache``, ``n_playlists``, ``n_playlists_left_out``, ``coverage``,
        ``columns`` (used), ``columns_left_out`` (name -> reason), ``seconds``
    """
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage={min_coverage}: must be within [0, 1]")
    requested = check_columns(columns)
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
            features = read_feature_table(table, requested)
            wanted = pc.is_in(features.column("track_uri"), value_set=track_uri)
            store.import_table(features.filter(wanted), source=f"table:{Path(table).name}")
            used = features.column_names[1:]
        else:
            used = requested or list(AUDIO_FEATURES)
        cache_counts = store.counts()
        by_uri, has_by_uri = store.lookup(track_uri, used)
    reason = "not in the table" if table is not None and requested is None else "not chosen (--columns)"
    left_out = {name: reason for name in AUDIO_FEATURES if name not in used}
    # reorder from tracks-table order to dense track_id order
    values = np.empty_like(by_uri)
    has_features = np.empty_like(has_by_uri)
    values[track_id], has_features[track_id] = by_uri, has_by_uri
    values, used, constant = _drop_constant(values, has_features, used)
    left_out.update(constant)
    automatic = left_out if requested is None else constant  # what the user did not choose to leave out
    if automatic:
        _log.warning("audio features of %s: left out %s", dataset,
                     "; ".join(f"{name} ({why})" for name, why in automatic.items()))
    if not used:
        raise ValueError(f"audio features of {dataset}: no feature column left to use "
                         f"({'; '.join(f'{name}: {why}' for name, why in left_out.items())})")
    sums, n_entries, n_with = playlist_track_sums(dataset, pid, values, has_features)
    coverage = np.divide(n_with, n_entries, out=np.zeros(len(pid)), where=n_entries > 0)
    keep = (coverage >= min_coverage) & (n_with > 0)
    if not keep.any():
        raise ValueError(f"dataset {dataset}: no playlist reaches min_coverage={min_coverage} "
                         f"({int(has_features.sum())} of {len(has_features)} tracks have features): "
                         "fetch or import more features, or lower --min-coverage")
    means = sums[keep] / n_with[keep, None]
    validate_values(means, used, f"audio features of {dataset}")
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
        "columns": {"used": used, "left_out": left_out},
        "dataset": str(dataset),
        "table": str(table) if table is not None else None,
    }
    write_feature_matrix(out, pid[keep], means.astype(np.float32), used, metadata)
    return {"out": str(out), "cache": str(cache_path), "n_playlists": int(keep.sum()),
            "n_playlists_left_out": int((~keep).sum()), "coverage": coverage_record, "columns": used,
            "columns_left_out": left_out, "seconds": time.perf_counter() - start}


def _drop_constant(values: np.ndarray, has_features: np.ndarray, used: list[str]
                   ) -> tuple[np.ndarray, list[str], dict]:
    """Leave out the features that are constant over the tracks with features.

    Returns the other columns of ``values`` (n_tracks, n_used), their names, and {name: reason} of those left out.
    """
    known = values[has_features]
    flat = np.ptp(known, axis=0) == 0 if len(known) > 1 else np.zeros(len(used), dtype=bool)
    constant = {name: f"constant: every track has {column[0]:g}" for name, column, is_flat in zip(used, known.T, flat)
                if is_flat}
    return values[:, ~flat], [name for name in used if name not in constant], constant
