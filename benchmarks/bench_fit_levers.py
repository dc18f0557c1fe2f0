"""The fit-path levers of the 1M grid, each measured against the fit it would replace, one thread.

  python benchmarks/bench_fit_levers.py           # routine: the default data at 200,000 playlists (built if missing)
  python benchmarks/bench_fit_levers.py --full    # the 1M default data (built if missing: ~12-16 min)
  python benchmarks/bench_fit_levers.py --features F

Rows: the scaled matrix in the sweep's permutation order (seed 0), as a trial holds it.
- ``kmeans_sample``: KMeans with ``KMEANS_INITS`` k-means++ inits on all rows (the fit before the lever) against
  the same inits on the first ``KMEANS_SAMPLE_N`` rows polished on all rows (``raysweep.families.kmeans``, kept):
  CPU, iterations, inertia ratio (lever / all rows) and ARI between the two labelings.
- ``gmm_warm_start``: GaussianMixture as the sweep fits it on 200k rows against a fit on the first 20k rows
  continued by EM on the 200k (scikit-learn's ``warm_start``): CPU and mean log-likelihood on the 200k.
- ``planted_ari``: on generated data, the ARI against the planted profiles (inlier playlists) of KMeans fitted both
  ways and of agglomerative (ward) at the same k: does the lever move a clustering away from the truth?
- ``gmm_init``: the CPU of the one-init KMeans that GaussianMixture's ``init_params="kmeans"`` runs on the 200k,
  the most a cheaper init could save.
CPU seconds are this process's user + system (``time.process_time``), under one BLAS/OpenMP thread.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from _records import write_record
from raysweep import samples
from raysweep.default_data import default_features
from raysweep.families.gmm import GMM_MAX_N, GMM_PARAMS, _FullCovarianceMixture
from raysweep.families.kmeans import KMEANS_INITS, KMEANS_SAMPLE_N, kmeans_labels
from raysweep.feature_matrix import read_feature_matrix
from raysweep.models import fit_final

GMM_WARM_SAMPLE_N = 20_000


def _timed(fit):
    start = time.process_time()
    value = fit()
    return value, round(time.process_time() - start, 2)


def kmeans_sample(X, k):
    full, full_cpu = _timed(lambda: KMeans(k, init="k-means++", n_init=KMEANS_INITS, random_state=0).fit(X))
    (labels, info), lever_cpu = _timed(lambda: kmeans_labels(X, k, seed=0))
    return {"k": k, "all_rows_cpu_s": full_cpu, "all_rows_n_iter": int(full.n_iter_),
            "lever_cpu_s": lever_cpu, "lever_polish_n_iter": info["n_iter"],
            "inertia_ratio": round(info["inertia"] / full.inertia_, 5),
            "ari_between": round(adjusted_rand_score(full.labels_, labels), 3)}


def gmm_warm_start(X, k):
    now, now_cpu = _timed(lambda: _FullCovarianceMixture(n_components=k, random_state=0, **GMM_PARAMS).fit(X))
    warm = _FullCovarianceMixture(n_components=k, random_state=0, warm_start=True, **GMM_PARAMS)
    _, warm_cpu = _timed(lambda: warm.fit(X[:GMM_WARM_SAMPLE_N]).fit(X))
    return {"k": k, "now_cpu_s": now_cpu, "now_n_iter": int(now.n_iter_), "now_log_likelihood": round(now.score(X), 4),
            "warm_cpu_s": warm_cpu, "warm_n_iter_on_all": int(warm.n_iter_),
            "warm_log_likelihood": round(warm.score(X), 4),
            "ari_between": round(adjusted_rand_score(now.predict(X), warm.predict(X)), 3)}


def planted_ari(X, k, truth):
    inliers = truth.notna().to_numpy()

    def ari(labels):
        return round(adjusted_rand_score(truth[inliers], labels[inliers]), 3)

    all_rows = KMeans(k, init="k-means++", n_init=KMEANS_INITS, random_state=0).fit_predict(X)
    return {"k": k, "kmeans_all_rows_ari": ari(all_rows), "kmeans_lever_ari": ari(kmeans_labels(X, k, seed=0)[0]),
            "agglomerative_ari": ari(fit_final("agglomerative", k, X, seed=0).labels_)}


def gmm_init(X, k):
    _, cpu = _timed(lambda: KMeans(k, n_init=1, random_state=np.random.RandomState(0)).fit(X))
    return {"k": k, "init_kmeans_cpu_s": cpu}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", help="a features.parquet (default: the default data, built if missing)")
    parser.add_argument("--full", action="store_true", help="the default data at 1,000,000 playlists, not 200,000")
    parser.add_argument("--k", default="5,22,50,100", help="comma-separated k values (default 5,22,50,100)")
    parser.add_argument("--only", default="kmeans_sample,gmm_warm_start,gmm_init,planted_ari",
                        help="comma-separated levers (planted_ari: generated data only)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    ks = [int(k) for k in args.k.split(",")]
    features = Path(args.features or default_features(1_000_000 if args.full else 200_000))
    matrix = read_feature_matrix(features)
    order = samples.permutation(len(matrix.pid), 0)
    X = np.ascontiguousarray(matrix.scaled()[order])
    levers = {"kmeans_sample": (kmeans_sample, X), "gmm_warm_start": (gmm_warm_start, X[:GMM_MAX_N]),
              "gmm_init": (gmm_init, X[:GMM_MAX_N])}
    planted = features.parent / "mpd" / "planted_profiles.parquet"  # generated data only
    if planted.exists():
        profiles = pd.read_parquet(planted)
        profiles = profiles[profiles["outlier"].fillna("").eq("")] if "outlier" in profiles else profiles
        truth = profiles.set_index("pid")["profile"].reindex(matrix.pid[order])
        levers["planted_ari"] = (lambda rows, k: planted_ari(rows, k, truth), X)
    values = {"n_rows": int(X.shape[0]), "kmeans_sample_n": KMEANS_SAMPLE_N, "gmm_max_n": GMM_MAX_N,
              "gmm_warm_sample_n": GMM_WARM_SAMPLE_N}
    with threadpool_limits(1):
        for name in args.only.split(","):
            if name not in levers:
                print(f"{name}: skipped, {features} has no planted profiles beside it")
                continue
            measure, rows = levers[name]
            values[name] = []
            for k in ks:
                values[name].append(measure(rows, k))
                print(name, values[name][-1], flush=True)
    print(write_record("fits", "fit_levers", values, load_average_before=load_before))


if __name__ == "__main__":
    main()
