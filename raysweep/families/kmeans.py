"""KMeans: :class:`sklearn.cluster.KMeans`, k-means++ init, the lowest-inertia of ``KMEANS_INITS`` inits.

scikit-learn's default ``n_init="auto"`` means one init for k-means++; see ``KMEANS_INITS`` for why more. Above
``KMEANS_SAMPLE_N`` rows the inits run on a sample and the best is polished on all rows.
"""

from __future__ import annotations

from sklearn.cluster import KMeans

from raysweep.families.base import ClusterFamily, Fit, check_k, check_X, recorded_warnings, thread_limit

# One k-means++ init leaves a config's score at the mercy of its seed: on the v1 default data, KMeans k=15's
# silhouette over 6 seeds spread from 0.234 to 0.279 at 20,000 rows, wider than the gap between the top configs,
# so the sweep's winner was partly a coin toss and halving could cut the exhaustive winner. Four inits narrow the
# spread (0.261-0.279) for ~4x a KMeans fit, which is cheap next to scoring (0.5 -> 2.3 s at k=100, 20k rows).
KMEANS_INITS = 4

# Above this many rows the KMEANS_INITS inits run on the first KMEANS_SAMPLE_N rows (a uniform random subset: the
# rows are a prefix of the sweep's permutation) and Lloyd's algorithm then polishes the best of them on all rows,
# from its centres. Measured on the 1M default data (one thread, benchmarks/bench_fit_levers.py): CPU 2.8 -> 0.8 s
# at k=5, 14.8 -> 1.7 s at k=22, 36.1 -> 6.0 s at k=50, 119.3 -> 36.4 s at k=100, the inertia 0.7% above, 0.6% and
# 0.2% below, 0.2% above the fit of all inits on all rows. At or below it (every validity set, the 20k benchmarks)
# the fit is unchanged.
KMEANS_SAMPLE_N = 100_000


def _kmeans(k, seed, init="k-means++"):
    return KMeans(n_clusters=k, init=init, n_init=KMEANS_INITS if isinstance(init, str) else 1, random_state=seed)


class KMeansFamily(ClusterFamily):
    """KMeans with ``KMEANS_INITS`` k-means++ inits; predict is KMeans' own (nearest centre)."""

    name = "kmeans"
    cost_rank = 1

    def fit(self, X, k, seed, shared=None, n_threads=None, sample_n=None):
        """See :meth:`ClusterFamily.fit`. When X (rows in random order) has more than ``sample_n`` rows (None:
        ``KMEANS_SAMPLE_N``), the inits run on its first ``sample_n`` and the best is polished on all of them."""
        X = check_X(X)
        check_k(k, X.shape[0])
        sample_n = KMEANS_SAMPLE_N if sample_n is None else int(sample_n)
        init_rows = min(X.shape[0], max(sample_n, k))
        info = {}
        with thread_limit(n_threads), recorded_warnings(info):
            if init_rows < X.shape[0]:
                centres = _kmeans(k, seed).fit(X[:init_rows]).cluster_centers_
                estimator = _kmeans(k, seed, init=centres)
            else:
                estimator = _kmeans(k, seed)
            labels = estimator.fit_predict(X)
        info.update(n_iter=int(estimator.n_iter_), converged=bool(estimator.n_iter_ < estimator.max_iter),
                    inertia=float(estimator.inertia_), init_rows=int(init_rows))
        return Fit(labels, estimator.cluster_centers_, estimator,
                   {"estimator": "KMeans", "n_init": KMEANS_INITS, "init": "k-means++", "init_rows": int(init_rows)},
                   info)

    def predict(self, final, X):
        return final.estimator_.predict(X)


FAMILY = KMeansFamily()


def kmeans_labels(X, k, seed, n_threads=None, sample_n=KMEANS_SAMPLE_N):
    """KMeans labels for one k.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    k : int
    seed : int
    n_threads : int, default=None
        Cap on BLAS/OpenMP threads; None leaves them alone.
    sample_n : int, default=KMEANS_SAMPLE_N
        With more rows than this, the inits run on the first ``sample_n`` rows (X in random order) and the best is
        polished on all rows.

    Returns
    -------
    labels : ndarray of shape (n_samples,), int
    info : dict
        ``n_iter`` and ``converged`` (of the fit on all rows), ``inertia``, ``init_rows``, ``warnings`` (list of str).
    """
    fit = FAMILY.fit(X, k, seed, n_threads=n_threads, sample_n=sample_n)
    return fit.labels, fit.info
