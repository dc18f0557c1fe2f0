"""Scores and shared model structures against scikit-learn, single-threaded (a trial's budget).

  python benchmarks/bench_scores.py            # routine: 20k rows silhouette and GMM, 200k rows DB/CH/estimator,
                                               # ward 10k
  python benchmarks/bench_scores.py --full     # also 1M rows DB/CH/estimator, ward 20k, Birch CF-tree on 200k

Data: make_blobs, 13 features (the audio feature count), 17 centres, standardized, float32 as the sweep holds it.
Times are CPU seconds of this process under one BLAS/OpenMP thread (``time.process_time``) and wall seconds; on a
shared machine CPU seconds are the steadier figure. Ward and Birch run in a child process for their peak RSS.
"""

import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from threadpoolctl import threadpool_limits

from raysweep import models, scores


def features(n, seed=0):
    X, _ = make_blobs(n_samples=n, n_features=13, centers=17, cluster_std=3.0, random_state=seed)
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def row(name, n, k, ours, theirs=None, note=""):
    line = {"what": name, "n": n, "k": k, "ours_cpu_s": round(ours[2], 3), "ours_wall_s": round(ours[1], 3)}
    if theirs is not None:
        line.update(sklearn_cpu_s=round(theirs[2], 3), sklearn_wall_s=round(theirs[1], 3),
                    speedup_cpu=round(theirs[2] / ours[2], 2),
                    rel_diff=float(abs(ours[0] - theirs[0]) / abs(theirs[0])))
    if note:
        line["note"] = note
    print(json.dumps(line), flush=True)


def bench_silhouette(n, ks):
    X = features(n).astype(np.float64)  # float64 so that the two results are comparable to 1e-9
    for k in ks:
        labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(X)
        ours = timed(lambda: scores.silhouette_exact(X, labels))
        theirs = timed(lambda: silhouette_score(X, labels))
        row("silhouette exact", n, k, ours, theirs)


def bench_db_ch_estimator(n, k, m):
    X = features(n)
    labels = KMeans(n_clusters=k, n_init=1, random_state=0, max_iter=20).fit_predict(X)
    row("davies_bouldin", n, k, timed(lambda: scores.davies_bouldin(X, labels)),
        timed(lambda: davies_bouldin_score(X, labels)))
    row("calinski_harabasz", n, k, timed(lambda: scores.calinski_harabasz(X, labels)),
        timed(lambda: calinski_harabasz_score(X, labels)))
    idx = scores.silhouette_query_points(n, m, seed=0)
    estimate = timed(lambda: scores.silhouette_query_estimate(X, labels, idx))
    row(f"silhouette estimator m={m}", n, k, estimate, note=f"mean={estimate[0][0]:.4f} se={estimate[0][1]:.4f}")
    row("score_labels (all three)", n, k,
        timed(lambda: scores.score_labels(X, labels, query_idx=idx)))


def bench_gmm(n, k):
    from sklearn.mixture import GaussianMixture

    X = features(n).astype(np.float64)
    ours = timed(lambda: models.gmm_labels(X, k, seed=0)[1]["lower_bound"])
    theirs = timed(lambda: GaussianMixture(n_components=k, random_state=0).fit(X).lower_bound_)
    row("gmm full covariance fit", n, k, ours, theirs, note="value = EM lower bound")


CHILD = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from threadpoolctl import threadpool_limits
from benchmarks.bench_scores import features
from raysweep import models
X = features({n})
with threadpool_limits(1):
    wall, cpu = time.perf_counter(), time.process_time()
    if {what!r} == "ward":
        tree = models.ward_tree(X, max_n={n})
        built = time.perf_counter() - wall, time.process_time() - cpu
        cut = time.perf_counter()
        for k in range(2, 101):
            models.ward_labels(tree, k)
        extra = {{"cuts_k2_100_s": round(time.perf_counter() - cut, 3)}}
    else:
        cf = models.birch_cf_tree(X, models.birch_threshold(X))
        built = time.perf_counter() - wall, time.process_time() - cpu
        cut = time.perf_counter()
        for k in range(2, 101):
            models.birch_labels(cf, None, k)
        extra = {{"cuts_k2_100_s": round(time.perf_counter() - cut, 3), "attempts": cf.attempts}}
print(json.dumps({{"what": {what!r} + " build", "n": {n}, "ours_wall_s": round(built[0], 2),
                  "ours_cpu_s": round(built[1], 2),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), **extra}}))
"""


def bench_child(what, n):
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", CHILD.format(root=root, n=n, what=what)], check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also the large configurations (minutes)")
    args = parser.parse_args(argv)
    print(f"# bench_scores {'--full' if args.full else '(routine)'}: {platform.node()}, "
          f"{platform.python_version()}, 1 BLAS/OpenMP thread", flush=True)
    with threadpool_limits(1):
        bench_silhouette(20_000, [17, 100])
        bench_db_ch_estimator(200_000, 100, scores.DEFAULT_QUERY_POINTS)
        bench_gmm(20_000, 100)
        if args.full:
            bench_silhouette(40_000, [17])
            bench_db_ch_estimator(1_000_000, 100, scores.DEFAULT_QUERY_POINTS)
    bench_child("ward", 10_000)
    if args.full:
        bench_child("ward", models.AGGLOMERATIVE_MAX_N)
        bench_child("birch", 200_000)


if __name__ == "__main__":
    main()
