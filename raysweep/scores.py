"""Cluster quality scores: silhouette, Davies-Bouldin and Calinski-Harabasz, sound at any n.

Davies-Bouldin and Calinski-Harabasz need only per-cluster sums and each point's distance to its own
centroid: O(n*d + k^2*d) time, float64 accumulation, equal to :mod:`sklearn.metrics` on identical labels.

Silhouette is O(n^2). Where n is small enough (``EXACT_SILHOUETTE_MAX_N``) it is computed exactly, in float64,
over cache-sized blocks of the symmetric distance matrix, each block computed once (or, for the many labelings of
one rung, read from its :class:`raysweep.pairwise.DistanceMatrix`, built once). Above that,
:func:`silhouette_query_estimate` draws m query points and computes each one's *exact* a(i), b(i) against all n
points, so the mean is an unbiased estimate of the exact silhouette with a finite-population standard error (its
distances are float32 for float32 input: ~1.7x faster, the estimate moves by ~1e-8). scikit-learn's
``silhouette_score(sample_size=m)`` is not used: it scores the sample against itself only, which shrinks every
cluster to ~m/k points and biases the score more as k grows, the very parameter being chosen.

:func:`cluster_centroids` (the sizes and mean rows of the clusters) lives here too: the scores, the families'
cut centroids and finalize's cluster profiles all take them from it.

Why one module of ~450 lines (over the house's ~400): it is one concern, the scores of a labeling. The exact and the
estimated silhouette share the blocked distance sums, and :func:`score_labels` shares the label checks and the
per-cluster sums with the single scores; split in two, each half would reach into the other's private helpers.
"""

from __future__ import annotations

import numpy as np

# Exact silhouette up to this many rows: the study's 2% sample (20,000) stays exact, at 1.3-1.7 s CPU on one thread
# (scikit-learn: 5.3-6.3 s; benchmarks/bench_scores.py). Exact costs n^2/2 distances, so 40,000 rows would already be 4x
# that per config, while the estimator costs m*n (m = 2,000 on float32 rows: 1.5 s CPU at 200k, 7.8 s at 1M).
EXACT_SILHOUETTE_MAX_N = 20_000

# Exact silhouette on a lower rung (which only promotes) up to this many rows; above it the estimator, whose SE the
# pairwise comparisons count as ties. At 12,346 rows (rung 0 of a 1M sweep) exact takes 0.41-0.46 s CPU per config on
# one thread, the estimator 0.07 s (k = 5, 50, 100); 20k sweeps (rungs of 2,222 and 6,667 rows) stay exact throughout.
PROMOTION_EXACT_MAX_N = 10_000

# Query points of the estimator: SE = sd(s_i) / sqrt(2,000) = 0.022 sd(s_i). Measured sd(s_i) = 0.10-0.12 on
# generated playlists (KMeans k = 5, 17, 100), so SE ~0.0025; the cost is m*n distances per config.
DEFAULT_QUERY_POINTS = 2_000

# Side of the square distance blocks (exact and query-row paths): 768^2 float64 = 4.5 MiB, cache-sized across the
# passes over a block, and memory bounded at any n. Best of 3, CPU s at 20k x 13 (one thread):
# 512: 1.44, 768: 1.34, 1024: 1.62, 1536: 1.74.
_SQUARE_BLOCK = 768


def exact_silhouette_limit(exact_max_n, promotion_exact_max_n, top):
    """Exact silhouette at or below this many rows of a rung, the estimator above.

    The top rung's scores choose the winner (``exact_max_n``); a lower rung's only promote, and there the estimator's
    SE makes close configs ties (``promotion_exact_max_n``, capped by ``exact_max_n``).
    """
    return exact_max_n if top else min(exact_max_n, promotion_exact_max_n)


def _check_X_labels(X, labels):
    X = np.asarray(X)
    labels = np.asarray(labels)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise ValueError(
            f"labels must be a 1-D array with one label per row of X ({X.shape[0]}), got shape {labels.shape}"
        )
    return X, labels


def _encode(labels):
    """Labels as 0..k-1 codes (in sorted label order, as LabelEncoder) and the cluster sizes."""
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    return codes, np.bincount(codes)


def _check_n_clusters(n_clusters, n_samples):
    if not 1 < n_clusters < n_samples:
        raise ValueError(
            f"the number of distinct labels is {n_clusters}; valid values are 2 to n_samples - 1 ({n_samples - 1})"
        )


def cluster_centroids(X, labels, n_clusters=None):
    """The size and the mean row of each cluster: the one place raysweep computes them.

    One ``np.bincount`` per column (O(n*d), no copy of X), accumulated in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,), int in 0..n_clusters-1
    n_clusters : int, default=None
        None: ``labels.max() + 1``.

    Returns
    -------
    sizes : ndarray of shape (n_clusters,), int64, rows per cluster
    centroids : ndarray of shape (n_clusters, n_features), float64; NaN for a cluster without rows
    """
    X, labels = np.asarray(X), np.asarray(labels)
    n_clusters = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    sizes = np.bincount(labels, minlength=n_clusters)
    sums = np.empty((n_clusters, X.shape[1]), dtype=np.float64)
    for j in range(X.shape[1]):
        sums[:, j] = np.bincount(labels, weights=X[:, j], minlength=n_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sizes, sums / sizes[:, None]


def _distances_to_own_centroid(X, codes, centroids, chunk_rows=65_536):
    """Euclidean distance of every row to its cluster's centroid, shape (n,), float64, chunked."""
    out = np.empty(X.shape[0], dtype=np.float64)
    for start in range(0, X.shape[0], chunk_rows):
        stop = start + chunk_rows
        diff = X[start:stop].astype(np.float64) - centroids[codes[start:stop]]
        out[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def _davies_bouldin(centroids, intra):
    # Same conventions as sklearn.metrics.davies_bouldin_score (zero-distance cases).
    diff = centroids[:, None, :] - centroids[None, :, :]
    centroid_distances = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    if np.allclose(intra, 0) or np.allclose(centroid_distances, 0):
        return 0.0
    centroid_distances[centroid_distances == 0] = np.inf
    combined = intra[:, None] + intra[None, :]
    return float(np.mean(np.max(combined / centroid_distances, axis=1)))


def _calinski_harabasz(X, centroids, sizes, squared_residuals_sum):
    n, k = X.shape[0], sizes.shape[0]
    mean = (centroids * sizes[:, None]).sum(axis=0) / n
    extra = float(np.sum(sizes * np.sum((centroids - mean) ** 2, axis=1)))
    if squared_residuals_sum == 0.0:
        return 1.0
    return float(extra * (n - k) / (squared_residuals_sum * (k - 1.0)))


def _codes_of_scorable(X, labels):
    """X, labels as 0..k-1 codes and the cluster sizes; ValueError unless 2 <= k < n_samples."""
    X, labels = _check_X_labels(X, labels)
    codes, sizes = _encode(labels)
    _check_n_clusters(sizes.shape[0], X.shape[0])
    return X, codes, sizes


def _davies_bouldin_and_calinski_harabasz(X, codes, sizes):
    """Both sum-based indices of one labeling, from one pass: centroids, then each row's distance to its own."""
    centroids = cluster_centroids(X, codes, sizes.shape[0])[1]
    dist = _distances_to_own_centroid(X, codes, centroids)
    intra = np.bincount(codes, weights=dist, minlength=sizes.shape[0]) / sizes
    return _davies_bouldin(centroids, intra), _calinski_harabasz(X, centroids, sizes, float(np.sum(dist**2)))


def davies_bouldin(X, labels):
    """Davies-Bouldin index from per-cluster sums (lower is better).

    The mean over clusters i of max over j != i of (s_i + s_j) / d(c_i, c_j), where c_i is cluster i's centroid
    and s_i its rows' mean distance to c_i: each cluster against its most similar other cluster.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,), 2 <= n_clusters < n_samples

    Returns
    -------
    score : float, >= 0; 0.0 when every s_i is 0 or all centroids coincide (scikit-learn's convention)
        Equal to :func:`sklearn.metrics.davies_bouldin_score` (to rounding) in O(n*d + k^2*d).
    """
    return _davies_bouldin_and_calinski_harabasz(*_codes_of_scorable(X, labels))[0]


def calinski_harabasz(X, labels):
    """Calinski-Harabasz index, the variance ratio, from per-cluster sums (higher is better).

    The between-cluster dispersion sum_i n_i |c_i - c|^2 per k - 1 degrees of freedom over the within-cluster
    dispersion sum_x |x - c_label(x)|^2 per n - k, where c is the overall mean.

    ``X`` and ``labels`` as for :func:`davies_bouldin` (the same per-cluster sums serve both). Returns a float >= 0,
    1.0 when every row lies on its centroid (scikit-learn's convention), equal to
    :func:`sklearn.metrics.calinski_harabasz_score` (to rounding) in O(n*d + k*d).
    """
    return _davies_bouldin_and_calinski_harabasz(*_codes_of_scorable(X, labels))[1]


class _ClusterDistanceSums:
    """Sums of Euclidean distances from rows to every cluster, against all n rows.

    The rows are stored sorted by cluster so that, for a block of rows, the per-cluster sums of a distance block
    are one ``np.add.reduceat`` over contiguous column ranges: O(rows*n) after the distance product, with no
    per-row Python loop (sklearn loops ``bincount`` per row). Squared distances come from one matrix product of
    augmented rows, ``[x, |x|^2, 1] . [-2y, 1, |y|^2]``, instead of a product plus two broadcast passes.

    ``dtype=float32`` (the estimator on float32 input) centres the rows first, so the expansion's cancellation is
    ~6e-8 of the spread squared; blocks are summed into float64. It is ~1.7x faster (7.3 -> 4.2 ns per distance,
    measured) and moves the estimate by ~1e-6, three orders below its standard error.
    """

    def __init__(self, X, codes, sizes, dtype=np.float64):
        self.order = np.argsort(codes, kind="stable")
        self.position = np.empty_like(self.order)
        self.position[self.order] = np.arange(self.order.shape[0])
        X_sorted = np.asarray(X, dtype=np.float64)[self.order]
        if dtype == np.float32:
            X_sorted -= X_sorted.mean(axis=0)
        sq_norms = np.einsum("ij,ij->i", X_sorted, X_sorted)[:, None]
        ones = np.ones_like(sq_norms)
        self.left = np.ascontiguousarray(np.hstack((X_sorted, sq_norms, ones)), dtype=dtype)
        self.right = np.ascontiguousarray(np.hstack((-2.0 * X_sorted, ones, sq_norms)), dtype=dtype)
        self.codes_sorted = codes[self.order]
        self.starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self.n_clusters = sizes.shape[0]

    def _distances(self, row_pos, col_slice):
        D = self.left[row_pos] @ self.right[col_slice].T
        np.maximum(D, 0.0, out=D)
        return np.sqrt(D, out=D)

    def _block_starts(self, lo, hi):
        """Clusters present in sorted positions [lo, hi) and their local start offsets."""
        first, last = self.codes_sorted[lo], self.codes_sorted[hi - 1]
        clusters = np.arange(first, last + 1)
        local = np.maximum(self.starts[clusters], lo) - lo
        return clusters, local

    def rows(self, rows, block):
        """Distance sums of the given rows (original indices), shape (len(rows), k), in square blocks."""
        n = self.left.shape[0]
        out = np.zeros((rows.shape[0], self.n_clusters), dtype=np.float64)
        for start in range(0, rows.shape[0], block):
            pos = self.position[rows[start : start + block]]
            left = self.left[pos]
            local_rows = np.arange(pos.shape[0])
            for c0 in range(0, n, block):
                c1 = min(c0 + block, n)
                D = left @ self.right[c0:c1].T
                np.maximum(D, 0.0, out=D)
                # A point's distance to itself is exactly 0 (the expansion leaves rounding noise otherwise).
                own = (pos >= c0) & (pos < c1)
                D[local_rows[own], pos[own] - c0] = 0.0
                np.sqrt(D, out=D)
                clusters, local = self._block_starts(c0, c1)
                out[start : start + pos.shape[0], clusters] += np.add.reduceat(D, local, axis=1)
        return out

    def all_rows(self, block):
        """Distance sums of every row, shape (n, k), in original row order.

        Distances are symmetric: each off-diagonal block of the (n x n) matrix is computed once and reduced
        along both axes, halving the work of a row-by-row pass.
        """
        n = self.left.shape[0]
        out = np.zeros((n, self.n_clusters), dtype=np.float64)
        bounds = list(range(0, n, block)) + [n]
        for bi in range(len(bounds) - 1):
            r0, r1 = bounds[bi], bounds[bi + 1]
            row_clusters, row_local = self._block_starts(r0, r1)
            for bj in range(bi, len(bounds) - 1):
                c0, c1 = bounds[bj], bounds[bj + 1]
                D = self._distances(slice(r0, r1), slice(c0, c1))
                if bi == bj:
                    np.fill_diagonal(D, 0.0)
                col_clusters, col_local = self._block_starts(c0, c1)
                out[r0:r1, col_clusters] += np.add.reduceat(D, col_local, axis=1)
                if bj != bi:
                    # The transposed block: column points' sums to the row clusters. A few contiguous row
                    # segments, each a fast axis-0 sum (reduceat along axis 0 is ~10x slower, measured).
                    for cluster, lo, hi in zip(row_clusters, row_local, np.append(row_local[1:], r1 - r0)):
                        out[c0:c1, cluster] += D[lo:hi].sum(axis=0)
        return out[self.position]


def _block_side(block):
    if block is None:
        return _SQUARE_BLOCK
    if block < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {block}")
    return int(block)


def _distance_sums(X, codes, sizes, rows, chunk_rows):
    """(len(rows), k) distance sums; rows=None means every row (the symmetric, half-work path).

    Every row is computed in float64 (the exact silhouette); a subset of rows (the estimator) in float32 when X is
    float32, as scikit-learn computes float32 input in float32.
    """
    if rows is None:
        return _ClusterDistanceSums(X, codes, sizes).all_rows(_block_side(chunk_rows))
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    return _ClusterDistanceSums(X, codes, sizes, dtype).rows(rows, _block_side(chunk_rows))


def _silhouette_from_sums(sums, own, sizes):
    """Per-row silhouette s(i) from distance sums, with sklearn's conventions (singleton -> 0)."""
    rows = np.arange(sums.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[rows, own] / (sizes[own] - 1)
        mean_to_other = sums / sizes
        mean_to_other[rows, own] = np.inf
        b = mean_to_other.min(axis=1)
        s = (b - a) / np.maximum(a, b)
    return np.nan_to_num(s)


def silhouette_samples_exact(X, labels, rows=None, chunk_rows=None):
    """Exact silhouette s(i) of the given rows, each against all n rows of X.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    rows : array-like of int of shape (m,), default=None
        Row indices to score; None scores every row. A subset of rows of float32 X is computed in float32.
    chunk_rows : int, default=None
        Side of the square float64 distance blocks; None uses 768 (4.5 MiB).

    Returns
    -------
    s : ndarray of shape (m,), float64
        Equal to ``sklearn.metrics.silhouette_samples(X, labels)[rows]`` to rounding.
    """
    X, codes, sizes = _codes_of_scorable(X, labels)
    if rows is not None:
        rows = np.asarray(rows, dtype=np.intp)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= X.shape[0])):
            raise ValueError(f"rows must be a 1-D array of row indices in [0, {X.shape[0]})")
    sums = _distance_sums(X, codes, sizes, rows, chunk_rows)
    return _silhouette_from_sums(sums, codes if rows is None else codes[rows], sizes)


def silhouette_exact(X, labels, chunk_rows=None):
    """Exact mean silhouette coefficient, memory-bounded.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    chunk_rows : int, default=None
        Side of the square float64 distance blocks; None uses 768 (4.5 MiB).

    Returns
    -------
    score : float
        Equal to :func:`sklearn.metrics.silhouette_score` (Euclidean) to rounding.
    """
    return float(np.mean(silhouette_samples_exact(X, labels, chunk_rows=chunk_rows)))


def silhouette_query_points(n, m=DEFAULT_QUERY_POINTS, seed=0):
    """The query points of the silhouette estimator: pass the same ones to every config of a sample.

    Parameters
    ----------
    n : int
        Rows in the sample being scored.
    m : int, default=DEFAULT_QUERY_POINTS
        Query points wanted (capped at n).
    seed : int or None, default=0
        An int draws m rows uniformly without replacement. None returns the first m rows: use it when the
        rows are already in random order, as the prefix of one seeded permutation (nested samples) is. Then
        the query points are a uniform sample of every rung and the *same playlists* at every rung, so scores
        of different configs and rungs share their sampling noise (common random numbers). Recommended.

    Returns
    -------
    query_idx : ndarray of shape (min(m, n),), int64, sorted
    """
    if n < 1 or m < 1:
        raise ValueError(f"n and m must be >= 1, got n={n}, m={m}")
    m = min(int(m), int(n))
    if seed is None:
        return np.arange(m, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False)).astype(np.int64)


def silhouette_query_estimate(X, labels, query_idx, chunk_rows=None):
    """Unbiased estimate of the mean silhouette from query points scored against all n points.

    Each query point's a(i) and b(i) are exact (distances to all n rows), so s(i) is exact and the mean over a
    uniform sample of query points is unbiased for the exact mean silhouette. Its standard error, for sampling
    m of n without replacement, is ``sd(s_i) / sqrt(m) * sqrt(1 - m/n)`` (finite population correction).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    query_idx : array-like of int of shape (m,)
        Distinct row indices, a uniform random sample (see :func:`silhouette_query_points`).
    chunk_rows : int, default=None
        Side of the square float64 distance blocks; None uses 768 (4.5 MiB).

    Returns
    -------
    mean : float
    se : float
        0.0 when every row is a query point (the estimate is then exact).
    """
    query_idx = np.asarray(query_idx, dtype=np.intp)
    s = silhouette_samples_exact(X, labels, rows=query_idx, chunk_rows=chunk_rows)
    if s.shape[0] < 2:
        raise ValueError(f"query_idx must hold at least 2 points, got {s.shape[0]}")
    return float(np.mean(s)), _silhouette_standard_error(s, np.asarray(X).shape[0])


def _silhouette_standard_error(s, n):
    """Standard error of the mean of m query points' s(i), drawn without replacement from n rows.

    ``sd(s_i) / sqrt(m) * sqrt(1 - m/n)`` (finite population correction); 0.0 when every row is a query point.
    """
    m = s.shape[0]
    if m == n:
        return 0.0
    return float(np.std(s, ddof=1) / np.sqrt(m) * np.sqrt(1.0 - m / n))


def unscored(status):
    """The result of a config that has no labels to score (its fit failed): NaN scores and ``status``."""
    nan = float("nan")
    return {"silhouette": nan, "silhouette_se": nan, "davies_bouldin": nan, "calinski_harabasz": nan,
            "effective_k": 0, "min_cluster_size": 0, "min_cluster_share": nan, "max_cluster_share": nan,
            "status": status}


def score_labels(X, labels, query_idx=None, exact_max_n=EXACT_SILHOUETTE_MAX_N, chunk_rows=None, distances=None):
    """All three scores of one labeling, never raising on degenerate labelings.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    query_idx : array-like of int, default=None
        Query points for the silhouette estimator when ``n_samples > exact_max_n``; None draws
        ``silhouette_query_points(n_samples)`` (seed 0). Pass the same points for every config.
    exact_max_n : int, default=EXACT_SILHOUETTE_MAX_N
        Exact silhouette at or below this many rows.
    chunk_rows : int, default=None
        Side of the square float64 distance blocks; None uses 768 (4.5 MiB).
    distances : raysweep.pairwise.DistanceMatrix, default=None
        The rows' distance matrix, built once for many labelings: the exact silhouette then reads it instead of
        computing the distances again (its distances are float32: the mean within ~1e-7, see
        :mod:`raysweep.pairwise`). Ignored where the silhouette is estimated.

    Returns
    -------
    scores : dict
        ``silhouette``, ``silhouette_se`` (0.0 when exact), ``davies_bouldin``, ``calinski_harabasz``,
        ``effective_k`` (distinct labels), ``min_cluster_size`` (rows of the smallest cluster),
        ``min_cluster_share`` and ``max_cluster_share`` (of all rows: what the selection's eligibility rule
        reads), ``status`` (``"ok"`` or ``"degenerate: <reason>"``; degenerate rows carry NaN scores).
    """
    X, labels = _check_X_labels(X, labels)
    codes, sizes = _encode(labels)
    n, k = X.shape[0], int(sizes.shape[0])
    result = unscored("ok")
    if k:
        result.update(effective_k=k, min_cluster_size=int(sizes.min()), min_cluster_share=float(sizes.min() / n),
                      max_cluster_share=float(sizes.max() / n))
    if k < 2:
        result["status"] = f"degenerate: {k} distinct cluster(s), scores need at least 2"
        return result
    if k >= n:
        result["status"] = f"degenerate: {k} clusters for {n} points, scores need fewer clusters than points"
        return result
    result["davies_bouldin"], result["calinski_harabasz"] = _davies_bouldin_and_calinski_harabasz(X, codes, sizes)
    if n <= exact_max_n:
        rows = None
    else:
        rows = silhouette_query_points(n) if query_idx is None else np.asarray(query_idx, dtype=np.intp)
        if rows.ndim != 1 or rows.shape[0] < 2 or rows.min() < 0 or rows.max() >= n:
            raise ValueError(f"query_idx must be a 1-D array of at least 2 row indices in [0, {n})")
    if rows is None and distances is not None:
        if distances.n_samples != n:
            raise ValueError(f"distances is the matrix of {distances.n_samples} rows, X has {n}")
        sums = distances.cluster_sums(codes, k)
    else:
        sums = _distance_sums(X, codes, sizes, rows, chunk_rows)
    s = _silhouette_from_sums(sums, codes if rows is None else codes[rows], sizes)
    result["silhouette"] = float(np.mean(s))
    result["silhouette_se"] = _silhouette_standard_error(s, n)
    return result
