"""The model families' public functions in one namespace, and :func:`fit_final`, the refit of one config.

The families live in :mod:`raysweep.families` (one module each, behind ``raysweep.families.REGISTRY``); this module
re-exports what the recommender, the benchmarks and notebooks import from here, so ``raysweep.models.ward_tree`` and
the others keep working:

- ``kmeans`` (:mod:`raysweep.families.kmeans`): KMeans, the lowest-inertia of ``KMEANS_INITS`` k-means++ inits.
- ``gmm`` (:mod:`raysweep.families.gmm`): full-covariance GaussianMixture with faster E/M steps; capped at
  ``GMM_MAX_N`` rows.
- ``agglomerative`` (:mod:`raysweep.families.ward`): ONE ward tree per sample cut at every k; capped at
  ``AGGLOMERATIVE_MAX_N`` rows, the others join the nearest centroid of the cut.
- ``birch`` (:mod:`raysweep.families.birch`): ONE CF-tree per sample, a size-weighted ward global step per k.
- ``bisecting_kmeans`` (:mod:`raysweep.families.bisecting_kmeans`): optional, not in the default grid.

``MODEL_NAMES`` is the default grid (the design card's four families); ``raysweep.families.REGISTRY`` holds them all.
"""

from __future__ import annotations

import inspect

from raysweep.families import MODEL_NAMES, REGISTRY, get_family
from raysweep.families.base import DegenerateFitError, FinalModel
from raysweep.families.birch import (BIRCH_MAX_N, BIRCH_MAX_SUBCLUSTERS, BIRCH_TARGET_SUBCLUSTERS, BirchTree,
                                     birch_cf_tree, birch_labels, birch_method, birch_threshold)
from raysweep.families.gmm import GMM_MAX_N, GMM_PARAMS, GMM_REG_COVAR_RETRIES, _FullCovarianceMixture, gmm_labels
from raysweep.families.kmeans import KMEANS_INITS, KMEANS_SAMPLE_N, _kmeans, kmeans_labels
from raysweep.families.ward import (AGGLOMERATIVE_MAX_N, WardTree, agglomerative_method, ward_labels, ward_tree,
                                    weighted_ward_linkage, weighted_ward_tree)

# What is imported from here (the recommender, benchmarks, tests); _FullCovarianceMixture and _kmeans for the
# benchmarks and tests that time and compare them.
__all__ = ["AGGLOMERATIVE_MAX_N", "BIRCH_MAX_N", "BIRCH_MAX_SUBCLUSTERS", "BIRCH_TARGET_SUBCLUSTERS", "GMM_MAX_N",
           "GMM_PARAMS", "GMM_REG_COVAR_RETRIES", "KMEANS_INITS", "KMEANS_SAMPLE_N", "MODEL_NAMES", "REGISTRY",
           "BirchTree", "DegenerateFitError", "FinalModel", "WardTree", "_FullCovarianceMixture", "_kmeans",
           "agglomerative_method", "birch_cf_tree", "birch_labels", "birch_method", "birch_threshold", "fit_final",
           "gmm_labels", "kmeans_labels", "ward_labels", "ward_tree", "weighted_ward_linkage", "weighted_ward_tree"]


def fit_final(model, k, X, seed, n_threads=None, **options):
    """Fit one config on all rows, the way the sweep fitted it: ``FinalModel(model, k, seed, options).fit(X)``.

    Parameters
    ----------
    model : str, a name in ``raysweep.families.REGISTRY``
    k : int
    X : ndarray of shape (n_samples, n_features), in random order (every cap keeps a prefix)
    seed : int
    n_threads : int, default=None
    **options
        The family's settings (``max_n``, Birch's ``threshold``, GMM's ``covariance_type``): those the family's
        fit does not take, and those that are None, are left out, so one call serves every family (a cap means
        nothing to KMeans).

    Returns
    -------
    final : FinalModel, fitted
    """
    family = get_family(model)
    taken = inspect.signature(family.fit).parameters
    kept = {key: value for key, value in options.items() if key in taken and value is not None}
    return FinalModel(model, k, seed, kept, n_threads).fit(X)
