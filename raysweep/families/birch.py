"""Birch: ONE CF-tree per sample with a threshold adapted to the data; per k only the global step runs.

:func:`birch_threshold` picks a threshold for about ``BIRCH_TARGET_SUBCLUSTERS`` subclusters, :func:`birch_cf_tree`
builds the tree (on at most ``BIRCH_MAX_N`` rows: the family's shared structure) and the ward tree of its
subclusters weighted by their rows, and :func:`birch_labels` cuts that at k.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import Birch
from sklearn.metrics import pairwise_distances_argmin

from raysweep.families.base import ClusterFamily, Fit, check_X, label_centroids, recorded_warnings, thread_limit
from raysweep.families.ward import WardTree, _cut, weighted_ward_tree

# The CF-tree should have low thousands of subclusters: the global step (ward on subcluster centres) is then
# O(T^2) = a few hundred MB at most and each cut is instant, while T >> k_max = 100 keeps Birch's resolution.
BIRCH_TARGET_SUBCLUSTERS = 2_000
BIRCH_MAX_SUBCLUSTERS = 5_000
# scikit-learn inserts rows into the CF-tree one at a time in Python (200k x 13 rows: 19-20 s CPU, 20-93 s wall on
# the shared 2-core machine, 2,779 subclusters, 1.24 GB peak RSS). Above this many rows the tree is built on the
# sample's prefix (a uniform subset) and every row is labelled by its nearest subcluster, which is how Birch
# labels its own rows anyway.
BIRCH_MAX_N = 200_000


def birch_threshold(X, target_subclusters=BIRCH_TARGET_SUBCLUSTERS, sample_size=20_000, seed=0):
    """A Birch threshold for which the CF-tree of X has about ``target_subclusters`` subclusters.

    A subcluster of radius t holds the points within ~t of its centre. For the tree to have ~T subclusters each
    must hold ~n/T points, i.e. t ~ the distance to the (n/T)-th nearest neighbour. On a uniform sample of s rows
    that is the (s/T)-th neighbour (kNN distances depend on the ratio j/n); we take the median over up to 1,000
    sample points. :func:`birch_cf_tree` then checks the count and raises the threshold if there are too many.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    target_subclusters : int, default=BIRCH_TARGET_SUBCLUSTERS
    sample_size : int, default=20_000
    seed : int, default=0

    Returns
    -------
    threshold : float
    """
    X = check_X(X)
    if target_subclusters < 1:
        raise ValueError(f"target_subclusters must be >= 1, got {target_subclusters}")
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    sample = np.asarray(X[rng.choice(n, size=min(n, sample_size), replace=False)], dtype=np.float64)
    s = sample.shape[0]
    neighbour = int(np.clip(round(s / target_subclusters), 1, s - 1))
    queries = sample[: min(s, 1_000)]
    sq = (np.einsum("ij,ij->i", queries, queries)[:, None] - 2 * queries @ sample.T
          + np.einsum("ij,ij->i", sample, sample)[None, :])
    np.maximum(sq, 0, out=sq)
    # Column 0 of each sorted row is the query itself (distance 0).
    kth = np.sqrt(np.partition(sq, neighbour, axis=1)[:, neighbour])
    threshold = float(np.median(kth))
    return threshold if threshold > 0 else float(np.std(sample) * 1e-3 + 1e-12)


@dataclass
class BirchTree:
    """One Birch CF-tree of a sample and ONE weighted ward tree over its subcluster centres.

    Birch's global step is ward on the subcluster centres, each weighted by the rows nearest to it
    (:func:`weighted_ward_linkage`; scikit-learn's ``Birch(n_clusters=k)`` leaves them unweighted), and a row's
    label is that of its nearest subcluster: neither the CF-tree, the nearest subcluster nor the tree depends on
    k, so all are computed here once and :func:`birch_labels` only cuts.

    Attributes
    ----------
    birch : sklearn.cluster.Birch, fitted with ``n_clusters=None``
    threshold : float, the threshold finally used
    attempts : list of dict, every (rows, threshold, n_subclusters) built
    centres_tree : WardTree over ``birch.subcluster_centers_``, weighted by their rows
    row_subcluster : ndarray of shape (n_rows,), each build row's nearest subcluster
    column_sums : ndarray of shape (n_features,), to recognise the build rows in :func:`birch_labels`
    build_seconds : float
    info : dict, warnings recorded while building
    method : dict, :func:`birch_method`
    """

    birch: Birch
    threshold: float
    attempts: list
    centres_tree: WardTree
    row_subcluster: np.ndarray
    column_sums: np.ndarray
    build_seconds: float = 0.0
    info: dict = field(default_factory=dict)
    method: dict = field(default_factory=dict)

    @property
    def n_subclusters(self) -> int:
        return int(self.birch.subcluster_centers_.shape[0])

    @property
    def n_rows(self) -> int:
        return int(self.row_subcluster.shape[0])


def birch_method(n, max_n=BIRCH_MAX_N):
    """How Birch runs on n rows, as recorded in the results.

    Returns
    -------
    method : dict
        ``n_rows``, ``tree_rows``, ``max_n``, ``capped`` and a one-sentence ``description``.
    """
    capped = n > max_n
    tree_rows = min(n, max_n)
    if capped:
        description = (f"Birch CF-tree built on the first {tree_rows:,} rows of the sample (a uniform random subset); "
                       f"all {n:,} rows are labelled by their nearest subcluster; global step: ward on the "
                       "subcluster centres weighted by their rows, one tree cut at each k")
    else:
        description = (f"Birch CF-tree on all {n:,} rows; global step: ward on the subcluster centres weighted by "
                       "their rows, one tree cut at each k")
    return {"n_rows": int(n), "tree_rows": int(tree_rows), "max_n": int(max_n), "capped": bool(capped),
            "description": description}


def birch_cf_tree(X, threshold, max_subclusters=BIRCH_MAX_SUBCLUSTERS, growth=1.5, max_attempts=8,
                  probe_rows=20_000, max_n=BIRCH_MAX_N, n_threads=None):
    """Build ONE Birch CF-tree (``n_clusters=None``) and the ward tree of its subcluster centres.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    threshold : float
        Usually :func:`birch_threshold`. While the tree has more than ``max_subclusters`` subclusters the
        threshold is multiplied by ``growth`` and the tree rebuilt (at most ``max_attempts`` builds in all).
        The subcluster count only grows with more rows, so when X has over twice ``probe_rows`` rows the
        threshold is first checked on that prefix, where a rebuild is cheap.
    max_subclusters : int, default=BIRCH_MAX_SUBCLUSTERS
    growth : float, default=1.5
    max_attempts : int, default=8
    probe_rows : int, default=20_000
    max_n : int, default=BIRCH_MAX_N
        The tree is built on at most the first ``max_n`` rows (:func:`birch_method`); all rows are labelled.
    n_threads : int, default=None

    Returns
    -------
    cf_tree : BirchTree
        ``attempts`` lists every (rows, threshold, n_subclusters) built; ``method`` is :func:`birch_method`.
    """
    X = check_X(X)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    start = time.perf_counter()
    info, attempts = {}, []
    tree_rows = min(X.shape[0], int(max_n))
    stages = [probe_rows, tree_rows] if tree_rows > 2 * probe_rows else [tree_rows]
    with thread_limit(n_threads), recorded_warnings(info):
        for rows in stages:
            while True:
                birch = Birch(threshold=threshold, n_clusters=None, compute_labels=False).fit(X[:rows])
                count = int(birch.subcluster_centers_.shape[0])
                attempts.append({"rows": int(rows), "threshold": float(threshold), "n_subclusters": count})
                if count <= max_subclusters or len(attempts) >= max_attempts:
                    break
                threshold *= growth
        # With n_clusters=None, Birch.predict returns each row's nearest subcluster.
        row_subcluster = birch.predict(X)
        centres = birch.subcluster_centers_
        # Weighted by the rows each subcluster holds (Zhang et al. 1996, BIRCH, phase 3 clusters CF entries):
        # scikit-learn's global step weighs a 2-row subcluster like a 500-row one, so far-off pairs of points
        # became clusters of their own. A subcluster nearest to no row keeps weight 1.
        weights = np.maximum(np.bincount(row_subcluster, minlength=centres.shape[0]), 1)
        centres_tree = weighted_ward_tree(centres, weights) if centres.shape[0] >= 2 else None
    if count > max_subclusters:
        info.setdefault("warnings", []).append(
            f"Birch CF-tree has {count} subclusters after {len(attempts)} builds (max_subclusters={max_subclusters})")
    return BirchTree(birch, float(threshold), attempts, centres_tree, np.asarray(row_subcluster),
                     np.asarray(X, dtype=np.float64).sum(axis=0), time.perf_counter() - start, info,
                     birch_method(X.shape[0], max_n))


def birch_labels(cf_tree, X, k):
    """Birch's global step for k on a built CF-tree: the labels of the rows it was built from.

    Parameters
    ----------
    cf_tree : BirchTree
    X : ndarray of shape (n_rows, n_features) or None
        The rows the tree was built from (checked by shape and column sums), or None for the same.
    k : int

    Returns
    -------
    labels : ndarray of shape (n_rows,), int
        Ward's cut of the size-weighted subclusters (equal to ``Birch(threshold=t, n_clusters=k).fit_predict(X)``
        only when every subcluster holds as many rows). When the CF-tree has fewer than k subclusters it has as
        many clusters as subclusters (score_labels reports effective_k).
    """
    if X is not None:
        X = np.asarray(X)
        if X.shape[0] != cf_tree.n_rows or not np.allclose(X.sum(axis=0, dtype=np.float64), cf_tree.column_sums):
            raise ValueError("birch_labels labels the rows its CF-tree was built from; use "
                             "FinalModel('birch', k).fit(X).predict for other rows")
    n_sub = cf_tree.n_subclusters
    if n_sub < 2:
        return cf_tree.row_subcluster.copy()
    subcluster_labels = _cut(cf_tree.centres_tree, min(int(k), n_sub))
    return subcluster_labels[cf_tree.row_subcluster]



class BirchFamily(ClusterFamily):
    """Birch with a size-weighted ward global step; predict: the cluster of the nearest subcluster."""

    name = "birch"
    cost_rank = 2
    shared_structure = "birch_cf_tree"

    def build_shared(self, X, n, seed, n_threads=None, threshold=None, max_n=None):
        """The CF-tree of the first n rows of X, at ``threshold`` (None: :func:`birch_threshold` of those rows),
        on at most ``max_n`` of them (None: ``BIRCH_MAX_N``)."""
        sample = X[:n]
        if threshold is None:
            threshold = birch_threshold(sample, seed=seed)
        cf_tree = birch_cf_tree(sample, threshold, max_n=BIRCH_MAX_N if max_n is None else max_n,
                                n_threads=n_threads)
        return cf_tree, {"birch_threshold": cf_tree.threshold, "subclusters": cf_tree.n_subclusters,
                         "threshold_attempts": cf_tree.attempts}

    def fit(self, X, k, seed, shared=None, n_threads=None, threshold=None, max_n=None):
        """See :meth:`ClusterFamily.fit`; ``shared`` is the :class:`BirchTree` of exactly these rows."""
        X = check_X(X)
        cf_tree = self.build_shared(X, X.shape[0], seed, n_threads, threshold, max_n)[0] if shared is None else shared
        labels = birch_labels(cf_tree, None, k)
        n_sub = cf_tree.n_subclusters
        subcluster_labels = _cut(cf_tree.centres_tree, min(k, n_sub)) if n_sub >= 2 else np.zeros(n_sub, np.intp)
        info = {**cf_tree.info, "attempts": cf_tree.attempts, "n_subclusters": n_sub}
        return Fit(labels, label_centroids(X, labels), cf_tree.birch,
                   {"estimator": "Birch", "threshold": cf_tree.threshold, "n_subclusters": n_sub, **cf_tree.method},
                   info, {"subcluster_labels": subcluster_labels})

    def predict(self, final, X):
        return final.state_["subcluster_labels"][pairwise_distances_argmin(X, final.estimator_.subcluster_centers_)]

    def refit_options(self, run_record, n_rows):
        # ONE CF-tree over all rows (the sweep caps its trees to keep trials short; a refit runs once), at the
        # threshold of the sweep's top rung when run.json recorded one, else one adapted to all rows.
        threshold = run_record.top_rung_build("birch_threshold")
        return {"max_n": n_rows} if threshold is None else {"max_n": n_rows, "threshold": float(threshold)}


FAMILY = BirchFamily()
