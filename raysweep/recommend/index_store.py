"""The built index on disk: built once from the ingest tables, then loaded in seconds.

Building the index of 1M playlists (65M playlist-track pairs) reads and joins the three ingest tables, builds the
CSR matrix and its transpose and joins 2.4M track URIs to their features: most of a minute on the 2-core machine.
The result is a handful of arrays, so :func:`cached_index` writes them once (``.npy`` files and one Arrow IPC file
of the catalog's strings) and later loads read them back. A saved index is valid for exactly the inputs it was
built from: its fingerprint (path, size and modification time of every input file, the feature columns, the
excluded playlists, the track-feature source and ``STORE_FORMAT``) is written beside the arrays and compared
before loading, and any difference rebuilds the index (and replaces the saved one).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import scipy.sparse as sp

from raysweep.feature_matrix import FeatureMatrix
from raysweep.recommend.index import Catalog, Index, build_index, track_feature_source
from raysweep.storage import atomic_dir

STORE_FORMAT = 1  # bump when Index or build_index changes what the arrays mean
FINGERPRINT_FILE = "fingerprint.json"
TABLES = ("playlists", "tracks", "playlist_tracks")
# Index attributes saved as one .npy each (the two sparse matrices are saved as their indptr/indices).
ARRAYS = ("pid", "lengths", "popularity", "popular", "features", "track_features", "title_code", "title_rows",
          "title_starts")


def _file_state(path: Path) -> list:
    status = path.stat()
    return [str(path.resolve()), status.st_size, status.st_mtime_ns]


def fingerprint(dataset: str | os.PathLike, matrix: FeatureMatrix, exclude_pids: np.ndarray | None,
                track_features: str | os.PathLike | None) -> dict:
    """What an index of these inputs depends on, as a JSON-able dict (see the module docstring)."""
    files = [_file_state(path) for name in TABLES for path in sorted((Path(dataset) / name).rglob("*.parquet"))]
    kind, source = track_feature_source(matrix, track_features)
    excluded = np.unique(np.asarray([] if exclude_pids is None else exclude_pids, dtype=np.int64))
    return {"format": STORE_FORMAT, "dataset_files": files,
            "feature_matrix": _file_state(Path(matrix.path)), "columns": list(matrix.columns),
            "excluded": {"count": int(excluded.size), "sha256": hashlib.sha256(excluded.tobytes()).hexdigest()},
            "track_features": [kind, None if source is None else _file_state(source)]}


def save_index(index: Index, folder: str | os.PathLike, stamp: dict) -> None:
    """Write ``index`` and its fingerprint ``stamp`` to ``folder`` (replaced as a whole, atomically)."""
    with atomic_dir(folder) as tmp:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(index, name))
        for name in ("by_playlist", "by_track"):
            matrix = getattr(index, name)
            np.save(tmp / f"{name}.indptr.npy", matrix.indptr)
            np.save(tmp / f"{name}.indices.npy", matrix.indices)
        np.save(tmp / "artist.npy", index.catalog.artist)
        catalog = index.catalog
        feather.write_feather(pa.table({"uri": catalog.uri, "name": catalog.name, "artist_name": catalog.artist_name}),
                              tmp / "catalog.arrow", compression="uncompressed")
        feather.write_feather(pa.table({"title": pa.array(list(index.titles), type=pa.string())}),
                              tmp / "titles.arrow", compression="uncompressed")
        scalars = {"n_tracks": index.n_tracks, "track_feature_source": index.track_feature_source,
                   "feature_source": index.feature_source, "excluded": index.excluded}
        (tmp / "scalars.json").write_text(json.dumps(scalars))
        # Written last: a folder with a fingerprint is complete (atomic_dir also renames it only when complete).
        (tmp / FINGERPRINT_FILE).write_text(json.dumps(stamp))


def _binary(folder: Path, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """A saved 0/1 CSR matrix: its indptr and indices; the data (all ones) is not stored."""
    indptr, indices = np.load(folder / f"{name}.indptr.npy"), np.load(folder / f"{name}.indices.npy")
    matrix = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=shape)
    matrix.has_canonical_format = True  # saved from a canonical matrix: sorted, no duplicates
    return matrix


def load_index(folder: str | os.PathLike) -> Index:
    """Read an index written by :func:`save_index` (not checked against any inputs: see :func:`cached_index`)."""
    folder = Path(folder)
    arrays = {name: np.load(folder / f"{name}.npy") for name in ARRAYS}
    scalars = json.loads((folder / "scalars.json").read_text())
    shape = (len(arrays["pid"]), int(scalars["n_tracks"]))
    strings = feather.read_table(folder / "catalog.arrow", memory_map=False)
    uri = strings.column("uri").combine_chunks()
    catalog = Catalog(uri=uri, name=strings.column("name").combine_chunks(),
                      artist_name=strings.column("artist_name").combine_chunks(),
                      artist=np.load(folder / "artist.npy"), lookup=pd.Index(uri.to_pandas(), dtype=object))
    titles = feather.read_table(folder / "titles.arrow").column("title").to_pylist()
    return Index(by_playlist=_binary(folder, "by_playlist", shape), by_track=_binary(folder, "by_track", shape[::-1]),
                 titles=pd.Index(titles, dtype=object), catalog=catalog,
                 track_feature_source=scalars["track_feature_source"], feature_source=scalars["feature_source"],
                 excluded=int(scalars["excluded"]), **arrays)


def cached_index(folder: str | os.PathLike, dataset: str | os.PathLike, matrix: FeatureMatrix,
                 exclude_pids: np.ndarray | None = None, track_features: str | os.PathLike | None = None,
                 say: Callable[[str], None] | None = None) -> Index:
    """The index of :func:`build_index` for these inputs, loaded from ``folder`` when it holds one built from
    exactly them, else built and saved there (replacing a stale one). ``say`` gets one line on what happened.

    A matrix without a file (``matrix.path`` None) has no fingerprint: the index is built and not saved.
    """
    if matrix.path is None:
        return build_index(dataset, matrix, exclude_pids=exclude_pids, track_features=track_features)
    folder = Path(folder)
    stamp = json.loads(json.dumps(fingerprint(dataset, matrix, exclude_pids, track_features)))  # JSON-normal
    saved = folder / FINGERPRINT_FILE
    found = json.loads(saved.read_text()) if saved.exists() else None
    if found == stamp:
        index = load_index(folder)
        if say:
            say(f"index loaded from {folder}")
        return index
    index = build_index(dataset, matrix, exclude_pids=exclude_pids, track_features=track_features)
    try:
        save_index(index, folder, stamp)
    except OSError as exc:  # a read-only run folder or a full disk costs the next load time, not this answer
        if say:
            say(f"index built; not saved to {folder}: {exc.strerror or exc}")
        return index
    if say:
        say(f"index built and saved to {folder}" + (" (the saved one was built from other inputs)" if found else ""))
    return index
