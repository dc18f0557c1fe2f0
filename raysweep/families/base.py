"""What a model family is: the :class:`ClusterFamily` contract, its :class:`Fit`, and :class:`FinalModel`.

A family has ONE fit path, :meth:`ClusterFamily.fit`. The sweep's trial calls it (through
:meth:`ClusterFamily.labels`) on a rung's sample with the rung's shared structure when the family has one (a ward
tree, a Birch CF-tree, built once per rung by :meth:`ClusterFamily.build_shared`); the refit calls it through
:class:`FinalModel`, a scikit-learn estimator, without one, and the family builds the structure on the rows it is
given. So the sweep's labels and the refit's labels of the same rows and seed are the same by construction.

Also here: the checks and helpers every family uses (input checks, thread caps, recorded warnings, centroids).
Plain NumPy/scikit-learn: no Ray.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.metrics import pairwise_distances, pairwise_distances_argmin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from raysweep.scores import cluster_centroids


class DegenerateFitError(ValueError):
    """A model could not be fitted to these rows at this k (e.g. every GMM retry had a collapsed component)."""


def check_X(X, name="X"):
    """X as an array; ValueError unless it is 2-D of shape (n_samples, n_features) with a row."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D array of shape (n_samples, n_features), got {X.shape}")
    return X


def check_k(k, n):
    """ValueError unless k is a positive integer no larger than the n rows."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of rows ({n})")


def thread_limit(n_threads):
    """Cap BLAS and OpenMP threads when asked (Ray sets OMP_NUM_THREADS, not every BLAS honours it)."""
    if n_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_threads))


@contextlib.contextmanager
def recorded_warnings(info):
    """Record warnings (ConvergenceWarning, ...) as strings in ``info["warnings"]`` instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    info.setdefault("warnings", []).extend(
        f"{w.category.__name__}: {w.message}" for w in caught
    )


def label_centroids(X, labels, n_clusters=None):
    """The mean row of each cluster, (n_clusters, n_features), float64, NaN for a cluster without rows.

    The centroids of :func:`raysweep.scores.cluster_centroids`, which the scores and finalize's profiles use too.
    """
    return cluster_centroids(X, labels, n_clusters)[1]


@dataclass
class Fit:
    """One family fitted at one k: what the sweep scores (``labels``) and what a :class:`FinalModel` keeps.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,), int
    centres : ndarray of shape (n_clusters, n_features)
        KMeans' centres, GMM's means, the centroids of a cut (ward, Birch).
    estimator : fitted scikit-learn estimator or None
        What the family's ``predict`` uses (KMeans, GaussianMixture, Birch's CF-tree); None for ward.
    method : dict
        How it was fitted, as model.json and the report record it (estimator, caps, threshold, ...).
    info : dict
        ``warnings`` (list of str) and the fit's facts (n_iter, converged, ...).
    state : dict
        Anything else ``predict`` needs (Birch: each subcluster's cluster).
    """

    labels: np.ndarray
    centres: np.ndarray
    estimator: object
    method: dict
    info: dict
    state: dict = field(default_factory=dict)


class ClusterFamily:
    """A model family of the sweep; subclasses define ``name``, ``cost_rank`` and :meth:`fit`.

    Attributes
    ----------
    name : str
        The registry key and the leaderboard's ``model``.
    cost_rank : int
        Trial start order within a rung (lower starts first): the costlier families first, so that fewer cores
        idle at the rung barrier. Families with a shared structure start after every family without one.
    shared_structure : str or None
        Name of the structure built once per rung sample and used by every k (:meth:`build_shared`), or None.
    gives_probabilities : bool
        Whether the fitted model has ``predict_proba`` (finalize then writes each row's probability).
    """

    name: str = ""
    cost_rank: int = 0
    shared_structure: str | None = None
    gives_probabilities: bool = False

    def fit(self, X, k, seed, shared=None, n_threads=None, **options) -> Fit:
        """Fit k clusters to X: the one fit path of the sweep's trial and of the refit.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            In random order (a prefix of a seeded permutation): every cap keeps the first rows.
        k : int
        seed : int
        shared : object, default=None
            The structure :meth:`build_shared` built from exactly these rows; None builds it here (the refit).
        n_threads : int, default=None
            Cap on BLAS/OpenMP threads; None leaves the process's limits alone.
        **options
            The family's own settings (caps, thresholds), as :meth:`refit_options` reads them from run.json.

        Returns
        -------
        fit : Fit
        """
        raise NotImplementedError

    def labels(self, X, k, shared, seed, n_threads=None):
        """The sweep trial's labels of X, shape (n_samples,), and the fit's warnings (list of str)."""
        fit = self.fit(X, k, seed, shared=shared, n_threads=n_threads)
        return fit.labels, fit.info.get("warnings", [])

    def build_shared(self, X, n, seed, n_threads=None, **options):
        """Build the family's shared structure on the first ``n`` rows of X (a Ray task, once per rung).

        Returns
        -------
        built : object, what :meth:`fit` takes as ``shared``
        info : dict, the build's facts for run.json (thresholds, methods, ...)
        """
        raise TypeError(f"{self.name} has no shared structure")

    def build_serves_larger_samples(self, n, **options):
        """Whether the structure built for a rung of ``n`` rows also serves every larger rung (see ward)."""
        return False

    def reuse_shared(self, build, n):
        """A structure built for a smaller rung, as the build for a rung of ``n`` rows (``(built, info)``)."""
        raise TypeError(f"{self.name} has no shared structure that serves larger samples")

    def refit_options(self, run_record, n_rows):
        """The ``**options`` of the refit on ``n_rows`` rows (dict), from the sweep's run.json
        (:class:`raysweep.run_folder.RunRecord`; :meth:`~raysweep.run_folder.RunRecord.top_rung_build`)."""
        return {}

    def predict(self, final, X):
        """Clusters of new rows, shape (n_samples,): by default the nearest of ``final.cluster_centers_``."""
        return pairwise_distances_argmin(np.asarray(X, dtype=np.float64), final.cluster_centers_)

    def predict_proba(self, final, X):
        """Cluster probabilities of new rows, shape (n_samples, k); only where ``gives_probabilities``."""
        raise AttributeError(f"{self.name} gives no probabilities")


def _get_family(name):
    from raysweep.families import get_family

    return get_family(name)


def _gives_probabilities(final):
    if not _get_family(final.model).gives_probabilities:
        raise AttributeError(f"predict_proba exists only for a family with probabilities (a mixture such as gmm), "
                             f"not {final.model}")
    return True


class FinalModel(ClusterMixin, BaseEstimator):
    """One config of a registered family fitted the way the sweep fits it, as a scikit-learn clusterer.

    ``sklearn.base.clone`` and ``Pipeline`` work on it; :meth:`fit` runs the family's one fit path
    (:meth:`ClusterFamily.fit`) on every row it is given.

    Parameters
    ----------
    model : str, default="kmeans"
        A name in ``raysweep.families.REGISTRY``.
    k : int, default=8
    seed : int, default=0
    options : dict, default=None
        The family's settings (:meth:`ClusterFamily.refit_options`; e.g. ``max_n`` for ward, Birch and GMM,
        ``threshold`` for Birch, ``covariance_type`` for GMM).
    n_threads : int, default=None
        Cap on BLAS/OpenMP threads while fitting.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        KMeans' centres, GMM's means, or the centroids of the ward cut / Birch clusters.
    estimator_ : the fitted scikit-learn estimator (KMeans, GaussianMixture, Birch, ...) or None (ward)
    method_ : dict, how it was fitted (e.g. ward's cap), as model.json records it
    info_ : dict, n_iter, converged, warnings, ...
    state_ : dict, what else the family's predict needs
    n_features_in_ : int
    """

    def __init__(self, model="kmeans", k=8, seed=0, options=None, n_threads=None):
        self.model = model
        self.k = k
        self.seed = seed
        self.options = options
        self.n_threads = n_threads

    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features), rows in random order (caps keep a prefix); returns self."""
        family = _get_family(self.model)
        X = check_X(X)
        check_k(self.k, X.shape[0])
        fit = family.fit(X, int(self.k), self.seed, n_threads=self.n_threads, **(self.options or {}))
        self.labels_, self.cluster_centers_, self.estimator_ = fit.labels, fit.centres, fit.estimator
        self.method_, self.info_, self.state_ = fit.method, fit.info, fit.state
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        """Cluster of each row of X (n_samples, n_features), shape (n_samples,)."""
        check_is_fitted(self)
        return _get_family(self.model).predict(self, check_X(X))

    @available_if(_gives_probabilities)
    def predict_proba(self, X):
        """Cluster probabilities of each row of X (n_samples, n_features), shape (n_samples, k)."""
        check_is_fitted(self)
        return _get_family(self.model).predict_proba(self, check_X(X))

    def transform(self, X):
        """Euclidean distance of each row to each cluster centre, shape (n_samples, n_clusters)."""
        check_is_fitted(self)
        return pairwise_distances(check_X(X), self.cluster_centers_)

    # The names finalize, the report and notebooks used before FinalModel was a scikit-learn estimator.
    estimator = property(lambda self: self.estimator_, doc="The fitted scikit-learn estimator (``estimator_``).")
    method = property(lambda self: self.method_, doc="How it was fitted (``method_``).")
    info = property(lambda self: self.info_, doc="The fit's facts and warnings (``info_``).")
    means_ = property(lambda self: self.cluster_centers_, doc="GMM's name for ``cluster_centers_``.")

    def __setstate__(self, state):
        if "estimator_" not in state and "estimator" in state:
            state = _state_of_format_1(state)
        super().__setstate__(state)


def _state_of_format_1(old):
    """The state of a FinalModel pickled by raysweep before the family registry (model.json ``format`` 1).

    It held ``estimator``, ``method``, ``info`` and (Birch) ``_subcluster_labels`` as plain attributes and no
    constructor parameters but model and k; its seed and options are in model.json, not in the pickle.
    """
    subclusters = old.get("_subcluster_labels")
    return {"model": old["model"], "k": old["k"], "seed": None, "options": None, "n_threads": None,
            "labels_": old["labels_"], "cluster_centers_": old["cluster_centers_"], "estimator_": old["estimator"],
            "method_": old["method"], "info_": old["info"],
            "state_": {} if subclusters is None else {"subcluster_labels": subclusters},
            "n_features_in_": int(np.asarray(old["cluster_centers_"]).shape[1])}
