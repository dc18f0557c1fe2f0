"""GaussianMixture: full covariance (see ``GMM_PARAMS`` for the init choice), with faster E and M steps.

:class:`_FullCovarianceMixture` is scikit-learn's EM written as a few large matrix products; a component that
collapses is retried with a larger ``reg_covar`` (``GMM_REG_COVAR_RETRIES``). Above ``GMM_MAX_N`` rows the mixture
is fitted on a capped prefix and every row is labelled by predict.
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_log_det_cholesky, _compute_precision_cholesky

from raysweep.families.base import (ClusterFamily, DegenerateFitError, Fit, check_k, check_X, recorded_warnings,
                                    thread_limit)


# Full covariance is the study's model (scikit-learn's default) and the audio features are correlated, so a
# diagonal model would be a different model; d is small (13), so full costs O(n*k*d^2) per EM step. Init: the
# default KMeans init, one init. k-means++ seeding skips that KMeans fit but needed more EM steps and was no
# faster end to end (20k x 13 blobs, k=100: 31.0 s vs 27.9 s CPU; 5k generated playlists, k=100: 5.1 s vs
# 4.6 s). reg_covar 1e-6 (default) against singular components, at most 100 EM steps.
GMM_PARAMS = {"init_params": "kmeans", "n_init": 1, "max_iter": 100, "reg_covar": 1e-6}


# Full-covariance EM costs O(n*k*d^2) per step: 20k x 13 at k=100 took 4.0 s CPU here (41 steps, the default data),
# so 1M rows would take minutes for ONE config (~3.3 min, extrapolated linearly in n: an estimate). Above this many rows the mixture is fitted on the
# sample's prefix (a uniform random subset: >= 2,000 rows per component at k=100 for 104 parameters each) and
# every row is labelled by predict.
GMM_MAX_N = 200_000


_GMM_CHUNK_ROWS = 32_768


def _predict_in_chunks(mixture, X, chunk_rows=65_536):
    """GaussianMixture.predict in row chunks: its (n x k) float64 log-probabilities are 800 MB at 1M x 100."""
    chunks = range(0, X.shape[0], chunk_rows)
    return np.concatenate([mixture.predict(X[start : start + chunk_rows]) for start in chunks])


def _upper_outer_rows(Z):
    """Row-wise outer products z z^T, their upper triangles flattened: shape (n, d(d+1)/2), float64.

    A covariance or precision is symmetric, so its upper triangle (the off-diagonal entries doubled where a
    quadratic form is taken, :func:`_upper_weights`) carries it: 91 columns instead of 169 at d = 13.
    """
    Z = np.asarray(Z, dtype=np.float64)
    rows, cols = np.triu_indices(Z.shape[1])
    return Z[:, rows] * Z[:, cols]


def _upper_weights(matrices):
    """The upper triangles of symmetric (k, d, d) matrices as (d(d+1)/2, k) columns, off-diagonals doubled:
    ``_upper_outer_rows(Z) @ _upper_weights(P)`` is every row's ``z^T P_k z``."""
    d = matrices.shape[1]
    rows, cols = np.triu_indices(d)
    return (matrices[:, rows, cols] * np.where(rows == cols, 1.0, 2.0)).T


class _FullCovarianceMixture(GaussianMixture):
    """GaussianMixture(covariance_type="full") with its E and M steps as a few large matrix products.

    scikit-learn loops over components with (n x d) @ (d x d) products. Here both steps use the outer products
    z z^T of the rows centred on the data's mean c, as their upper triangles (n x d(d+1)/2, computed once per fit):
    the Mahalanobis term is ``vec(z z^T) . vec(P_k) - 2 z . P_k m_k + m_k . P_k m_k`` with z = x - c, m_k = mu_k - c,
    and the scatter of component k is ``sum_i r_ik vec(z_i z_i^T) - n_k m_k m_k^T``: one (k x n) @ (n x d(d+1)/2)
    product. Same EM: equal iterations and lower bound to ~1e-10 (tests). CPU s of one fit at 20k x 13 (the default
    data), one thread: k = 80, 2.9 s here, 7.6 s scikit-learn's own loop (37 iterations each); k = 20/50/80/100,
    0.50/1.78/2.85/3.96 s, against 1.09/3.04/4.87/7.15 s when the full d^2 outer products were recomputed every step
    and scikit-learn's log-sum-exp was used (best of 2, same iterations and labels).
    Centring keeps the cancellation at ~eps * spread^2, far below reg_covar; should a covariance still not be
    positive definite, that step falls back to scikit-learn's per-component computation.
    """

    def fit_predict(self, X, y=None):
        # GaussianMixture.fit calls this; every E and M step of it sees the same validated X. What the steps share
        # while fitting (``_fitting``: X's centred rows and outer products, computed once; the E step's
        # responsibilities, which the M step would otherwise exponentiate again) is dropped at the end, so no fitted
        # model holds it.
        self._fitting = {}
        try:
            return super().fit_predict(X, y)
        finally:
            del self._fitting

    def _centred_chunks(self, X):
        """``(start, c, z, upper outer products of z)`` over row chunks of X, z = x - c.

        While fitting, c is the mean of the rows being fitted (the mixture's overall mean after every M step) and the
        whole X is one chunk, computed at the first step; otherwise chunks of ``_GMM_CHUNK_ROWS`` around the fitted
        mixture's overall mean.
        """
        if hasattr(self, "_fitting"):
            if self._fitting.get("rows", (None,))[0] is not X:
                X64 = np.asarray(X, dtype=np.float64)
                centre = X64.mean(axis=0)
                self._fitting["rows"] = (X, centre, X64 - centre, _upper_outer_rows(X64 - centre))
            yield 0, *self._fitting["rows"][1:]
            return
        centre = self.weights_ @ self.means_
        for start in range(0, X.shape[0], _GMM_CHUNK_ROWS):
            Z = np.asarray(X[start : start + _GMM_CHUNK_ROWS], dtype=np.float64) - centre
            yield start, centre, Z, _upper_outer_rows(Z)

    def _m_step(self, X, log_resp, xp=None):
        log_resp_of_e_step, resp = getattr(self, "_fitting", {}).get("resp", (None, None))
        if log_resp_of_e_step is not log_resp:
            resp = np.exp(log_resp)
        nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
        d = X.shape[1]
        rows, cols = np.triu_indices(d)
        centred_means = np.zeros((nk.shape[0], d))  # mu_k - c
        upper_scatter = np.zeros((nk.shape[0], rows.shape[0]))
        for start, centre, Z, outer in self._centred_chunks(X):
            chunk = resp[start : start + Z.shape[0]].T
            centred_means += chunk @ Z
            upper_scatter += chunk @ outer
        centred_means /= nk[:, None]
        upper = upper_scatter / nk[:, None] - centred_means[:, rows] * centred_means[:, cols]
        covariances = np.empty((nk.shape[0], d, d))
        covariances[:, rows, cols] = upper
        covariances[:, cols, rows] = upper
        covariances[:, np.arange(d), np.arange(d)] += self.reg_covar
        try:
            precisions_cholesky = _compute_precision_cholesky(covariances, "full")
        except ValueError:
            return super()._m_step(X, log_resp)
        self.weights_ = nk / nk.sum()
        self.means_ = centred_means + centre
        self.covariances_, self.precisions_cholesky_ = covariances, precisions_cholesky

    def _estimate_log_prob(self, X, xp=None):
        n, d = X.shape
        chol = self.precisions_cholesky_
        precisions = chol @ chol.transpose(0, 2, 1)
        upper_precisions = _upper_weights(precisions)
        quadratic = np.empty((n, self.means_.shape[0]))
        for start, centre, Z, outer in self._centred_chunks(X):
            offsets = self.means_ - centre
            precision_offsets = np.einsum("kde,ke->kd", precisions, offsets)
            constant = np.einsum("kd,kd->k", offsets, precision_offsets)
            part = quadratic[start : start + Z.shape[0]]
            np.matmul(outer, upper_precisions, out=part)
            part += Z @ (-2.0 * precision_offsets).T
            part += constant
        log_det = _compute_log_det_cholesky(chol, "full", d)
        return -0.5 * (d * np.log(2 * np.pi) + quadratic) + log_det

    def _estimate_log_prob_resp(self, X, xp=None):
        # scikit-learn's generic (array API) log-sum-exp was ~20% of a fit's CPU; the same sum, shifted by the
        # row maximum, in NumPy. Its exponentials, normalized, are the responsibilities the M step needs.
        weighted = self._estimate_weighted_log_prob(X)
        top = weighted.max(axis=1)
        shifted = np.exp(weighted - top[:, None])
        total = shifted.sum(axis=1)
        log_prob_norm = np.log(total) + top
        with np.errstate(under="ignore"):
            log_resp = weighted - log_prob_norm[:, None]
        if hasattr(self, "_fitting"):
            shifted /= total[:, None]
            self._fitting["resp"] = (log_resp, shifted)
        return log_prob_norm, log_resp


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
            with thread_limit(n_threads), recorded_warnings(info):
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


class GaussianMixtureFamily(ClusterFamily):
    """GaussianMixture (``GMM_PARAMS``): labels by maximum posterior; it gives probabilities."""

    name = "gmm"
    cost_rank = 0  # the costliest per config: started first
    gives_probabilities = True

    def fit(self, X, k, seed, shared=None, n_threads=None, covariance_type="full", max_n=None):
        """See :meth:`ClusterFamily.fit`; ``covariance_type`` and ``max_n`` (None: ``GMM_MAX_N``), see gmm_labels."""
        X = check_X(X)
        check_k(k, X.shape[0])
        info = {}
        estimator, labels = _fit_gmm(X, k, seed, covariance_type, GMM_MAX_N if max_n is None else max_n,
                                     n_threads, info)
        return Fit(labels, estimator.means_, estimator,
                   {"estimator": "GaussianMixture", **GMM_PARAMS, "reg_covar": info["reg_covar"],
                    "covariance_type": covariance_type, "fit_rows": info["fit_rows"]}, info)

    def predict(self, final, X):
        return _predict_in_chunks(final.estimator_, X)

    def predict_proba(self, final, X):
        return final.estimator_.predict_proba(X)


FAMILY = GaussianMixtureFamily()


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
    X = check_X(X)
    fit = FAMILY.fit(X, k, seed, n_threads=n_threads, covariance_type=covariance_type, max_n=max_n)
    return fit.labels, fit.info
