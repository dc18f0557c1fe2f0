"""Agglomerative clustering with ward linkage: ONE tree per sample, cut at every k.

The rung's tree (:func:`ward_tree`, the family's shared structure) is cut at each k (:func:`ward_labels`) instead
of one fit per k. Above ``AGGLOMERATIVE_MAX_N`` rows the tree is built on a capped prefix and every other row joins
the nearest centroid of the cut (:func:`agglomerative_method`). Also here: ward on weighted points
(:func:`weighted_ward_linkage`), which Birch's global step uses, and the O(n) tree layout that makes a cut cheap.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import fastcluster
from sklearn.metrics import pairwise_distances_argmin

from raysweep.families.base import ClusterFamily, Fit, check_k, check_X, label_centroids, thread_limit

# Ward is O(n^2) in time. fastcluster's ward on the rows themselves keeps O(n d) memory (Mullner 2013, JSS 53(9)),
# where SciPy's ward holds the condensed distance matrix and a copy of it: 20,000 x 13 normal rows, 4.3 s, 70 MB RSS
# against SciPy's 20.5 s and 3.19 GB (session 9, one process each), the same merges (heights within 1e-13, equal
# cuts). 20,000 is the study's 2% sample, so the equal-fidelity comparison stays exact ward; 1M rows would take
# ~3 h per tree (an estimate: 4.3 s x 50^2).
AGGLOMERATIVE_MAX_N = 20_000


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
    max_n : int, the cap it was built with (:func:`agglomerative_method`)
    """

    linkage: np.ndarray
    leaf_order: np.ndarray
    node_start: np.ndarray
    parent_step: np.ndarray
    n_leaves: int
    n_rows: int
    build_seconds: float = 0.0
    max_n: int = AGGLOMERATIVE_MAX_N

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
    X = check_X(X)
    if X.shape[0] < 2:
        raise ValueError("ward_tree needs at least 2 rows")
    n = min(X.shape[0], int(max_n))
    start = time.perf_counter()
    with thread_limit(n_threads):
        # The ward linkage of SciPy and sklearn.cluster.ward_tree (no connectivity), in O(n d) memory.
        linkage = fastcluster.linkage_vector(np.asarray(X[:n], dtype=np.float64), method="ward")
    leaf_order, node_start, parent_step = _tree_layout(linkage, n)
    return WardTree(linkage, leaf_order, node_start, parent_step, n, X.shape[0], time.perf_counter() - start,
                    int(max_n))


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
    return WardTree(linkage, leaf_order, node_start, parent_step, n, n, time.perf_counter() - start, n)


def _cut(tree, k):
    """Labels 0..k-1 of the tree's leaves after its first n - k merges (sklearn's _hc_cut, by merge order)."""
    n = tree.n_leaves
    check_k(k, n)
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
    centroids = label_centroids(X[:n_leaves], leaf_labels, k)
    labels = np.empty(X.shape[0], dtype=np.intp)
    labels[:n_leaves] = leaf_labels
    if X.shape[0] > n_leaves:
        with thread_limit(n_threads):
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



class WardFamily(ClusterFamily):
    """Ward agglomerative clustering: the shared structure is the sample's ward tree; predict: nearest centroid."""

    name = "agglomerative"
    cost_rank = 3
    shared_structure = "ward_tree"

    def build_shared(self, X, n, seed, n_threads=None, max_n=None):
        """The ward tree of the first n rows of X (on at most ``max_n`` of them; None: ``AGGLOMERATIVE_MAX_N``)."""
        tree = ward_tree(X[:n], max_n=AGGLOMERATIVE_MAX_N if max_n is None else max_n, n_threads=n_threads)
        return tree, {"agglomerative_method": agglomerative_method(n, tree.max_n)}

    def build_serves_larger_samples(self, n, max_n=None):
        # A capped tree's leaves are the first max_n rows of the permutation: the same rows at every larger rung.
        return n > (AGGLOMERATIVE_MAX_N if max_n is None else max_n)

    def reuse_shared(self, build, n):
        """A capped ward tree from an earlier rung, for a rung of ``n`` rows (no rebuild).

        Only the row count changes (the rows beyond the leaves join the nearest centroid of the cut), so the
        info keeps the original ``build_id`` and says ``reused``.
        """
        tree, info = build
        if not tree.capped or n < tree.n_leaves:
            raise ValueError(f"only a capped ward tree can serve a larger rung: this one has {tree.n_leaves:,} leaves "
                             f"of {tree.n_rows:,} rows, asked for {n:,} rows")
        method = agglomerative_method(n, tree.max_n)
        return dataclasses.replace(tree, n_rows=n), {**info, "agglomerative_method": method, "n": n, "seconds": 0.0,
                                                     "reused": True}

    def fit(self, X, k, seed, shared=None, n_threads=None, max_n=None):
        """See :meth:`ClusterFamily.fit`; ``shared`` is a :class:`WardTree` of X, ``max_n`` its cap when built here."""
        X = check_X(X)
        tree = self.build_shared(X, X.shape[0], seed, n_threads, max_n)[0] if shared is None else shared
        labels, centroids = _nearest_centroid_extension(X, _cut(tree, k), k, n_threads)
        return Fit(labels, centroids, None, agglomerative_method(X.shape[0], tree.max_n),
                   {"tree_seconds": tree.build_seconds, "warnings": []})

    def refit_options(self, run_record, n_rows):
        # The sweep's own method (ward on a capped uniform subset, the other rows joined to the nearest centroid)
        # at the sweep's cap, recorded per rung in run.json.
        method = run_record.top_rung_build("agglomerative_method")
        return {} if method is None else {"max_n": method["max_n"]}


FAMILY = WardFamily()
