"""Bisecting k-means: :class:`sklearn.cluster.BisectingKMeans` with scikit-learn's defaults, optional in --models.

It splits the cluster of largest inertia in two (a 2-means fit) until there are k, so one fit costs about
log2(k) small KMeans fits; predict follows the bisection tree, as scikit-learn does. Not in the default grid.
"""

from __future__ import annotations

from sklearn.cluster import BisectingKMeans

from raysweep.families.base import ClusterFamily, Fit, check_k, check_X, recorded_warnings, thread_limit


class BisectingKMeansFamily(ClusterFamily):
    """scikit-learn's BisectingKMeans (random init, one init per bisection, largest-inertia cluster split)."""

    name = "bisecting_kmeans"
    cost_rank = 2  # cheaper than KMeans' four full inits

    def fit(self, X, k, seed, shared=None, n_threads=None):
        X = check_X(X)
        check_k(k, X.shape[0])
        info = {}
        estimator = BisectingKMeans(n_clusters=k, random_state=seed)
        with thread_limit(n_threads), recorded_warnings(info):
            labels = estimator.fit_predict(X)
        info.update(inertia=float(estimator.inertia_))
        return Fit(labels, estimator.cluster_centers_, estimator,
                   {"estimator": "BisectingKMeans", "bisecting_strategy": estimator.bisecting_strategy,
                    "init": estimator.init, "n_init": estimator.n_init}, info)

    def predict(self, final, X):
        return final.estimator_.predict(X)


FAMILY = BisectingKMeansFamily()
