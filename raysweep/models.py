"""The four model families of the sweep, built so that work shared between values of k is done once.

- ``kmeans``: :class:`sklearn.cluster.KMeans`, k-means++ init, the lowest-inertia of ``KMEANS_INITS`` inits
  (scikit-learn's default ``n_init="auto"`` means one init for k-means++; see ``KMEANS_INITS`` for why more).
- ``gmm``: :class:`sklearn.mixture.GaussianMixture`, full covariance (see ``GMM_PARAMS`` for the init choice);
  above ``GMM_MAX_N`` rows fitted on a capped prefix, every row labelled by predict.
- ``agglomerative``: ward linkage. ONE tree per sample (:func:`ward_tree`) is cut at every k
  (:func:`ward_labels`) instead of one fit per k. Above ``AGGLOMERATIVE_MAX_N`` rows the tree is built on a
  capped prefix and every other row joins the nearest centroid of the cut (:func:`agglomerative_method`).
- ``birch``: ONE CF-tree per sample with a threshold adapted to the data (:func:`birch_threshold`,
  :func:`birch_cf_tree`, on at most ``BIRCH_MAX_N`` rows); per k only the global step runs (:func:`birch_labels`).

Every cap uses the sample's prefix, so the caller passes rows in random order (a prefix of a seeded permutation).

Everything here is plain NumPy/scikit-learn/SciPy: no Ray. Heavy functions take ``n_threads`` to cap BLAS and
OpenMP threads (threadpoolctl) when the caller asks; None leaves the process's limits alone.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import ward as scipy_ward
from sklearn.cluster import Birch, KMeans
from sklearn.metrics import pairwise_distances_argmin
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_log_det_cholesky, _compute_precision_cholesky

MODEL_NAMES = ("kmeans", "birch", "agglomerative", "gmm")

# Ward needs the condensed distance matrix, n(n-1)/2 float64, and SciPy's nearest-neighbour chain works on a copy
# of it. Measured at 20,000 x 13 (benchmarks/bench_scores.py --full): 3.18 GB peak RSS, 35-46 s CPU; 10,000: 1.21 GB.
# 20,000 is the study's 2% sample, so the equal-fidelity comparison stays exact ward; 1M rows would need ~8 TB.
AGGLOMERATIVE_MAX_N = 20_000

# The CF-tree should have low thousands of subclusters: the global step (ward on subcluster centres) is then
# O(T^2) = a few hundred MB at most and each cut is instant, while T >> k_max = 100 keeps Birch's resolution.
BIRCH_TARGET_SUBCLUSTERS = 2_000
BIRCH_MAX_SUBCLUSTERS = 5_000
# scikit-learn inserts rows into the CF-tree one at a time in Python (200k x 13 rows: 19-20 s CPU, 20-93 s wall on
# the shared 2-core machine, 2,779 subclusters, 1.24 GB peak RSS). Above this many rows the tree is built on the
# sample's prefix (a uniform subset) and every row is labelled by its nearest subcluster, which is how Birch
# labels its own rows anyway.
BIRCH_MAX_N = 200_000


def _check_X(X, name="X"):
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D array of shape (n_samples, n_features), got {X.shape}")
    return X


def _check_k(k, n):
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of rows ({n})")


def _thread_limit(n_threads):
    """Cap BLAS and OpenMP threads when asked (Ray sets OMP_NUM_THREADS, not every BLAS honours it)."""
    if n_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_threads))


@contextlib.contextmanager
def _recorded_warnings(info):
    """Record warnings (ConvergenceWarning, ...) as strings in ``info["warnings"]`` instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    info.setdefault("warnings", []).extend(
        f"{w.category.__name__}: {w.message}" for w in caught
    )


# --------------------------------------------------------------------------------------------- kmeans, gmm


# One k-means++ init leaves a config's score at the mercy of its seed: on the v1 default data, KMeans k=15's
# silhouette over 6 seeds spread from 0.234 to 0.279 at 20,000 rows, wider than the gap between the top configs,
# so the sweep's winner was partly a coin toss and halving could cut the exhaustive winner. Four inits narrow the
# spread (0.261-0.279) for ~4x a KMeans fit, which is cheap next to scoring (0.5 -> 2.3 s at k=100, 20k rows).
KMEANS_INITS = 4


def _kmeans(k, seed):
    return KMeans(n_clusters=k, init="k-means++", n_init=KMEANS_INITS, random_state=seed)


def kmeans_labels(X, k, seed, n_threads=None):
    """KMeans labels for one k.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    k : int
    seed : int
    n_threads : int, default=None
        Cap on BLAS/OpenMP threads; None leaves them alone.

    Returns
    -------
    labels : ndarray of shape (n_samples,), int
    info : dict
        ``n_iter``, ``converged``, ``inertia``, ``warnings`` (list of str).
    """
    X = _check_X(X)
    _check_k(k, X.shape[0])
    info = {}
    estimator = _kmeans(k, seed)
    with _thread_limit(n_threads), _recorded_warnings(info):
        labels = estimator.fit_predict(X)
    info.update(n_iter=int(estimator.n_iter_), converged=bool(estimator.n_iter_ < estimator.max_iter),
                inertia=float(estimator.inertia_))
    return labels, info


# Full covariance is the study's model (scikit-learn's default) and the audio features are correlated, so a
# diagonal model would be a different model; d is small (13), so full costs O(n*k*d^2) per EM step. Init: the
# default KMeans init, one init. k-means++ seeding skips that KMeans fit but needed more EM steps and was no
# faster end to end (20k x 13 blobs, k=100: 31.0 s vs 27.9 s CPU; 5k generated playlists, k=100: 5.1 s vs
# 4.6 s). reg_covar 1e-6 (default) against singular components, at most 100 EM steps.
GMM_PARAMS = {"init_params": "kmeans", "n_init": 1, "max_iter": 100, "reg_covar": 1e-6}


# Full-covariance EM costs O(n*k*d^2) per step: 20k x 13 at k=100 took 9 s CPU here (40 steps; scikit-learn's own
# loop: 23-28 s), so 1M rows would take ~8 min for ONE config. Above this many rows the mixture is fitted on the
# sample's prefix (a uniform random subset: >= 2,000 rows per component at k=100 for 104 parameters each) and
# every row is labelled by predict.
GMM_MAX_N = 200_000


_GMM_CHUNK_ROWS = 32_768


def _predict_in_chunks(mixture, X, chunk_rows=65_536):
    """GaussianMixture.predict in row chunks: its (n x k) float64 log-probabilities are 800 MB at 1M x 100."""
    chunks = range(0, X.shape[0], chunk_rows)
    return np.concatenate([mixture.predict(X[start : start + chunk_rows]) for start in chunks])


def _outer_rows(X):
    """Row-wise outer products x x^T flattened, shape (n, d*d), float64."""
    X = np.asarray(X, dtype=np.float64)
    return (X[:, :, None] * X[:, None, :]).reshape(X.shape[0], -1)


class _FullCovarianceMixture(GaussianMixture):
    """GaussianMixture(covariance_type="full") with its E and M steps as a few large matrix products.

    scikit-learn loops over components with (n x d) @ (d x d) products. Here both steps use the flattened outer
    products z z^T (n x d^2) of the rows centred on the mixture's overall mean c: the Mahalanobis term is
    ``vec(z z^T) . vec(P_k) - 2 z . P_k m_k + m_k . P_k m_k`` with z = x - c, m_k = mu_k - c, and the scatter of
    component k is ``sum_i r_ik vec(z_i z_i^T) - n_k m_k m_k^T``: one (k x n) @ (n x d^2) product. Same EM: equal
    iterations and lower bound to ~1e-10 (tests); 2.5x less CPU at 20k x 13, k=100 (23 s -> 9 s, one thread).
    Centring on c keeps the cancellation at ~eps * spread^2, far below reg_covar; should a covariance still not be
    positive definite, that step falls back to scikit-learn's per-component computation.
    """

    def _m_step(self, X, log_resp, xp=None):
        resp = np.exp(log_resp)
        nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
        X64 = np.asarray(X, dtype=np.float64)
        means = (resp.T @ X64) / nk[:, None]
        centre = nk @ means / nk.sum()
        offsets = means - centre
        d = X64.shape[1]
        scatter = np.zeros((means.shape[0], d * d))
        for start in range(0, X64.shape[0], _GMM_CHUNK_ROWS):
            stop = start + _GMM_CHUNK_ROWS
            scatter += resp[start:stop].T @ _outer_rows(X64[start:stop] - centre)
        covariances = scatter.reshape(-1, d, d) / nk[:, None, None] - offsets[:, :, None] * offsets[:, None, :]
        covariances[:, np.arange(d), np.arange(d)] += self.reg_covar
        try:
            precisions_cholesky = _compute_precision_cholesky(covariances, "full")
        except ValueError:
            return super()._m_step(X, log_resp)
        self.weights_ = nk / nk.sum()
        self.means_, self.covariances_, self.precisions_cholesky_ = means, covariances, precisions_cholesky

    def _estimate_log_prob(self, X, xp=None):
        n, d = X.shape
        chol = self.precisions_cholesky_
        precisions = chol @ chol.transpose(0, 2, 1)
        centre = self.weights_ @ self.means_
        offsets = self.means_ - centre
        precision_offsets = np.einsum("kde,ke->kd", precisions, offsets)
        constant = np.einsum("kd,kd->k", offsets, precision_offsets)
        flat = precisions.reshape(-1, d * d).T
        quadratic = np.empty((n, self.means_.shape[0]))
        for start in range(0, n, _GMM_CHUNK_ROWS):
            chunk = np.asarray(X[start : start + _GMM_CHUNK_ROWS], dtype=np.float64) - centre
            quadratic[start : start + chunk.shape[0]] = (
                _outer_rows(chunk) @ flat - 2.0 * (chunk @ precision_offsets.T) + constant)
        log_det = _compute_log_det_cholesky(chol, "full", d)
        return -0.5 * (d * np.log(2 * np.pi) + quadratic) + log_det


class DegenerateFitError(ValueError):
    """A model could not be fitted to these rows at this k (e.g. every GMM retry had a collapsed component)."""


# A component that collapses onto a few (near-)identical rows has a singular covariance: scikit-learn then raises
# "ill-defined empirical covariance" (real playlists: 2 GMM trials of 30 on 468 playlists). Each retry adds 10x the
# ridge; 1e-3 is 0.1% of a standardized feature's variance, still far below any real cluster's spread.
GMM_REG_COVAR_RETRIES = (1e-5, 1e-4, 1e-3)


def _fit_gmm(X, k, seed, covariance_type, max_n, n_threads, info):
    """Fit a GaussianMixture on at most the first max_n rows; return it and the labels of every row.

    A collapsed component is retried with a larger ``reg_covar`` (``GMM_REG_COVAR_RETRIES``, recorded in
    ``info["warnings"]``); DegenerateFitError when the last retry still fails.
    """
    mixture = _FullCovarianceMixture if covariance_type == "full" else GaussianMixture
    fit_rows = min(X.shape[0], int(max_n))
    for reg_covar in (GMM_PARAMS["reg_covar"], *GMM_REG_COVAR_RETRIES):
        estimator = mixture(n_components=k, covariance_type=covariance_type, random_state=seed,
                            **{**GMM_PARAMS, "reg_covar": reg_covar})
        try:
            with _thread_limit(n_threads), _recorded_warnings(info):
                if fit_rows == X.shape[0]:
                    labels = estimator.fit_predict(X)
                else:
                    labels = _predict_in_chunks(estimator.fit(X[:fit_rows]), X)
            break
        except ValueError as exc:
            if "ill-defined empirical covariance" not in str(exc):
                raise
            info.setdefault("warnings", []).append(
                f"GaussianMixture k={k}: a component collapsed at reg_covar={reg_covar:g} (ill-defined covariance)")
    else:
        raise DegenerateFitError(f"GaussianMixture k={k}: a component collapsed onto too few distinct rows even "
                                 f"with reg_covar={GMM_REG_COVAR_RETRIES[-1]:g}")
    if reg_covar != GMM_PARAMS["reg_covar"]:
        info["warnings"].append(f"GaussianMixture k={k}: fitted with reg_covar={reg_covar:g}")
    info.update(n_iter=int(estimator.n_iter_), converged=bool(estimator.converged_),
                lower_bound=float(estimator.lower_bound_), fit_rows=int(fit_rows), covariance_type=covariance_type,
                reg_covar=float(reg_covar))
    return estimator, labels


def gmm_labels(X, k, seed, covariance_type="full", max_n=GMM_MAX_N, n_threads=None):
    """GaussianMixture labels for one k (``GMM_PARAMS``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        In random order (a prefix of a seeded permutation) when it has more than ``max_n`` rows.
    k : int
    seed : int
    covariance_type : {"full", "diag", "tied", "spherical"}, default="full"
        "diag" is ~10x cheaper at k=100 (20k x 13: 2.7 s vs 28 s CPU) but a different model.
    max_n : int, default=GMM_MAX_N
        Fit on at most the first ``max_n`` rows; every row is labelled.
    n_threads : int, default=None

    Returns
    -------
    labels : ndarray of shape (n_samples,), int
        May hold fewer than k distinct values (empty components).
    info : dict
        ``n_iter``, ``converged``, ``lower_bound``, ``fit_rows``, ``covariance_type``, ``reg_covar`` (the one
        that fitted), ``warnings`` (list of str).

    Raises
    ------
    DegenerateFitError
        When a component collapses even at the largest ``reg_covar`` of ``GMM_REG_COVAR_RETRIES``.
    """
    X = _check_X(X)
    _check_k(k, X.shape[0])
    info = {}
    _, labels = _fit_gmm(X, k, seed, covariance_type, max_n, n_threads, info)
    return labels, info


# --------------------------------------------------------------------------------------------- ward


@dataclass
class WardTree:
    """One ward tree over the first ``n_leaves`` rows of a sample, cut at any k by :func:`ward_labels`.

    Attributes
    ----------
    linkage : ndarray of shape (n_leaves - 1, 4), SciPy linkage matrix
    leaf_order : ndarray of shape (n_leaves,), the leaves in dendrogram order (every subtree is contiguous)
    node_start : ndarray of shape (2 * n_leaves - 1,), each node's first position in ``leaf_order``
    parent_step : ndarray of shape (2 * n_leaves - 1,), the merge step that absorbs each node (n - 1 for the root)
    n_leaves : int
    n_rows : int, rows of the sample the tree was asked for (> n_leaves when capped)
    build_seconds : float
    """

    linkage: np.ndarray
    leaf_order: np.ndarray
    node_start: np.ndarray
    parent_step: np.ndarray
    n_leaves: int
    n_rows: int
    build_seconds: float = 0.0

    @property
    def capped(self) -> bool:
        return self.n_leaves < self.n_rows


def agglomerative_method(n, max_n=AGGLOMERATIVE_MAX_N):
    """How agglomerative clustering runs on n rows, as recorded in the results.

    Returns
    -------
    method : dict
        ``linkage``, ``n_rows``, ``tree_rows``, ``max_n``, ``capped`` and a one-sentence ``description``.
    """
    capped = n > max_n
    tree_rows = min(n, max_n)
    if capped:
        description = (f"ward tree on the first {tree_rows:,} rows of the sample (a uniform random subset: the sample "
                       f"is a prefix of a seeded permutation), cut at k; the other {n - tree_rows:,} rows join the "
                       "nearest centroid of the cut (the ward distance matrix of all rows would need "
                       f"{n * (n - 1) / 2 * 8 / 2**30:,.1f} GiB)")
    else:
        description = f"exact ward tree on all {n:,} rows, cut at k (equal to AgglomerativeClustering(n_clusters=k))"
    return {"linkage": "ward", "n_rows": int(n), "tree_rows": int(tree_rows), "max_n": int(max_n),
            "capped": bool(capped), "description": description}


def _tree_layout(linkage, n):
    """Dendrogram leaf order, each node's start in it, and the merge step absorbing each node (one O(n) pass)."""
    children = linkage[:, :2].astype(np.intp)
    sizes = np.concatenate((np.ones(n, dtype=np.intp), linkage[:, 3].astype(np.intp)))
    parent_step = np.full(2 * n - 1, n - 1, dtype=np.intp)
    parent_step[children[:, 0]] = np.arange(n - 1)
    parent_step[children[:, 1]] = np.arange(n - 1)
    node_start = np.zeros(2 * n - 1, dtype=np.intp)
    # Top-down from the root: the left child starts where its parent starts, the right child after the left.
    left, right = children[:, 0].tolist(), children[:, 1].tolist()
    start = node_start.tolist()
    size = sizes.tolist()
    for step in range(n - 2, -1, -1):
        s = start[n + step]
        start[left[step]] = s
        start[right[step]] = s + size[left[step]]
    node_start[:] = start
    leaf_order = np.empty(n, dtype=np.intp)
    leaf_order[node_start[:n]] = np.arange(n)
    return leaf_order, node_start, parent_step


def ward_tree(X, max_n=AGGLOMERATIVE_MAX_N, n_threads=None):
    """Build ONE ward tree for a sample, on its first ``max_n`` rows at most.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The sample, in random order (a prefix of a seeded permutation) so that its prefix is a uniform subset.
    max_n : int, default=AGGLOMERATIVE_MAX_N
    n_threads : int, default=None

    Returns
    -------
    tree : WardTree
    """
    X = _check_X(X)
    if X.shape[0] < 2:
        raise ValueError("ward_tree needs at least 2 rows")
    n = min(X.shape[0], int(max_n))
    start = time.perf_counter()
    with _thread_limit(n_threads):
        # SciPy's nearest-neighbour-chain ward (what sklearn.cluster.ward_tree calls without connectivity).
        linkage = scipy_ward(np.asarray(X[:n], dtype=np.float64))
    leaf_order, node_start, parent_step = _tree_layout(linkage, n)
    return WardTree(linkage, leaf_order, node_start, parent_step, n, X.shape[0], time.perf_counter() - start)


def weighted_ward_linkage(centres, weights):
    """Ward linkage of weighted points, as a SciPy linkage matrix.

    Each point stands for ``weights[i]`` rows at ``centres[i]`` (a Birch subcluster). Merging clusters A and B
    costs ``w_A w_B / (w_A + w_B) * ||c_A - c_B||^2``, the increase of the within-cluster sum of squares, so the
    tree is ward's tree of the rows themselves were each subcluster a point mass. Neither SciPy nor scikit-learn
    takes weights in ward. Nearest-neighbour chain: Muellner 2011, "Modern hierarchical, agglomerative clustering
    algorithms", arXiv:1109.2378, section 3.

    Parameters
    ----------
    centres : ndarray of shape (n_points, n_features)
    weights : ndarray of shape (n_points,), positive

    Returns
    -------
    linkage : ndarray of shape (n_points - 1, 4)
        Merges in height order; heights follow SciPy's ward convention ``sqrt(2 * cost)`` (unit weights give
        ``scipy.cluster.hierarchy.ward``'s heights); column 3 counts points (leaves), not weight.
    """
    centres = np.array(centres, dtype=np.float64)
    weight = np.asarray(weights, dtype=np.float64).copy()
    n = centres.shape[0]
    if weight.shape != (n,) or not (weight > 0).all():
        raise ValueError(f"weights must be {n} positive numbers, one per centre")
    active = np.ones(n, dtype=bool)
    merges = []  # (slot kept, slot absorbed, cost): slot a holds the union after the merge
    chain = []
    while len(merges) < n - 1:
        if not chain:
            chain.append(int(np.flatnonzero(active)[0]))
        while True:
            a = chain[-1]
            offsets = centres - centres[a]
            cost = weight[a] * weight / (weight[a] + weight) * np.einsum("ij,ij->i", offsets, offsets)
            cost[~active] = np.inf
            cost[a] = np.inf
            b = int(np.argmin(cost))
            # Reciprocal nearest neighbours (ties go to the chain's previous element, so the chain never cycles).
            if len(chain) > 1 and cost[chain[-2]] <= cost[b]:
                b = chain[-2]
                break
            chain.append(b)
        del chain[-2:]
        merges.append((a, b, float(cost[b])))
        total = weight[a] + weight[b]
        centres[a] = (weight[a] * centres[a] + weight[b] * centres[b]) / total
        weight[a] = total
        active[b] = False
    # The chain finds merges out of height order; replay them sorted, numbering nodes as SciPy does.
    merges.sort(key=lambda merge: merge[2])
    parent = list(range(n))
    node_of = list(range(n))  # SciPy node id of the cluster whose union-find root is this slot
    leaves = [1] * n

    def root(slot):
        while parent[slot] != slot:
            parent[slot] = parent[parent[slot]]
            slot = parent[slot]
        return slot

    linkage = np.empty((n - 1, 4))
    for step, (a, b, cost) in enumerate(merges):
        ra, rb = root(a), root(b)
        first, second = sorted((node_of[ra], node_of[rb]))
        parent[rb] = ra
        leaves[ra] += leaves[rb]
        node_of[ra] = n + step
        linkage[step] = (first, second, np.sqrt(2.0 * max(cost, 0.0)), leaves[ra])
    return linkage


def weighted_ward_tree(centres, weights):
    """ONE ward tree over weighted points (:func:`weighted_ward_linkage`), cut at any k by :func:`_cut`."""
    start = time.perf_counter()
    linkage = weighted_ward_linkage(centres, weights)
    n = linkage.shape[0] + 1
    leaf_order, node_start, parent_step = _tree_layout(linkage, n)
    return WardTree(linkage, leaf_order, node_start, parent_step, n, n, time.perf_counter() - start)


def _cut(tree, k):
    """Labels 0..k-1 of the tree's leaves after its first n - k merges (sklearn's _hc_cut, by merge order)."""
    n = tree.n_leaves
    _check_k(k, n)
    kept = n - k  # merges applied
    nodes = np.arange(n + kept)
    roots = nodes[tree.parent_step[: n + kept] >= kept]
    sizes = np.ones(roots.shape[0], dtype=np.intp)
    internal = roots >= n
    sizes[internal] = tree.linkage[roots[internal] - n, 3].astype(np.intp)
    order = np.argsort(tree.node_start[roots])
    labels = np.empty(n, dtype=np.intp)
    labels[tree.leaf_order] = np.repeat(np.arange(k), sizes[order])
    return labels


def _nearest_centroid_extension(X, leaf_labels, k, n_threads=None):
    """Labels for all rows of X: the tree's leaves keep theirs, the rest join the nearest centroid of the cut."""
    n_leaves = leaf_labels.shape[0]
    head = np.asarray(X[:n_leaves], dtype=np.float64)
    centroids = np.empty((k, X.shape[1]), dtype=np.float64)
    counts = np.bincount(leaf_labels, minlength=k)
    for j in range(X.shape[1]):
        centroids[:, j] = np.bincount(leaf_labels, weights=head[:, j], minlength=k)
    centroids /= counts[:, None]
    labels = np.empty(X.shape[0], dtype=np.intp)
    labels[:n_leaves] = leaf_labels
    if X.shape[0] > n_leaves:
        with _thread_limit(n_threads):
            labels[n_leaves:] = pairwise_distances_argmin(np.asarray(X[n_leaves:], dtype=np.float64), centroids)
    return labels, centroids


def ward_labels(tree, k, X=None, n_threads=None):
    """Cut a ward tree at k clusters.

    Parameters
    ----------
    tree : WardTree
    k : int
    X : ndarray of shape (n_rows, n_features), default=None
        The sample the tree was built from. Needed only when the tree is capped, to extend the cut to the
        rows beyond its leaves (nearest centroid of the cut).
    n_threads : int, default=None

    Returns
    -------
    labels : ndarray of shape (n_rows,), int
        Equal to ``AgglomerativeClustering(n_clusters=k).fit_predict(X)`` up to a permutation when uncapped.
    """
    leaf_labels = _cut(tree, k)
    if not tree.capped:
        return leaf_labels
    if X is None or np.asarray(X).shape[0] != tree.n_rows:
        raise ValueError(f"this ward tree is capped at {tree.n_leaves:,} of {tree.n_rows:,} rows: pass X, the "
                         "sample it was built from, to label the other rows")
    return _nearest_centroid_extension(np.asarray(X), leaf_labels, k, n_threads)[0]


# --------------------------------------------------------------------------------------------- birch


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
    X = _check_X(X)
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
    X = _check_X(X)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    start = time.perf_counter()
    info, attempts = {}, []
    tree_rows = min(X.shape[0], int(max_n))
    stages = [probe_rows, tree_rows] if tree_rows > 2 * probe_rows else [tree_rows]
    with _thread_limit(n_threads), _recorded_warnings(info):
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
            raise ValueError("birch_labels labels the rows its CF-tree was built from; use fit_final(...).predict "
                             "for other rows")
    n_sub = cf_tree.n_subclusters
    if n_sub < 2:
        return cf_tree.row_subcluster.copy()
    subcluster_labels = _cut(cf_tree.centres_tree, min(int(k), n_sub))
    return subcluster_labels[cf_tree.row_subcluster]


# --------------------------------------------------------------------------------------------- final fit


class FinalModel:
    """The winner refit on all rows: labels, predict, cluster centres (and GMM's probabilities).

    Attributes
    ----------
    model : str, one of MODEL_NAMES
    k : int
    labels_ : ndarray of shape (n_samples,)
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        KMeans' centres, GMM's means, or the centroids of the agglomerative cut / Birch clusters.
    estimator : the fitted scikit-learn estimator (KMeans, GaussianMixture, Birch) or None (agglomerative)
    method : dict, how it was fitted (e.g. :func:`agglomerative_method`)
    info : dict, n_iter, converged, warnings, ...
    """

    def __init__(self, model, k, labels, cluster_centers, estimator, method, info, subcluster_labels=None):
        self.model = model
        self.k = int(k)
        self.labels_ = labels
        self.cluster_centers_ = cluster_centers
        self.estimator = estimator
        self.method = method
        self.info = info
        self._subcluster_labels = subcluster_labels

    @property
    def means_(self):
        return self.cluster_centers_

    def predict(self, X):
        """Cluster of each row of X, shape (n_samples,)."""
        X = _check_X(X)
        if self.model == "kmeans":
            return self.estimator.predict(X)
        if self.model == "gmm":
            return _predict_in_chunks(self.estimator, X)
        if self.model == "birch":
            return self._subcluster_labels[pairwise_distances_argmin(X, self.estimator.subcluster_centers_)]
        return pairwise_distances_argmin(np.asarray(X, dtype=np.float64), self.cluster_centers_)

    def predict_proba(self, X):
        """GMM only: component probabilities, shape (n_samples, k)."""
        if self.model != "gmm":
            raise AttributeError(f"predict_proba exists only for gmm, not {self.model}")
        return self.estimator.predict_proba(_check_X(X))

    def transform(self, X):
        """Euclidean distance of each row to each cluster centre, shape (n_samples, n_clusters)."""
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(_check_X(X), self.cluster_centers_)


def _label_centroids(X, labels):
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k)
    sums = np.stack([np.bincount(labels, weights=X[:, j], minlength=k) for j in range(X.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def fit_final(model, k, X, seed, threshold=None, max_n=None, covariance_type="full", n_threads=None):
    """Fit one config on all rows, the way the sweep fitted it.

    Parameters
    ----------
    model : str, one of MODEL_NAMES
    k : int
    X : ndarray of shape (n_samples, n_features), in random order (agglomerative caps to its prefix)
    seed : int
    threshold : float, default=None
        Birch only: the threshold the sweep used (run.json); None adapts it with :func:`birch_threshold`.
    max_n : int, default=None
        Agglomerative, Birch and GMM: the cap on the rows their tree / mixture is built from; None is the
        sweep's cap (``AGGLOMERATIVE_MAX_N``, ``BIRCH_MAX_N``, ``GMM_MAX_N``).
    covariance_type : str, default="full"
        GMM only.
    n_threads : int, default=None

    Returns
    -------
    final : FinalModel
    """
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}")
    X = _check_X(X)
    _check_k(k, X.shape[0])
    info = {}
    if model == "kmeans":
        estimator = _kmeans(k, seed)
        with _thread_limit(n_threads), _recorded_warnings(info):
            labels = estimator.fit_predict(X)
        info.update(n_iter=int(estimator.n_iter_), inertia=float(estimator.inertia_))
        return FinalModel(model, k, labels, estimator.cluster_centers_, estimator,
                          {"estimator": "KMeans", "n_init": KMEANS_INITS, "init": "k-means++"}, info)
    if model == "gmm":
        estimator, labels = _fit_gmm(X, k, seed, covariance_type, GMM_MAX_N if max_n is None else max_n,
                                     n_threads, info)
        return FinalModel(model, k, labels, estimator.means_, estimator,
                          {"estimator": "GaussianMixture", **GMM_PARAMS, "reg_covar": info["reg_covar"],
                           "covariance_type": covariance_type, "fit_rows": info["fit_rows"]}, info)
    if model == "agglomerative":
        max_n = AGGLOMERATIVE_MAX_N if max_n is None else max_n
        tree = ward_tree(X, max_n=max_n, n_threads=n_threads)
        labels, centroids = _nearest_centroid_extension(X, _cut(tree, k), k, n_threads)
        info.update(tree_seconds=tree.build_seconds, warnings=[])
        return FinalModel(model, k, labels, centroids, None, agglomerative_method(X.shape[0], max_n), info)
    if threshold is None:
        threshold = birch_threshold(X, seed=seed)
    cf_tree = birch_cf_tree(X, threshold, max_n=BIRCH_MAX_N if max_n is None else max_n, n_threads=n_threads)
    labels = birch_labels(cf_tree, None, k)
    n_sub = cf_tree.n_subclusters
    subcluster_labels = (_cut(cf_tree.centres_tree, min(k, n_sub)) if n_sub >= 2 else np.zeros(n_sub, np.intp))
    info.update(cf_tree.info, attempts=cf_tree.attempts, n_subclusters=n_sub)
    return FinalModel(model, k, labels, _label_centroids(np.asarray(X, dtype=np.float64), labels), cf_tree.birch,
                      {"estimator": "Birch", "threshold": cf_tree.threshold, "n_subclusters": n_sub,
                       **cf_tree.method}, info, subcluster_labels)
