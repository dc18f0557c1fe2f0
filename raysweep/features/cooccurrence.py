"""The offline feature source: a playlist embedding from track co-occurrence (latent semantic analysis).

Playlist x track counts -> TF-IDF -> randomized truncated SVD -> L2-normalized playlist vectors. Playlists that
share tracks get nearby vectors, so clusters are groups of playlists with overlapping catalogues: no Spotify
API needed. The matrix is built by streaming ``playlist_tracks`` record batches into preallocated index arrays
(numpy only, no Python loop per entry); at the full MPD shape (1M x 2.26M, 66M entries) it is ~0.8 GB in CSR.

Why TF-IDF and not BM25: after the L2 row normalization a playlist's length no longer matters, and a track
rarely repeats within a playlist (tf is almost always 1), so BM25's length normalization (b) and tf saturation
(k1) have little to act on while adding two parameters to choose; TF-IDF is the input truncated SVD is
documented for (LSA), and scikit-learn's TfidfTransformer keeps float32. The IDF down-weights the tracks that
are in everyone's playlists, which would otherwise dominate the first components.
"""

from __future__ import annotations

import os
import time

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.preprocessing import normalize

from raysweep.dataset import PidIndex, open_table
from raysweep.feature_matrix import validate_values, write_feature_matrix

WEIGHTING = "tfidf: sublinear tf (1 + log count), smooth idf, rows L2-normalized (sklearn TfidfTransformer)"


def playlist_track_matrix(dataset: str | os.PathLike) -> tuple[sp.csr_matrix, np.ndarray]:
    """The playlist x track count matrix of an ingest output, streamed from ``playlist_tracks``.

    Returns
    -------
    counts : csr_matrix of shape (n_playlists, n_tracks), float32; entry = times the track is in the playlist
    pid : ndarray of shape (n_playlists,), int64, sorted; row i is playlist ``pid[i]``
    """
    pid = np.sort(open_table(dataset, "playlists", ["pid"]).to_table(columns=["pid"])
                  .column("pid").to_numpy().astype(np.int64))
    if len(pid) == 0:
        raise ValueError(f"dataset {dataset}: playlists/ is empty")
    tracks = open_table(dataset, "tracks", ["track_id"])
    n_tracks = tracks.count_rows()
    entries = open_table(dataset, "playlist_tracks", ["pid", "track_id"])
    nnz = entries.count_rows()
    rows = np.empty(nnz, dtype=np.int32)
    cols = np.empty(nnz, dtype=np.int32)
    filled = 0
    playlist_rows = PidIndex(pid, source="playlists/")
    for batch in entries.to_batches(columns=["pid", "track_id"]):
        row = playlist_rows.lookup_known(batch.column("pid").to_numpy(), where=f"dataset {dataset}: playlist_tracks")
        tid = batch.column("track_id").to_numpy()
        if len(tid) and (tid.min() < 0 or tid.max() >= n_tracks):
            raise ValueError(f"dataset {dataset}: playlist_tracks holds track_id outside 0..{n_tracks - 1}")
        rows[filled:filled + len(row)] = row
        cols[filled:filled + len(row)] = tid
        filled += len(row)
    # coo -> csr sums repeated (playlist, track) pairs into counts
    counts = sp.coo_matrix((np.ones(nnz, dtype=np.float32), (rows, cols)), shape=(len(pid), n_tracks)).tocsr()
    return counts, pid


def build_cooccurrence_embedding(dataset: str | os.PathLike, out: str | os.PathLike, dim: int = 32,
                                 seed: int = 0, min_playlists: int = 2, n_iter: int = 5) -> dict:
    """Write the co-occurrence embedding of an ingest output as a feature matrix.

    Parameters
    ----------
    dataset : path of the ingest output
    out : path or URI of the feature matrix
    dim : number of SVD components (feature columns ``cooc_00`` ...)
    seed : random state of the randomized SVD
    min_playlists : tracks in fewer playlists are dropped (a track in one playlist co-occurs with nothing)
    n_iter : power iterations of the randomized SVD (Halko et al. 2011, arXiv:0909.4061)

    Returns
    -------
    summary : dict with ``out``, ``n_playlists``, ``n_playlists_left_out``, ``n_tracks_used``, ``nnz``,
        ``explained_variance_ratio`` (sum), ``seconds`` (total and per step)
    """
    if dim < 1:
        raise ValueError(f"dim={dim}: must be >= 1")
    if min_playlists < 1:
        raise ValueError(f"min_playlists={min_playlists}: must be >= 1")
    timings = {}
    start = time.perf_counter()
    counts, pid = playlist_track_matrix(dataset)
    timings["matrix"] = time.perf_counter() - start
    n_tracks_total = counts.shape[1]

    step = time.perf_counter()
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    used_tracks = np.flatnonzero(document_frequency >= min_playlists)
    counts = counts[:, used_tracks]
    has_tracks = np.diff(counts.indptr) > 0  # playlists whose every track was dropped have nothing to embed
    counts = counts[has_tracks]
    if dim >= min(counts.shape):
        raise ValueError(f"dim={dim}: must be smaller than both the {counts.shape[0]} playlists and the "
                         f"{counts.shape[1]} tracks in >= {min_playlists} playlists of {dataset}")
    weighted = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    del counts
    timings["tfidf"] = time.perf_counter() - step

    step = time.perf_counter()
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=n_iter, random_state=seed)
    embedding = svd.fit_transform(weighted).astype(np.float32)
    timings["svd"] = time.perf_counter() - step
    embedding = normalize(embedding)  # cosine geometry: Euclidean k-means on unit vectors ~ spherical k-means

    columns = [f"cooc_{j:02d}" for j in range(dim)]
    validate_values(embedding, columns, f"co-occurrence embedding of {dataset}")
    ratio = svd.explained_variance_ratio_
    metadata = {
        "source": "cooccurrence",
        "scaling": {"kind": "none"},
        "dim": dim,
        "weighting": WEIGHTING,
        "normalization": "l2 per playlist",
        "explained_variance_ratio": [float(r) for r in ratio],
        "n_playlists": int(has_tracks.sum()),
        "n_playlists_left_out": int((~has_tracks).sum()),
        "n_tracks": int(n_tracks_total),
        "n_tracks_used": int(len(used_tracks)),
        "min_playlists": min_playlists,
        "nnz": int(weighted.nnz),
        "seed": seed,
        "n_iter": n_iter,
        "dataset": str(dataset),
    }
    step = time.perf_counter()
    write_feature_matrix(out, pid[has_tracks], embedding, columns, metadata)
    timings["write"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - start
    return {"out": str(out), "n_playlists": metadata["n_playlists"],
            "n_playlists_left_out": metadata["n_playlists_left_out"], "n_tracks_used": metadata["n_tracks_used"],
            "nnz": metadata["nnz"], "explained_variance_ratio": float(ratio.sum()), "seconds": timings}
