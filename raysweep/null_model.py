"""The scores a data set without clusters gets at each k: the Gaussian null the winner rule compares against.

Silhouette, Davies-Bouldin and Calinski-Harabasz all depend on k even where there is nothing to find: k-means
on one Gaussian blob shaped like the generated playlists' 13 audio features scores a silhouette of 0.17 at k = 2
and 0.09 at k = 12 (measured, 3,000 rows). So a
strong top-level split (two groups of profiles) outscores the finer clustering the labels describe, although the
finer one is much further above what no structure would give. The null here is the one SigClust tests against, a
single Gaussian with the data's mean and covariance (Liu, Hayes, Nobel and Marron 2008, JASA 103:1281); comparing
an index with its value on reference data at the same k is the gap statistic's idea (Tibshirani, Walther and
Hastie 2001, JRSS-B 63:411). A uniform reference over the principal-component box (the gap statistic's own) was
measured too and does not separate: its silhouette is ~0.10 at every k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from raysweep import scores

NULL_ROWS = 3_000  # rows of the null sample (fewer when the data has fewer): 30 per cluster at k = 100
COVARIANCE_ROWS = 100_000  # the mean and covariance are estimated on at most this many rows
KMEANS_INITS = 2
METHOD = ("k-means (n_init=2) at each k on a sample from one Gaussian with the data's mean and covariance "
          "(SigClust's null: Liu, Hayes, Nobel and Marron 2008); min(n, 3,000) rows")


def gaussian_null_sample(X, n_rows, seed=0):
    """Rows drawn from a single Gaussian with the mean and covariance of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The (scaled) feature matrix; its first ``COVARIANCE_ROWS`` rows estimate the Gaussian.
    n_rows : int
    seed : int, default=0

    Returns
    -------
    sample : ndarray of shape (n_rows, n_features), float64
    """
    X = np.asarray(X, dtype=np.float64)[:COVARIANCE_ROWS]
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"expected a 2-D matrix of at least 2 rows, got shape {X.shape}")
    covariance = np.atleast_2d(np.cov(X, rowvar=False))
    return np.random.default_rng(seed).multivariate_normal(X.mean(axis=0), covariance, size=int(n_rows),
                                                           method="eigh")


def null_scores(X, k_values, seed=0, n_rows=NULL_ROWS, n_threads=None):
    """The three scores of k-means on the Gaussian null sample, per k.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    k_values : iterable of int
        Every k must be below ``min(n_samples, n_rows)``.
    seed : int, default=0
        Seed of the sample and of k-means.
    n_rows : int, default=NULL_ROWS
        Rows of the null sample; at most ``n_samples``, so that small data sets are compared at their own size.
    n_threads : int, default=None
        BLAS / OpenMP threads (None: the library's default).

    Returns
    -------
    null : pandas.DataFrame
        Indexed by ``k`` (sorted), columns ``silhouette`` (exact), ``davies_bouldin``, ``calinski_harabasz``
        and ``n`` (rows of the null sample).
    """
    n = min(int(n_rows), len(X))
    k_values = sorted({int(k) for k in k_values})
    if not k_values or k_values[0] < 2 or k_values[-1] >= n:
        raise ValueError(f"k values {k_values[:1] + k_values[-1:]}: each must be within [2, {n - 1}] for a null "
                         f"sample of {n} rows")
    sample = gaussian_null_sample(X, n, seed)
    rows = []
    with threadpool_limits(limits=n_threads):
        for k in k_values:
            labels = KMeans(n_clusters=k, n_init=KMEANS_INITS, random_state=seed).fit_predict(sample)
            result = scores.score_labels(sample, labels, exact_max_n=n)
            rows.append({"k": k, "silhouette": result["silhouette"], "davies_bouldin": result["davies_bouldin"],
                         "calinski_harabasz": result["calinski_harabasz"], "n": n})
    return pd.DataFrame(rows).set_index("k")

