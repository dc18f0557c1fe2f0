"""The Ray Tune trial of the sweep: fit one (model, k) on one rung's sample and report its three scores.

A function trainable in the style of tune-sklearn: everything large reaches it through ``tune.with_parameters``
as object references (the scaled, permuted matrix, put in the object store once per run; the ward tree and the
Birch CF-tree, built once per rung by :func:`build_shared`; a capped ward tree once per run), so a trial only cuts
a tree, runs Birch's global step or fits KMeans / GaussianMixture, then scores. BLAS threads are capped to the
trial's CPUs.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
import warnings

import numpy as np
import ray
from ray import tune
from threadpoolctl import threadpool_limits

from raysweep import models, scores

# Models whose per-k work starts from a structure shared by every k of a rung, and that structure's name.
SHARED_STRUCTURE = {"agglomerative": "ward_tree", "birch": "birch_cf_tree"}


def build_shared(structure: str, X: np.ndarray, n: int, seed: int,
                 ward_max_n: int = models.AGGLOMERATIVE_MAX_N) -> tuple[object, dict]:
    """Build one shared structure on the first ``n`` rows of ``X`` (run as a Ray task, once per rung).

    Parameters
    ----------
    structure : {"ward_tree", "birch_cf_tree"}
    X : ndarray of shape (n_cap, n_features), float32, the permuted scaled matrix
    n : int
        Rows of the rung's sample (a prefix of ``X``).
    seed : int
    ward_max_n : int, default=AGGLOMERATIVE_MAX_N
        The ward tree's leaves are at most this many first rows of the sample.

    Returns
    -------
    built : object
        What :func:`fit_labels` needs to label every k without refitting.
    info : dict
        ``build_id`` (unique per build: trials report it, which proves they shared one build), ``seconds`` and
        the structure's own facts (the Birch threshold and subcluster count, the ward method).
    """
    cpus = _trial_cpus()
    start = time.perf_counter()
    sample = X[:n]
    if structure == "ward_tree":
        built = models.ward_tree(sample, max_n=ward_max_n, n_threads=cpus)
        info = {"agglomerative_method": models.agglomerative_method(n, ward_max_n)}
    elif structure == "birch_cf_tree":
        built = models.birch_cf_tree(sample, models.birch_threshold(sample, seed=seed), n_threads=cpus)
        info = {"birch_threshold": built.threshold, "subclusters": built.n_subclusters,
                "threshold_attempts": built.attempts}
    else:
        raise ValueError(f"unknown shared structure {structure!r}; "
                         f"expected one of {sorted(SHARED_STRUCTURE.values())}")
    info.update(structure=structure, build_id=uuid.uuid4().hex, seconds=time.perf_counter() - start, n=n)
    return built, info


def reuse_capped_ward_tree(build: tuple[object, dict], n: int) -> tuple[object, dict]:
    """A capped ward tree from an earlier rung, for a rung of ``n`` rows (run as a Ray task, no rebuild).

    A capped tree's leaves are the first ``max_n`` rows of the permutation: the same rows at every rung above
    the cap. Only the row count changes (the rows beyond the leaves join the nearest centroid of the cut), so
    the info keeps the original ``build_id`` and says ``reused``.
    """
    tree, info = build
    if not tree.capped or n < tree.n_leaves:
        raise ValueError(f"only a capped ward tree can serve a larger rung: this one has {tree.n_leaves:,} leaves "
                         f"of {tree.n_rows:,} rows, asked for {n:,} rows")
    method = models.agglomerative_method(n, tree.n_leaves)
    return dataclasses.replace(tree, n_rows=n), {**info, "agglomerative_method": method, "n": n, "seconds": 0.0,
                                                 "reused": True}


def _trial_cpus() -> int:
    assigned = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, int(assigned))


def fit_labels(model: str, k: int, X: np.ndarray, shared: object, seed: int, n_threads: int) -> tuple[np.ndarray, list]:
    """Labels of one (model, k) on ``X`` and the warnings of the fit.

    Agglomerative and Birch start from the rung's shared structure (``shared``): a cut, or the global step.
    """
    if model == "kmeans":
        labels, info = models.kmeans_labels(X, k, seed=seed, n_threads=n_threads)
        return labels, info["warnings"]
    if model == "gmm":
        labels, info = models.gmm_labels(X, k, seed=seed, n_threads=n_threads)
        return labels, info["warnings"]
    if model == "agglomerative":
        return models.ward_labels(shared, k, X=X, n_threads=n_threads), []
    if model == "birch":
        # The CF-tree was built from exactly these rows (the rung's prefix); None skips re-checking them.
        return models.birch_labels(shared, None, k), []
    raise ValueError(f"unknown model {model!r}; expected one of {list(models.MODEL_NAMES)}")


def sweep_trial(config: dict, data: dict) -> None:
    """Fit and score one config; reports one result.

    Parameters
    ----------
    config : dict
        ``trial`` ({``model``, ``k``}, the grid-searched pair), ``rung``, ``n`` (rows of the rung's sample),
        ``seed``, ``exact_max_n`` (exact silhouette up to this n), ``query_points`` (m of the silhouette
        estimator above it).
    data : dict
        Object references: ``X`` the permuted scaled matrix (n_cap, n_features) float32, and per shared
        structure name (:data:`SHARED_STRUCTURE`) the ``(built, info)`` pair of :func:`build_shared`.
    """
    model, k = config["trial"]["model"], int(config["trial"]["k"])
    n, seed = int(config["n"]), int(config["seed"])
    X = ray.get(data["X"])[:n]
    structure = SHARED_STRUCTURE.get(model)
    shared, shared_info = (None, {}) if structure is None else ray.get(data[structure])
    cpus = _trial_cpus()
    with threadpool_limits(limits=cpus), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            labels, fit_warnings = fit_labels(model, k, X, shared, seed, cpus)
        except models.DegenerateFitError as exc:
            # The config cannot be fitted to these rows: a plain status, not an error with a traceback.
            labels, fit_warnings, degenerate = None, [], f"degenerate: {exc}"
        fit_seconds = time.perf_counter() - start
        if labels is None:
            result = scores.unscored(degenerate)
        else:
            # The same query rows for every config: the first m of the permuted sample (common random numbers).
            query = scores.silhouette_query_points(n, int(config["query_points"]), seed=None)
            result = scores.score_labels(X, labels, query_idx=query, exact_max_n=int(config["exact_max_n"]))
        score_seconds = time.perf_counter() - start - fit_seconds
    warned = sorted({line.splitlines()[0] for line in fit_warnings}
                    | {f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
    flat = {"model": model, "k": k, "rung": int(config["rung"]), "n": n, **result,
            "fit_seconds": fit_seconds, "score_seconds": score_seconds, "warnings": "; ".join(warned),
            "shared_build": shared_info.get("build_id", "")}
    # Nested "score/..." keys become TensorBoard tags grouped under "score". The node id tells nodes apart where
    # Tune's own node_ip cannot (several Ray nodes on one host, as in the multi-node test).
    tune.report({**flat, "node_id": ray.get_runtime_context().get_node_id(),
                 "score": {key: result[key] for key in
                           ("silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz")}})
