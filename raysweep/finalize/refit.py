"""Refit, assign and stability: the model fitted on every playlist, each row's cluster, and how stable it is.

:func:`fit_options` reads a family's refit settings from run.json, :func:`assign` gives each row its cluster,
distance to the centre and (GMM) probability, :func:`cluster_profiles` the per-cluster sizes and feature means,
:func:`standardized_means` those means on one scale, and :func:`stability` the adjusted Rand index against fits on
the sweep's 2% and 10% samples.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from raysweep.families import get_family
from raysweep.run_folder import RunRecord
from raysweep.scores import cluster_centroids

STABILITY_FRACTIONS = (0.02, 0.10)  # the original study's two sample sizes
MIN_ROWS_PER_CLUSTER = 10  # a stability sample smaller than this many rows per cluster is skipped, not scored


def fit_options(model: str, run_record: RunRecord, n_rows: int) -> dict:
    """Extra arguments of ``fit_final`` for the full refit of ``model`` on ``n_rows`` rows.

    Each family reads its own from run.json (:meth:`raysweep.families.base.ClusterFamily.refit_options`, through
    :meth:`raysweep.run_folder.RunRecord.top_rung_build`): Birch builds ONE CF-tree over all rows at the sweep's
    top-rung threshold; agglomerative keeps the sweep's ward cap.
    """
    return get_family(model).refit_options(run_record, n_rows)


def assign(estimator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each row's cluster, distance to its cluster centre and (GaussianMixture only) membership probability.

    Parameters
    ----------
    estimator : raysweep.families.base.FinalModel, from ``fit_final`` (``labels_``, ``cluster_centers_``)
    X : ndarray of shape (n_samples, n_features), the scaled matrix it was fitted on

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
    distance : ndarray of shape (n_samples,), float32, Euclidean, in the scaled space
    probability : ndarray of shape (n_samples,), float32, or None when the model has no ``predict_proba``
    """
    labels = np.asarray(estimator.labels_, dtype=np.int32)
    centres = np.asarray(estimator.cluster_centers_, dtype=np.float32)
    distance = np.empty(len(X), dtype=np.float32)
    step = 1 << 18  # bounds the (rows, features) temporary to a few MB per feature
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        distance[rows] = np.linalg.norm(X[rows] - centres[labels[rows]], axis=1)
    probability = None
    if hasattr(estimator, "predict_proba"):
        probability = np.empty(len(X), dtype=np.float32)
        for start in range(0, len(X), step):
            rows = slice(start, start + step)
            proba = estimator.predict_proba(X[rows])
            probability[rows] = proba[np.arange(len(proba)), labels[rows]]
    return labels, distance, probability


def cluster_profiles(labels: np.ndarray, values: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Size, share and the mean of every feature per non-empty cluster, in the units of ``values``.

    ``values`` are the raw (unscaled) features, so the means are in the original units: the scaling is affine,
    so this equals inverting the scaling of the scaled cluster means, without the round trip.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
    values : ndarray of shape (n_samples, n_features), raw feature values
    columns : list of str, length n_features

    Returns
    -------
    DataFrame with one row per non-empty cluster: cluster, size, share, ``mean_<column>`` per feature
    """
    sizes, means = cluster_centroids(values, labels)
    present = np.flatnonzero(sizes)
    profile = {"cluster": present.astype(np.int32), "size": sizes[present].astype(np.int64),
               "share": sizes[present] / len(labels)}
    for j, column in enumerate(columns):
        profile[f"mean_{column}"] = means[present, j]
    return pd.DataFrame(profile)


def standardized_means(profiles: pd.DataFrame, values: np.ndarray, columns: list[str]) -> np.ndarray:
    """Cluster means as distances from the overall mean in overall standard deviations, (n_clusters, n_features).

    One scale for every feature (what the heatmap and the report's "distinctive features" show).
    """
    means = profiles[[f"mean_{c}" for c in columns]].to_numpy()
    overall = values.mean(axis=0, dtype=np.float64)
    spread = values.std(axis=0, dtype=np.float64)
    return (means - overall) / np.where(spread > 0, spread, 1.0)


def stability(model: str, k: int, X: np.ndarray, labels: np.ndarray, fractions=STABILITY_FRACTIONS,
              options: dict | None = None, seed: int = 0) -> list[dict]:
    """Adjusted Rand index between the full refit and the same model fitted on nested samples.

    Parameters
    ----------
    model, k : the configuration
    X : ndarray of shape (n_samples, n_features), scaled, rows in the sweep's permutation order, so that the
        sample of fraction f is the prefix of ``round(f * n_samples)`` rows, as in the sweep
    labels : ndarray of shape (n_samples,), the full refit's labels of those rows
    fractions : sample fractions; a sample with fewer than ``MIN_ROWS_PER_CLUSTER * k`` rows is skipped
    options : extra arguments of ``fit_final`` (:func:`fit_options`)
    seed : int, the seed of the fits

    Returns
    -------
    list of dict, one per fraction: fraction, n, ari (None when skipped), status, seconds. The index compares
    the two labelings on the sample's rows.
    """
    from sklearn.metrics import adjusted_rand_score

    from raysweep.models import fit_final

    checks = []
    for fraction in fractions:
        n = int(round(fraction * len(X)))
        if n < MIN_ROWS_PER_CLUSTER * k:
            checks.append({"fraction": fraction, "n": n, "ari": None, "seconds": 0.0,
                           "status": f"skipped: {n} rows < {MIN_ROWS_PER_CLUSTER} per cluster x k={k}"})
            continue
        start = time.perf_counter()
        sample_fit = fit_final(model, k, X[:n], seed, **(options or {}))
        ari = adjusted_rand_score(labels[:n], np.asarray(sample_fit.labels_))
        checks.append({"fraction": fraction, "n": n, "ari": float(ari), "status": "ok",
                       "seconds": round(time.perf_counter() - start, 3)})
    return checks

