"""The Euclidean distance matrix of one sample, built once and read by every labeling's exact silhouette.

The exact silhouette of a labeling needs, for each row, its summed distance to every cluster. Computed per
labeling (:mod:`raysweep.scores`' blocked path) that is n^2/2 distances, their square roots and the sums: 0.86-0.92 s
on one thread at 20,000 x 14 (k = 5, 50, 100). A rung scores hundreds of labelings of the same rows, so
:class:`DistanceMatrix` computes the n x n matrix once and each labeling's sums are then sparse products of its
one-hot indicator with the matrix, n^2 additions streamed from memory.

The distances are computed in float64 and stored in float32, as scikit-learn's ``silhouette_score`` stores them for
float32 input (the sweep's rows are float32): 1.6 GB at 20,000 rows, not 3.2. Each block of ``_SUM_BLOCK_ROWS``
rows is summed in float32 and the blocks in float64. Measured on the default data's 20,000 rows (13 features, KMeans
k = 5, 50, 100), one thread, against the same sums over a float64 matrix: 0.14-0.20 s per labeling instead of
0.29-0.33 s, the mean silhouette within 7e-10 and every s(i) within 8e-7. On fewer rows the rounding averages out
less: scikit-learn's wine (178 rows, float64) scores within 1.5e-8 of ``silhouette_score``; tests allow 1e-7.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# Labelings of one sample from which building its matrix pays: the build costs ~8 labelings' blocked sums and each
# later labeling saves ~0.65 s (20,000 rows), so below this count the blocked path is kept.
DISTANCE_MATRIX_MIN_LABELINGS = 16

# Rows per block of the build: a (1,024 x n) float64 block of the product is 164 MB at 20,000 rows.
_BUILD_BLOCK_ROWS = 1_024

# Rows whose distances are summed in float32 before the float64 total (error and speed: the module docstring;
# 512 rows halved the errors again but was 1.2-1.4x slower at k = 50-100).
_SUM_BLOCK_ROWS = 2_048


def distance_matrix_bytes(n):
    """Bytes of the float32 distance matrix of ``n`` rows (``n * n * 4``)."""
    return int(n) * int(n) * 4


class DistanceMatrix:
    """All pairwise Euclidean distances of the rows of one sample, stored in float32, for exact silhouettes.

    Parameters
    ----------
    distances : ndarray of shape (n_samples, n_samples), float32
        Symmetric, zero diagonal (use :meth:`build`). Kept as given, so a read-only array in Ray's object store
        is shared, not copied.

    Attributes
    ----------
    distances : ndarray of shape (n_samples, n_samples)
    n_samples : int
    """

    def __init__(self, distances):
        distances = np.asarray(distances)
        if distances.ndim != 2 or distances.shape[0] != distances.shape[1] or distances.dtype != np.float32:
            raise ValueError(f"distances must be a square float32 array, got shape {distances.shape} "
                             f"and dtype {distances.dtype}")
        self.distances = distances
        self.n_samples = distances.shape[0]

    @classmethod
    def build(cls, X):
        """The distance matrix of the rows of ``X`` (array-like of shape (n_samples, n_features)).

        Row blocks of ``|x|^2 + |y|^2 - 2 x.y`` in float64 (one BLAS product each), clipped at 0, square-rooted and
        stored in float32; a row's distance to itself is exactly 0.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
        n = X.shape[0]
        sq_norms = np.einsum("ij,ij->i", X, X)
        distances = np.empty((n, n), dtype=np.float32)
        block = np.empty((min(_BUILD_BLOCK_ROWS, n), n))
        for start in range(0, n, _BUILD_BLOCK_ROWS):
            stop = min(start + _BUILD_BLOCK_ROWS, n)
            block = block[: stop - start]
            np.matmul(X[start:stop], X.T, out=block)
            block *= -2.0
            block += sq_norms[start:stop, None]
            block += sq_norms[None, :]
            np.maximum(block, 0.0, out=block)
            np.sqrt(block, out=block)
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            distances[start:stop] = block
        return cls(distances)

    def cluster_sums(self, codes, n_clusters):
        """Summed distance of every row to every cluster.

        Parameters
        ----------
        codes : ndarray of shape (n_samples,), int in 0..n_clusters-1
        n_clusters : int

        Returns
        -------
        sums : ndarray of shape (n_samples, n_clusters), float64
            ``sums[i, c]`` is the sum of the distances from row i to the rows of cluster c.
        """
        codes = np.asarray(codes)
        if codes.shape != (self.n_samples,):
            raise ValueError(f"codes must have one label per row of the distance matrix ({self.n_samples}), "
                             f"got shape {codes.shape}")
        # One-hot (k x rows) @ D[rows]: each row of D is added to its cluster's row, reading D once, in order.
        sums = np.zeros((int(n_clusters), self.n_samples))
        for start in range(0, self.n_samples, _SUM_BLOCK_ROWS):
            stop = min(start + _SUM_BLOCK_ROWS, self.n_samples)
            indicator = sp.csr_matrix((np.ones(stop - start, dtype=np.float32), (codes[start:stop],
                                       np.arange(stop - start))), shape=(int(n_clusters), stop - start))
            sums += indicator @ self.distances[start:stop]
        return np.ascontiguousarray(sums.T)
