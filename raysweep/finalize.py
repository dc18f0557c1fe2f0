"""The finalizer: refit the sweep's winner on every playlist, assign each one, and describe the clusters.

``python -m raysweep.finalize --run RESULTS/RUN [--model M --k K] [--features PATH] [--dataset OUT]``

It reads the sweep's ``run.json`` (feature matrix, feature columns, scaling, seed) and ``winner.json``, refits the
model with :func:`raysweep.models.fit_final` (its family's one fit path in ``raysweep.families``, the sweep's) on
100% of the feature matrix in the sweep's scaled space, and writes ``RESULTS/RUN/final/`` through
:func:`raysweep.storage.atomic_dir`, so a rerun replaces the previous result whole:

- ``assignments.parquet``: pid, cluster, distance to the cluster centre in the scaled space (and, for
  GaussianMixture, the membership probability of the assigned component);
- ``model.joblib`` and ``model.json`` (model, k, feature columns, scaling, library versions, sha256 of the
  artifact); :func:`load_model` checks the hash, and :meth:`LoadedModel.predict` the feature columns;
- ``cluster_profiles.parquet``: per cluster its size and feature means in the original units, and with
  ``--dataset`` the ten most common normalized playlist names, artists and tracks;
- ``plots/``, ``final.json`` (everything measured, machine-readable) and ``report.md`` (read this first);
- stability: the adjusted Rand index between the full refit and the same model fitted on the 2% and 10% samples
  (prefixes of the sweep's permutation), as the original study compared its 2% and 10% runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raysweep.families import REGISTRY, get_family
from raysweep.feature_matrix import FeatureMatrix, apply_scaling, read_feature_matrix
from raysweep.ingest import open_table
from raysweep.storage import atomic_dir

STABILITY_FRACTIONS = (0.02, 0.10)  # the original study's two sample sizes
MIN_ROWS_PER_CLUSTER = 10  # a stability sample smaller than this many rows per cluster is skipped, not scored
PLOT_SAMPLE = 20_000  # points in the 2-D projection plot
TOP = 10  # names, artists and tracks listed per cluster
RUN_KEYS = ("features", "feature_columns", "scaling", "seed", "n_total")
# 2: model.joblib holds a FinalModel that is a scikit-learn estimator (raysweep.families). A format-1 artifact
# (FinalModel before the family registry) still loads: FinalModel.__setstate__ converts it.
MODEL_FORMAT = 2
_READABLE_FORMATS = (1, MODEL_FORMAT)
SCORE_LABELS = (("silhouette", "silhouette"), ("davies_bouldin", "Davies-Bouldin"),
                ("calinski_harabasz", "Calinski-Harabasz"), ("copeland", "head-to-head wins - losses"))


# --------------------------------------------------------------------------------------------- inputs

def read_run(run: str | os.PathLike) -> tuple[dict, dict | None]:
    """Read a sweep run folder's ``run.json`` and, when present, its ``winner.json``.

    Returns
    -------
    run_record : dict, the contents of run.json (at least the keys in ``RUN_KEYS``)
    winner : dict or None, the contents of winner.json, None when the sweep wrote none
    """
    folder = Path(run)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {folder} does not exist")
    run_record = _read_json(folder / "run.json", what="run record (written by raysweep.tune)")
    missing = [key for key in RUN_KEYS if key not in run_record]
    if missing:
        raise ValueError(f"{folder / 'run.json'}: missing keys {', '.join(missing)}")
    winner_path = folder / "winner.json"
    winner = _read_json(winner_path, what="winner") if winner_path.exists() else None
    return run_record, winner


def _read_json(path: Path, what: str) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (the {what})")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def resolve_choice(run: str | os.PathLike, winner: dict | None, model: str | None,
                   k: int | None) -> tuple[str, int, str]:
    """The model and k to refit: the ones given, else the sweep's winner.

    Returns
    -------
    model : str, a name in ``raysweep.families.REGISTRY``
    k : int, >= 2
    source : str, where the choice came from (for the report)
    """
    if (model is None) != (k is None):
        raise ValueError("--model and --k go together: give both, or neither to refit the sweep's winner")
    if model is not None:
        source = "given on the command line"
    elif winner is None:
        raise FileNotFoundError(f"run {run} has no winner.json (the sweep did not finish or chose no winner); "
                                f"pass --model and --k to refit a configuration of your choice")
    else:
        absent = [key for key in ("model", "k") if winner.get(key) is None]
        if absent:
            raise ValueError(f"{Path(run) / 'winner.json'}: no {' or '.join(absent)} in the winner record")
        model, k, source = winner["model"], winner["k"], "the sweep's winner (winner.json)"
    if model not in REGISTRY:
        raise ValueError(f"unknown model {model!r} ({source}); expected one of {', '.join(REGISTRY)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r} ({source})")
    return model, int(k), source


def load_features(run_record: dict, features: str | os.PathLike | None = None) -> FeatureMatrix:
    """Read the feature matrix the sweep ran on (or ``features``), restricted to the sweep's columns.

    Returns a FeatureMatrix whose ``values`` (n_playlists, n_features) are raw, in the order of the sweep's
    ``feature_columns``; raises naming the file when it lacks a column or does not hold the sweep's playlists.
    """
    location = features if features is not None else run_record["features"]
    try:
        matrix = read_feature_matrix(location)
    except FileNotFoundError as exc:
        if features is not None:
            raise
        raise FileNotFoundError(f"{exc}; it is the matrix named in run.json: pass --features PATH if it "
                                f"moved") from exc
    columns = list(run_record["feature_columns"])
    missing = [c for c in columns if c not in matrix.columns]
    if missing:
        raise ValueError(f"feature matrix {location}: lacks the columns the sweep was fitted on: "
                         f"{', '.join(missing)} (it has {', '.join(matrix.columns)})")
    n, n_total = len(matrix.pid), int(run_record["n_total"])
    if n != n_total:
        difference = f"{n_total - n:,} fewer" if n < n_total else f"{n - n_total:,} more"
        raise ValueError(f"feature matrix {location}: {n:,} playlists, {difference} than the {n_total:,} the sweep "
                         f"ran on; the sweep's samples are prefixes of a permutation of exactly its rows, so "
                         f"finalize needs the same matrix")
    order = [matrix.columns.index(c) for c in columns]
    return FeatureMatrix(pid=matrix.pid, values=np.ascontiguousarray(matrix.values[:, order]), columns=columns,
                         metadata=matrix.metadata, path=str(location))


# --------------------------------------------------------------------------------------------- refit

def fit_options(model: str, run_record: dict, n_rows: int) -> dict:
    """Extra arguments of ``fit_final`` for the full refit of ``model`` on ``n_rows`` rows.

    Each family reads its own from run.json (:meth:`raysweep.families.base.ClusterFamily.refit_options`): Birch
    builds ONE CF-tree over all rows at the sweep's top-rung threshold; agglomerative keeps the sweep's ward cap.
    """
    return get_family(model).refit_options(run_record, n_rows)


def assign(estimator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each row's cluster, distance to its cluster centre and (GaussianMixture only) membership probability.

    Parameters
    ----------
    estimator : raysweep.families.base.FinalModel, from ``fit_final`` (``labels_``, ``cluster_centers_``)
    X : ndarray of shape (n_samples, n_features), the scaled matrix it was fitted on

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
    distance : ndarray of shape (n_samples,), float32, Euclidean, in the scaled space
    probability : ndarray of shape (n_samples,), float32, or None when the model has no ``predict_proba``
    """
    labels = np.asarray(estimator.labels_, dtype=np.int32)
    centres = np.asarray(estimator.cluster_centers_, dtype=np.float32)
    distance = np.empty(len(X), dtype=np.float32)
    step = 1 << 18  # bounds the (rows, features) temporary to a few MB per feature
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        distance[rows] = np.linalg.norm(X[rows] - centres[labels[rows]], axis=1)
    probability = None
    if hasattr(estimator, "predict_proba"):
        probability = np.empty(len(X), dtype=np.float32)
        for start in range(0, len(X), step):
            rows = slice(start, start + step)
            proba = estimator.predict_proba(X[rows])
            probability[rows] = proba[np.arange(len(proba)), labels[rows]]
    return labels, distance, probability


def cluster_profiles(labels: np.ndarray, values: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Size, share and the mean of every feature per non-empty cluster, in the units of ``values``.

    ``values`` are the raw (unscaled) features, so the means are in the original units: the scaling is affine,
    so this equals inverting the scaling of the scaled cluster means, without the round trip.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
    values : ndarray of shape (n_samples, n_features), raw feature values
    columns : list of str, length n_features

    Returns
    -------
    DataFrame with one row per non-empty cluster: cluster, size, share, ``mean_<column>`` per feature
    """
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    present = np.flatnonzero(sizes)
    profile = {"cluster": present.astype(np.int32), "size": sizes[present].astype(np.int64),
               "share": sizes[present] / len(labels)}
    for j, column in enumerate(columns):
        sums = np.bincount(labels, weights=values[:, j].astype(np.float64), minlength=k)
        profile[f"mean_{column}"] = sums[present] / sizes[present]
    return pd.DataFrame(profile)


def standardized_means(profiles: pd.DataFrame, values: np.ndarray, columns: list[str]) -> np.ndarray:
    """Cluster means as distances from the overall mean in overall standard deviations, (n_clusters, n_features).

    One scale for every feature (what the heatmap and the report's "distinctive features" show).
    """
    means = profiles[[f"mean_{c}" for c in columns]].to_numpy()
    overall = values.mean(axis=0, dtype=np.float64)
    spread = values.std(axis=0, dtype=np.float64)
    return (means - overall) / np.where(spread > 0, spread, 1.0)


def stability(model: str, k: int, X: np.ndarray, labels: np.ndarray, fractions=STABILITY_FRACTIONS,
              options: dict | None = None, seed: int = 0) -> list[dict]:
    """Adjusted Rand index between the full refit and the same model fitted on nested samples.

    Parameters
    ----------
    model, k : the configuration
    X : ndarray of shape (n_samples, n_features), scaled, rows in the sweep's permutation order, so that the
        sample of fraction f is the prefix of ``round(f * n_samples)`` rows, as in the sweep
    labels : ndarray of shape (n_samples,), the full refit's labels of those rows
    fractions : sample fractions; a sample with fewer than ``MIN_ROWS_PER_CLUSTER * k`` rows is skipped
    options : extra arguments of ``fit_final`` (:func:`fit_options`)
    seed : int, the seed of the fits

    Returns
    -------
    list of dict, one per fraction: fraction, n, ari (None when skipped), status, seconds. The index compares
    the two labelings on the sample's rows.
    """
    from sklearn.metrics import adjusted_rand_score

    from raysweep.models import fit_final

    checks = []
    for fraction in fractions:
        n = int(round(fraction * len(X)))
        if n < MIN_ROWS_PER_CLUSTER * k:
            checks.append({"fraction": fraction, "n": n, "ari": None, "seconds": 0.0,
                           "status": f"skipped: {n} rows < {MIN_ROWS_PER_CLUSTER} per cluster x k={k}"})
            continue
        start = time.perf_counter()
        sample_fit = fit_final(model, k, X[:n], seed, **(options or {}))
        ari = adjusted_rand_score(labels[:n], np.asarray(sample_fit.labels_))
        checks.append({"fraction": fraction, "n": n, "ari": float(ari), "status": "ok",
                       "seconds": round(time.perf_counter() - start, 3)})
    return checks


# --------------------------------------------------------------------------------------------- dataset

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
    cluster_of = _cluster_lookup(pid, labels)
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
    known = np.isin(pid, playlists.to_table(columns=["pid"]).column("pid").to_numpy())
    if not known.all():
        examples = ", ".join(str(p) for p in pid[~known][:5])
        raise ValueError(f"dataset {dataset}: {int((~known).sum()):,} of the feature matrix's {len(pid):,} pids "
                         f"are not among its playlists (e.g. {examples}); is it the dataset the features came from?")
    return playlists, tracks, entries


def _dataset(dataset, name: str, columns: list[str]):
    part = open_table(dataset, name, columns)
    return part.replace_schema(pa.schema([part.schema.field(c) for c in columns]))


def _cluster_lookup(pid: np.ndarray, labels: np.ndarray):
    """A vectorized pid -> cluster map; pids not in ``pid`` map to -1."""
    if len(pid) and pid.min() >= 0 and pid.max() < 4 * len(pid) + 1024:
        # Dense pids (the MPD's are 0..999,999): a direct table, ~20x faster than a binary search per entry.
        table = np.full(int(pid.max()) + 1, -1, dtype=np.int32)
        table[pid] = labels

        def cluster_of(query: np.ndarray) -> np.ndarray:
            inside = (query >= 0) & (query < len(table))
            return np.where(inside, table[np.where(inside, query, 0)], -1).astype(np.int32)

        return cluster_of
    order = np.argsort(pid, kind="stable")
    sorted_pid = pid[order]

    def cluster_of(query: np.ndarray) -> np.ndarray:
        position = np.minimum(np.searchsorted(sorted_pid, query), len(sorted_pid) - 1)
        return np.where(sorted_pid[position] == query, labels[order[position]], -1).astype(np.int32)

    return cluster_of


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


# --------------------------------------------------------------------------------------------- model artifact

@dataclass
class LoadedModel:
    """A refitted model loaded back with :func:`load_model`: the estimator and the facts needed to use it.

    Attributes
    ----------
    estimator : raysweep.families.base.FinalModel, the refit from ``fit_final``; it was fitted on the rows in the
        sweep's permutation order, so its own ``labels_`` follow that order: the playlists' clusters are in
        assignments.parquet
    metadata : dict, the contents of model.json (model, k, feature_columns, scaling, versions, sha256, ...)
    """

    estimator: object
    metadata: dict

    def predict(self, features: FeatureMatrix | pd.DataFrame) -> np.ndarray:
        """Clusters of new playlists, shape (n_playlists,), from raw features (scaled here as in the sweep).

        The input must hold every column the model was fitted on (extra columns are ignored).
        """
        columns = self.metadata["feature_columns"]
        available = list(features.columns)
        missing = [c for c in columns if c not in available]
        if missing:
            raise ValueError(f"features lack the columns the model was fitted on: {', '.join(missing)}")
        if isinstance(features, FeatureMatrix):
            values = features.values[:, [available.index(c) for c in columns]]
        else:
            values = features[columns].to_numpy(dtype=np.float32)
        return np.asarray(self.estimator.predict(apply_scaling(values, self.metadata["scaling"])))


def save_model(folder: Path, estimator, metadata: dict) -> dict:
    """Write ``model.joblib`` and ``model.json`` (``metadata`` plus the artifact's sha256) into ``folder``."""
    import joblib

    artifact = folder / "model.joblib"
    joblib.dump({"estimator": estimator, "feature_columns": metadata["feature_columns"],
                 "scaling": metadata["scaling"]}, artifact)
    record = {**metadata, "artifact": artifact.name, "sha256": _sha256(artifact)}
    (folder / "model.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_model(final: str | os.PathLike) -> LoadedModel:
    """Load a refitted model from a ``final/`` folder after checking the artifact's sha256 against model.json.

    The artifact is a pickle: unpickling runs code, so the hash is checked before anything is loaded.
    """
    import joblib

    folder = Path(final)
    metadata = _read_json(folder / "model.json", what="model metadata written by raysweep.finalize")
    if metadata.get("format") not in _READABLE_FORMATS:
        raise ValueError(f"{folder / 'model.json'}: model format {metadata.get('format')!r}; this raysweep reads "
                         f"formats {', '.join(map(str, _READABLE_FORMATS))}: refit it with raysweep.finalize")
    artifact = folder / metadata.get("artifact", "model.joblib")
    if not artifact.exists():
        raise FileNotFoundError(f"{artifact}: no such file (the model artifact named in {folder / 'model.json'})")
    digest = _sha256(artifact)
    if digest != metadata.get("sha256"):
        raise ValueError(f"{artifact}: sha256 {digest} does not match {metadata.get('sha256')} recorded in "
                         f"{folder / 'model.json'}; the artifact was changed or replaced, refusing to load it")
    payload = joblib.load(artifact)
    if payload["feature_columns"] != metadata["feature_columns"]:
        raise ValueError(f"{artifact}: its feature columns {payload['feature_columns']} differ from model.json's "
                         f"{metadata['feature_columns']}")
    return LoadedModel(estimator=payload["estimator"], metadata=metadata)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict:
    """Versions of the libraries a pickled model depends on."""
    import joblib
    import sklearn

    from raysweep import __version__

    return {"python": platform.python_version(), "raysweep": __version__, "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "joblib": joblib.__version__, "pandas": pd.__version__}


# --------------------------------------------------------------------------------------------- the whole step

def finalize(run: str | os.PathLike, model: str | None = None, k: int | None = None,
             features: str | os.PathLike | None = None, dataset: str | os.PathLike | None = None,
             fractions=STABILITY_FRACTIONS, plot_sample: int = PLOT_SAMPLE, plots: bool = True,
             quiet: bool = False) -> dict:
    """Refit the winner (or ``model`` and ``k``) on every playlist and write ``RUN/final/``.

    Parameters
    ----------
    run : sweep run folder (``RESULTS/RUN``) holding run.json and winner.json
    model, k : refit this configuration instead of the winner (both or neither)
    features : feature matrix to use instead of the one named in run.json (same playlists and columns)
    dataset : ingest output folder; adds the top playlist names, artists and tracks per cluster
    fractions : sample fractions for the stability check
    plot_sample : points in the 2-D projection plot
    plots : draw the plots (they need matplotlib; without it they are skipped with a message)
    quiet : no progress lines on stderr

    Returns
    -------
    summary : dict, the contents of final/final.json; ``summary["report"]`` is the report's path
    """
    from raysweep.models import fit_final
    from raysweep.samples import permutation

    started = time.perf_counter()
    seconds = {}

    def step(name: str, begun: float) -> None:
        seconds[name] = round(time.perf_counter() - begun, 3)
        if not quiet:
            print(f"finalize: {name} {seconds[name]:.1f} s", file=sys.stderr, flush=True)

    run_dir = Path(run)
    run_record, winner = read_run(run_dir)
    model, k, source = resolve_choice(run_dir, winner, model, k)

    begun = time.perf_counter()
    matrix = load_features(run_record, features)
    if dataset is not None:
        check_dataset(dataset, matrix.pid)  # before the refit: a bad dataset fails in seconds, not after it
    X = apply_scaling(matrix.values, run_record["scaling"])
    if k >= len(X):
        raise ValueError(f"k={k} needs more than {len(X)} playlists")
    step("read", begun)

    begun = time.perf_counter()
    seed = int(run_record["seed"])
    # Rows in the sweep's permutation order: the sweep's samples are its prefixes, a capped agglomerative fit
    # builds its tree on a prefix (a uniform subset), and the stability samples are prefixes of this same order.
    order = permutation(len(X), seed)
    X = X[order]
    options = fit_options(model, run_record, len(X))
    estimator = fit_final(model, k, X, seed, **options)
    step("refit", begun)

    begun = time.perf_counter()
    labels, distance, probability = assign(estimator, X)
    profiles = cluster_profiles(labels, matrix.values[order], matrix.columns)
    z = standardized_means(profiles, matrix.values, matrix.columns)
    step("assign and profile", begun)

    begun = time.perf_counter()
    checks = stability(model, k, X, labels, fractions, options, seed)
    step("stability", begun)

    # The plot sample is a prefix too; then back to the feature matrix's row order for everything written.
    sample, sample_labels = X[:plot_sample], labels[:plot_sample]
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))
    labels, distance = labels[restore], distance[restore]
    probability = None if probability is None else probability[restore]

    if dataset is not None:
        begun = time.perf_counter()
        described = describe_from_dataset(dataset, matrix.pid, labels)
        profiles = profiles.merge(described, on="cluster", how="left")
        step("describe from dataset", begun)

    method = {**estimator.method, **{key: estimator.info[key] for key in ("n_iter", "converged", "warnings")
                                     if key in estimator.info}}
    final_dir = run_dir / "final"
    with atomic_dir(final_dir) as tmp:
        begun = time.perf_counter()
        columns = {"pid": pa.array(matrix.pid), "cluster": pa.array(labels), "distance": pa.array(distance)}
        if probability is not None:
            columns["probability"] = pa.array(probability)
        pq.write_table(pa.table(columns), tmp / "assignments.parquet", compression="zstd")
        pq.write_table(pa.Table.from_pandas(profiles, preserve_index=False), tmp / "cluster_profiles.parquet")
        model_record = save_model(tmp, estimator, {
            "format": MODEL_FORMAT, "model": model, "k": k, "effective_k": int(len(profiles)),
            "feature_columns": matrix.columns, "scaling": run_record["scaling"], "seed": seed,
            "method": method, "run": run_record.get("name", run_dir.name), "versions": library_versions(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        step("write tables and model", begun)

        drawn = {}
        if plots:
            begun = time.perf_counter()
            drawn = write_plots(tmp / "plots", sample, sample_labels, profiles, z, matrix.columns, seed)
            step("plots", begun)

        summary = {
            "run": run_record.get("name", run_dir.name), "model": model, "k": k, "source": source,
            "effective_k": int(len(profiles)), "n": int(len(X)), "features": str(matrix.path),
            "feature_columns": matrix.columns, "dataset": None if dataset is None else str(dataset),
            "method": method, "winner": winner, "stability": checks, "plots": drawn,
            "sha256": model_record["sha256"], "seconds": {**seconds, "total": 0.0},
        }
        summary["seconds"]["total"] = round(time.perf_counter() - started, 3)
        (tmp / "final.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
        (tmp / "report.md").write_text(render_report(summary, run_record, profiles, z, matrix.columns))
    summary["report"] = str(final_dir / "report.md")
    return summary


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_plots(folder: Path, sample: np.ndarray, sample_labels: np.ndarray, profiles: pd.DataFrame,
                z: np.ndarray, columns: list[str], seed: int) -> dict:
    """Draw the finalize plots into ``folder``; returns {plot: relative path}, empty when matplotlib is missing.

    ``sample`` (n_points, n_features) are scaled rows for the 2-D projection, ``sample_labels`` their clusters.
    """
    try:
        import matplotlib  # noqa: F401  (optional extra: the tables and the model do not need it)
    except ImportError:
        print("finalize: matplotlib is not installed, plots skipped (pip install 'raysweep[plots]')",
              file=sys.stderr)
        return {}
    from sklearn.decomposition import PCA

    from raysweep import plots

    folder.mkdir(parents=True, exist_ok=True)
    drawn = {"sizes": plots.plot_cluster_sizes(profiles["cluster"], profiles["size"],
                                               folder / "cluster_sizes.png"),
             "profiles": plots.plot_cluster_profiles(z, profiles["cluster"], columns,
                                                     folder / "cluster_profiles.png")}
    pca = PCA(n_components=2, random_state=seed).fit(sample)
    drawn["projection"] = plots.plot_cluster_projection(pca.transform(sample), sample_labels,
                                                        pca.explained_variance_ratio_,
                                                        folder / "cluster_projection.png")
    if "top_names" in profiles:
        names = {int(c): [(item["name"], item["count"]) for item in items]
                 for c, items in zip(profiles["cluster"], profiles["top_names"])}
        drawn["names"] = plots.plot_cluster_names(names, folder / "cluster_names.png")
    return {name: f"plots/{Path(path).name}" for name, path in drawn.items()}


# --------------------------------------------------------------------------------------------- report

def render_report(summary: dict, run_record: dict, profiles: pd.DataFrame, z: np.ndarray,
                  columns: list[str]) -> str:
    """The Markdown report: the winner and why, stability, the cluster table, the plots, the files."""
    model, k = summary["model"], summary["k"]
    lines = [f"# Final clustering: {model}, k = {k}", "",
             f"Run `{summary['run']}`: {summary['n']:,} playlists, {len(columns)} features "
             f"(`{summary['features']}`), scaling `{run_record['scaling'].get('kind')}`.", "",
             "## The winner and why", "",
             f"- Refitted: **{model}, k = {k}**, {summary['source']}; {summary['effective_k']} non-empty clusters."]
    winner = summary["winner"] or {}
    if winner.get("model") == model and winner.get("k") == k:
        if winner.get("rule"):
            lines.append(f"- Rule: {winner['rule']}")
        if winner.get("reasoning"):
            lines.append(f"- Why this rule: {winner['reasoning']}")
        scores = winner.get("scores") or {}
        shown = [f"{label} {_number(scores[name])}" for name, label in SCORE_LABELS if name in scores]
        if scores.get("silhouette_se"):
            shown[0] += f" ± {_number(scores['silhouette_se'])} (standard error)"
        if shown:
            where = f" (top rung, n = {_number(winner['n'])})" if winner.get("n") else ""
            lines.append(f"- Scores in the sweep{where}: " + ", ".join(shown))
        best = winner.get("per_metric_best") or {}
        if best:
            labels = dict(SCORE_LABELS)
            lines.append("- Each metric's own best: " + "; ".join(
                f"{labels.get(metric, metric)} {entry['model']} k = {entry['k']} ({_number(entry['value'])})"
                for metric, entry in best.items()))
        if winner.get("pareto_front"):
            lines.append(f"- Configs on the Pareto front of the three scores: {len(winner['pareto_front'])}")
        eligibility = winner.get("eligibility") or {}
        if eligibility:
            every = "; **every config was, so this winner is not a sound clustering either**"
            lines.append(f"- Excluded for splitting a few points off (a cluster of fewer than "
                         f"{eligibility.get('min_cluster_size', 1)} playlists or {eligibility['min_relative_size']:g}"
                         f" x n/k): {eligibility['n_excluded']} of the configs at the top rung"
                         + (every if eligibility["winner_excluded"] else ""))
        if winner.get("edge_advice"):
            lines.append(f"- **At the edge of the searched range**: {winner['edge_advice']}.")
    elif winner:
        lines.append(f"- The sweep's winner was {winner.get('model')}, k = {winner.get('k')}.")
    method = dict(summary["method"])
    warnings = method.pop("warnings", [])
    described = method.pop("description", None)
    lines.append("- Fitted as: " + (described or "; ".join(f"{key} {value}" for key, value in method.items())))
    if warnings:
        lines.append(f"- Warnings during the refit ({len(warnings)}): " + "; ".join(warnings[:3]))
    lines += ["", "## Stability", "",
              "Adjusted Rand index between the full refit and the same model fitted on the sweep's nested samples, "
              "compared on the sample's playlists (1 = the same partition).", "",
              "| sample | playlists | ARI | note |", "|---:|---:|---:|---|"]
    for check in summary["stability"]:
        lines.append(f"| {check['fraction']:.0%} | {check['n']:,} | {_number(check['ari'])} | {check['status']} |")
    lines += ["", "## Clusters", "", "Distinctive features: the cluster mean in overall standard deviations from the "
              "overall mean (largest three).", ""]
    header = ["cluster", "playlists", "share", "distinctive features"]
    if "top_names" in profiles:
        header += ["top playlist names", "top artists"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * 3 + "---|" * (len(header) - 3)]
    for row, (_, profile) in zip(z, profiles.iterrows()):
        strongest = np.argsort(-np.abs(row))[:3]
        cells = [str(profile["cluster"]), f"{profile['size']:,}", f"{profile['share']:.1%}",
                 ", ".join(f"{columns[j]} {row[j]:+.2f}" for j in strongest)]
        if "top_names" in profiles:
            cells.append(", ".join(f"{item['name']} ({item['count']})" for item in profile["top_names"][:3]))
            cells.append(", ".join(item["artist_name"] for item in profile["top_artists"][:3]))
        lines.append("| " + " | ".join(cells) + " |")
    if "top_names" not in profiles:
        lines += ["", "Playlist names, artists and tracks per cluster need the ingest dataset: rerun with "
                  "`--dataset OUT`."]
    lines += ["", "## Plots", ""]
    titles = {"sizes": "Cluster sizes", "profiles": "Feature profiles",
              "projection": "2-D projection (PCA) of a sample", "names": "Playlist names per cluster"}
    lines += [f"![{titles[name]}]({path})" for name, path in summary["plots"].items()] or [
        "(none drawn: plots were turned off, or matplotlib is not installed)"]
    lines += ["", "## Files", "",
              "- `assignments.parquet`: pid, cluster, distance to the cluster centre (scaled space)"
              + (", probability of the assigned component" if get_family(model).gives_probabilities else ""),
              "- `cluster_profiles.parquet`: size, share, feature means in original units"
              + (", top names, artists and tracks" if "top_names" in profiles else ""),
              f"- `model.joblib` + `model.json` (sha256 `{summary['sha256'][:16]}...`): load with "
              "`raysweep.finalize.load_model`, which checks the hash and the feature columns",
              "- `final.json`: everything above, machine-readable",
              "", f"Finalized in {summary['seconds']['total']:.1f} s."]
    return "\n".join(lines) + "\n"


def _number(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """``python -m raysweep.finalize``: errors print one line naming what is wrong and exit with status 1."""
    parser = argparse.ArgumentParser(prog="python -m raysweep.finalize",
                                     description="Refit the sweep's winner on every playlist, assign each one a "
                                                 "cluster and describe the clusters (writes RUN/final/).")
    parser.add_argument("--run", required=True, help="the sweep's run folder (RESULTS/RUN)")
    parser.add_argument("--model", help="refit this model instead of the winner (with --k)")
    parser.add_argument("--k", type=int, help="number of clusters (with --model)")
    parser.add_argument("--features", help="feature matrix instead of the one in run.json (same playlists)")
    parser.add_argument("--dataset", help="ingest output folder: adds top names, artists and tracks per cluster")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    try:
        summary = finalize(args.run, model=args.model, k=args.k, features=args.features, dataset=args.dataset,
                           plots=not args.no_plots, quiet=args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"finalize: error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {summary['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
