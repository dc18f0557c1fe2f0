"""The Ray Tune trial of the sweep: fit one (model, k) on one rung's sample and report its three scores.

A function trainable in the style of tune-sklearn: everything large reaches it through ``tune.with_parameters``
as object references (the scaled, permuted matrix, put in the object store once per run; each family's shared
structure, such as the ward tree and the Birch CF-tree, built once per rung by :func:`build_shared`; a capped ward
tree once per run; the sample's distance matrix where many configs score it exactly, :func:`build_distance_matrix`),
so a trial only runs its family's fit (``raysweep.families``: cut a tree, run Birch's global step, fit KMeans /
GaussianMixture), then scores. BLAS threads are capped to the trial's CPUs.
"""

from __future__ import annotations

import time
import uuid
import warnings

import numpy as np
import ray
from ray import tune
from threadpoolctl import threadpool_limits

from raysweep import scores
from raysweep.families import REGISTRY, get_family
from raysweep.families.base import DegenerateFitError
from raysweep.pairwise import DistanceMatrix

# The families whose per-k work starts from a structure shared by every k of a rung, by structure name, and the
# structure of each such family (the trial's ``data`` holds one build per structure).
SHARED = {family.shared_structure: family for family in REGISTRY.values() if family.shared_structure}
SHARED_STRUCTURE = {family.name: structure for structure, family in SHARED.items()}


def build_shared(structure: str, X: np.ndarray, n: int, seed: int, **options) -> tuple[object, dict]:
    """Build one shared structure on the first ``n`` rows of ``X`` (run as a Ray task, once per rung).

    Parameters
    ----------
    structure : str, a key of :data:`SHARED` ("ward_tree", "birch_cf_tree")
    X : ndarray of shape (n_cap, n_features), float32, the permuted scaled matrix
    n : int
        Rows of the rung's sample (a prefix of ``X``).
    seed : int
    **options
        The family's sweep settings (the ward tree's ``max_n``: its leaves are at most this many first rows).

    Returns
    -------
    built : object
        What the family's fit needs to label every k without refitting.
    info : dict
        ``build_id`` (unique per build: trials report it, which proves they shared one build), ``seconds``,
        ``started_at`` (seconds since the epoch, to place the build among the rung's trials in a timeline) and
        the structure's own facts (the Birch threshold and subcluster count, the ward method).
    """
    if structure not in SHARED:
        raise ValueError(f"unknown shared structure {structure!r}; expected one of {sorted(SHARED)}")
    started_at, start = time.time(), time.perf_counter()
    built, info = SHARED[structure].build_shared(X, n, seed, n_threads=_trial_cpus(), **options)
    info.update(structure=structure, build_id=uuid.uuid4().hex, seconds=time.perf_counter() - start,
                started_at=round(started_at, 3), n=n)
    return built, info


def reuse_shared(structure: str, build: tuple[object, dict], n: int) -> tuple[object, dict]:
    """A structure built at an earlier rung, as the build of a rung of ``n`` rows (run as a Ray task, no rebuild).

    Only for a family whose ``build_serves_larger_samples`` (a capped ward tree); the info says ``reused``.
    """
    return SHARED[structure].reuse_shared(build, n)


def build_distance_matrix(X: np.ndarray, n: int, build_id: str) -> tuple[DistanceMatrix, dict]:
    """The distance matrix of the first ``n`` rows of ``X`` (run as a Ray task with two returns, once per rung).

    Returns the :class:`raysweep.pairwise.DistanceMatrix` and its build's info (``structure``, ``build_id`` as
    given, ``seconds``, ``started_at``, ``n``, ``bytes``): two objects, so the driver reads the info without the
    matrix.
    """
    started_at, start = time.time(), time.perf_counter()
    with threadpool_limits(limits=_trial_cpus()):
        matrix = DistanceMatrix.build(X[:n])
    return matrix, {"structure": "distance_matrix", "build_id": build_id, "seconds": time.perf_counter() - start,
                    "started_at": round(started_at, 3), "n": n, "bytes": matrix.distances.nbytes}


def _trial_cpus() -> int:
    assigned = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, int(assigned))


def sweep_trial(config: dict, data: dict) -> None:
    """Fit and score one config; reports one result.

    Parameters
    ----------
    config : dict
        ``trial`` ({``model``, ``k``}, the grid-searched pair), ``rung``, ``n`` (rows of the rung's sample),
        ``seed``, ``exact_max_n`` (exact silhouette up to this n), ``query_points`` (m of the silhouette
        estimator above it).
    data : dict
        Object references: ``X`` the permuted scaled matrix (n_cap, n_features) float32, per shared
        structure name (:data:`SHARED_STRUCTURE`) the ``(built, info)`` pair of :func:`build_shared`, and where
        the rung's exact silhouettes read one, ``distance_matrix`` (of :func:`build_distance_matrix`) with its
        ``distance_build`` id (a str).
    """
    model, k = config["trial"]["model"], int(config["trial"]["k"])
    n, seed = int(config["n"]), int(config["seed"])
    X = ray.get(data["X"])[:n]
    family = get_family(model)
    structure = family.shared_structure
    shared, shared_info = (None, {}) if structure is None else ray.get(data[structure])
    cpus = _trial_cpus()
    with threadpool_limits(limits=cpus), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            labels, fit_warnings = family.labels(X, k, shared, seed, cpus)
        except DegenerateFitError as exc:
            # The config cannot be fitted to these rows: a plain status, not an error with a traceback.
            labels, fit_warnings, degenerate = None, [], f"degenerate: {exc}"
        fit_seconds = time.perf_counter() - start
        if labels is None:
            result = scores.unscored(degenerate)
        else:
            # The same query rows for every config: the first m of the permuted sample (common random numbers).
            query = scores.silhouette_query_points(n, int(config["query_points"]), seed=None)
            distances = ray.get(data["distance_matrix"]) if "distance_matrix" in data else None
            result = scores.score_labels(X, labels, query_idx=query, exact_max_n=int(config["exact_max_n"]),
                                         distances=distances)
        score_seconds = time.perf_counter() - start - fit_seconds
    warned = sorted({line.splitlines()[0] for line in fit_warnings}
                    | {f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
    flat = {"model": model, "k": k, "rung": int(config["rung"]), "n": n, **result,
            "fit_seconds": fit_seconds, "score_seconds": score_seconds, "warnings": "; ".join(warned),
            "shared_build": shared_info.get("build_id", ""),
            "distance_build": data.get("distance_build", "") if result["status"] == "ok" else ""}
    # Nested "score/..." keys become TensorBoard tags grouped under "score". The node id tells nodes apart where
    # Tune's own node_ip cannot (several Ray nodes on one host, as in the multi-node test).
    tune.report({**flat, "node_id": ray.get_runtime_context().get_node_id(),
                 "score": {key: result[key] for key in
                           ("silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz")}})
