"""Inputs of SCALING.md: single-thread seconds per config, and the wall-time / cost model built on them.

One Ray trial holds one CPU, so what scales out is single-thread work. This measures one trial's work (fit, then
the three scores, as ``raysweep._trainable`` does it) as process CPU time with BLAS/OpenMP capped at one thread
(CPU time, so that other load on a shared machine does not inflate it), for each model at a few k, at two rung
sizes of the full 1M sweep: 12,346 (rung 0, exact silhouette) and 111,111 (rung 2, silhouette estimator); plus the
structures built once per rung (ward tree, Birch CF-tree). Larger rungs are extrapolated linearly in n from
111,111: every step left is O(n) per iteration (Lloyd, EM, Birch's assignment, nearest-centroid extension,
DB/CH, the m x n silhouette estimator). Iteration counts may grow with n: the upper bound lets every KMeans and
GMM fit run to its max_iter. Over k, log-log interpolation between the measured k. A rung's wall time is the
greedy list-scheduling bound max(work / slots, longest trial) plus its shared builds.

    python benchmarks/bench_scaling.py            # k in {2, 10, 30, 100}
    python benchmarks/bench_scaling.py --quick    # k in {2, 100}: a smoke run

Data: make_blobs, 13 standardized features (the audio-feature count), 17 centres, seed 0.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from raysweep import models, scores
from raysweep.samples import promoted_count, rung_sizes

N_FULL = 1_000_000
K_GRID = range(2, 101)
MODELS = ("kmeans", "gmm", "agglomerative", "birch")
VCPUS_PER_WORKER = 48  # m6i.12xlarge, the original study's 48 vCPU / 192 GiB class
# us-east-1 Linux on-demand list prices, USD per hour (m6i.12xlarge, m6i.xlarge head). Spot varies by zone and
# day: SPOT_FRACTION is an assumption to replace with the current price, not a measurement.
PRICE_WORKER = 2.304
PRICE_HEAD = 0.192
SPOT_FRACTION = 0.4


def _data(n, seed=0):
    X, _ = make_blobs(n_samples=n, n_features=13, centers=17, cluster_std=2.0, random_state=seed)
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)


def _timed(function, *args, **kwargs):
    start = time.process_time()
    value = function(*args, **kwargs)
    return value, time.process_time() - start


def _with_iterations(labels_and_info):
    labels, info = labels_and_info
    return labels, info["n_iter"]


def measure(n, ks, seed=0):
    """Single-thread CPU seconds of one trial per (model, k) on n rows, and of the rung's shared builds.

    Returns
    -------
    trial : dict of (model, k) -> dict
        ``fit`` and ``score`` seconds, ``iterations`` of an iterative fit (else None).
    shared : dict of model -> float, the structure built once per rung (0 for KMeans and GMM)
    """
    X = _data(n, seed)
    query = scores.silhouette_query_points(n, seed=None)
    trial, shared = {}, {"kmeans": 0.0, "gmm": 0.0}
    with threadpool_limits(limits=1):
        tree, shared["agglomerative"] = _timed(models.ward_tree, X, n_threads=1)
        threshold, threshold_seconds = _timed(models.birch_threshold, X, seed=seed)
        cf_tree, cf_seconds = _timed(models.birch_cf_tree, X, threshold, n_threads=1)
        shared["birch"] = threshold_seconds + cf_seconds
        fits = {"kmeans": lambda k: _with_iterations(models.kmeans_labels(X, k, seed=seed, n_threads=1)),
                "gmm": lambda k: _with_iterations(models.gmm_labels(X, k, seed=seed, n_threads=1)),
                "agglomerative": lambda k: (models.ward_labels(tree, k, X=X, n_threads=1), None),
                "birch": lambda k: (models.birch_labels(cf_tree, None, k), None)}
        for model in MODELS:
            for k in ks:
                (labels, iterations), fit_seconds = _timed(fits[model], k)
                _, score_seconds = _timed(scores.score_labels, X, labels, query_idx=query)
                trial[model, k] = {"fit": fit_seconds, "score": score_seconds, "iterations": iterations}
                print(f"  n={n:>9,} {model:<13} k={k:>3}: fit {fit_seconds:7.2f} s + scores {score_seconds:6.2f} s"
                      + ("" if iterations is None else f"  ({iterations} iterations)"), flush=True)
    for model in ("agglomerative", "birch"):
        print(f"  n={n:>9,} shared build for {model}: {shared[model]:.2f} s", flush=True)
    return trial, shared


def _max_iter(model):
    """The iteration cap of an iterative model as raysweep.models configures it (None otherwise)."""
    if model == "kmeans":
        return models._kmeans(2, 0).max_iter
    if model == "gmm":
        return models.GMM_PARAMS["max_iter"]
    return None


def _seconds(record, model, n_measured, n, bound):
    """A trial's seconds at n rows from its measurement at n_measured rows; with ``bound``, fits run to max_iter.

    Linear in n, except GMM: EM runs on at most ``models.GMM_MAX_N`` rows, the other rows cost one E-step
    (about one iteration's share) to label.
    """
    fit, iterations = record["fit"], record["iterations"]
    per_iteration = fit / iterations if iterations else 0.0
    if bound and iterations:
        fit *= _max_iter(model) / iterations
    if model == "gmm":
        fit_rows = min(n, models.GMM_MAX_N)
        fit = fit * fit_rows / n_measured + per_iteration * (n - fit_rows) / n_measured
    else:
        fit *= n / n_measured
    return fit + record["score"] * n / n_measured


def _interpolate_k(values, k, ks):
    """Log-log interpolation over k between the measured k (constant extrapolation outside them)."""
    points = sorted(ks)
    if k <= points[0]:
        return values[points[0]]
    for low, high in zip(points, points[1:]):
        if k <= high:
            frac = math.log(k / low) / math.log(high / low)
            return math.exp((1 - frac) * math.log(values[low]) + frac * math.log(values[high]))
    return values[points[-1]]


def extrapolate(measured, shared, n_measured, n, ks, bound=False):
    """Seconds of every (model, k) of the grid and of each shared build at n rows.

    Trials scale as :func:`_seconds`. The ward tree is capped at ``models.AGGLOMERATIVE_MAX_N`` rows, so its
    build does not grow with n; the Birch build (a tree on at most 200k rows, then every row labelled by its
    nearest subcluster) is taken as linear in n, an overestimate above its cap.
    """
    trial = {}
    for model in MODELS:
        values = {k: max(_seconds(measured[model, k], model, n_measured, n, bound), 1e-6) for k in ks}
        trial.update({(model, k): _interpolate_k(values, k, ks) for k in K_GRID})
    builds = {model: seconds * (1.0 if model == "agglomerative" else n / n_measured)
              for model, seconds in shared.items()}
    return trial, builds


def rung_plan(exhaustive):
    """(n, configs alive) per rung of the full-data sweep."""
    n_configs = len(MODELS) * len(K_GRID)
    if exhaustive:
        return [(N_FULL, n_configs)]
    plan, alive = [], n_configs
    for n in rung_sizes(N_FULL, max(K_GRID), n_configs):
        plan.append((n, alive))
        alive = promoted_count(alive, 3)
    return plan


def _rung_durations(seconds, alive, rung, survivors):
    durations = sorted(seconds.values(), reverse=True)
    if survivors == "costliest" or rung == 0:
        return durations[:alive]
    return [sum(durations) / len(durations)] * alive


def cpu_hours(plan, per_rung, survivors):
    return sum(sum(_rung_durations(per_rung[n][0], alive, r, survivors)) + sum(per_rung[n][1].values())
               for r, (n, alive) in enumerate(plan)) / 3600


def wall_hours(plan, per_rung, slots, survivors):
    """Hours of the whole sweep on ``slots`` trial CPUs (greedy list scheduling bound, per rung barrier).

    survivors : {"costliest", "average"} which configs the promotion keeps beyond rung 0 (unknown in advance).
    """
    total = 0.0
    for rung, (n, alive) in enumerate(plan):
        chosen = _rung_durations(per_rung[n][0], alive, rung, survivors)
        # Shared builds run as tasks before the rung's trials, in parallel with each other.
        total += max(per_rung[n][1].values()) + max(sum(chosen) / slots, max(chosen))
    return total / 3600


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer k: a smoke run")
    parser.add_argument("--full", action="store_true", help="accepted for `make bench --full`: same as default")
    args = parser.parse_args(argv)
    ks = (2, 100) if args.quick else (2, 10, 30, 100)
    print("single-thread CPU seconds per trial, make_blobs 13 features "
          f"(command: python benchmarks/bench_scaling.py{' --quick' if args.quick else ''})")
    plans = {"exhaustive": rung_plan(True), "early-stopped": rung_plan(False)}
    n_rung0, n_measured = plans["early-stopped"][0][0], plans["early-stopped"][2][0]
    rung0 = measure(n_rung0, ks)
    measured = measure(n_measured, ks)
    sizes = sorted({n for plan in plans.values() for n, _ in plan})
    for bound in (False, True):
        per_rung = {n: extrapolate(*(rung0 if n == n_rung0 else measured), n_rung0 if n == n_rung0 else n_measured,
                                   n, ks, bound) for n in sizes}
        work = per_rung[N_FULL][0]
        longest = max(work, key=work.get)
        exhaustive_cpu = cpu_hours(plans["exhaustive"], per_rung, "costliest")
        heading = "UPPER BOUND (every KMeans/GMM fit runs to max_iter)" if bound else "CENTRAL (iterations as measured)"
        print(f"\n{heading}"
              f"\nCPU-hours at 1M rows, exhaustive: {exhaustive_cpu:.2f} ("
              + ", ".join(f"{m} {sum(work[m, k] for k in K_GRID) / 3600:.2f}" for m in MODELS)
              + f"); early-stopped: {cpu_hours(plans['early-stopped'], per_rung, 'average'):.2f} (average survivors)"
              f" - {cpu_hours(plans['early-stopped'], per_rung, 'costliest'):.2f} (costliest survivors)"
              f"\nlongest trial {work[longest] / 60:.1f} min {longest}; exhaustive stops scaling at "
              f"work / longest = {exhaustive_cpu * 3600 / work[longest]:.0f} trial CPUs")
        print("\n| workers (48 vCPU) | exhaustive h | exhaustive $ on-demand / spot | early-stopped h "
              "(avg - costliest survivors) | early-stopped $ on-demand |")
        print("|---:|---:|---:|---:|---:|")
        for workers in (1, 2, 4, 8):
            slots = workers * VCPUS_PER_WORKER
            hourly = workers * PRICE_WORKER + PRICE_HEAD
            hourly_spot = workers * PRICE_WORKER * SPOT_FRACTION + PRICE_HEAD
            exhaustive = wall_hours(plans["exhaustive"], per_rung, slots, "costliest")
            early_avg = wall_hours(plans["early-stopped"], per_rung, slots, "average")
            early_max = wall_hours(plans["early-stopped"], per_rung, slots, "costliest")
            print(f"| {workers} | {exhaustive:.2f} | {exhaustive * hourly:,.2f} / {exhaustive * hourly_spot:,.2f} "
                  f"| {early_avg:.2f} - {early_max:.2f} | {early_avg * hourly:,.2f} - {early_max * hourly:,.2f} |")
        this_machine = wall_hours(plans["exhaustive"], per_rung, 2, "costliest")
        print(f"this 2-core machine (2 trial CPUs): exhaustive {this_machine:.1f} h, early-stopped "
              f"{wall_hours(plans['early-stopped'], per_rung, 2, 'average'):.1f} h (average survivors)")
        print("rungs (n, configs):", plans["early-stopped"])


if __name__ == "__main__":
    main()
