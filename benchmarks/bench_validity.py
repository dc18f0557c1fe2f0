"""Are the sweep's winners right? Real labelled data and generated playlists with outliers (issue 11).

    python benchmarks/bench_validity.py [--full] [--sets digits,wine,...] [--record benchmarks/records/validity.json]

Routine (``make bench``): the four scikit-learn sets (about a minute). ``--full`` adds the three playlist sets
(generating the default data the first time, and a 396-config sweep each: tens of minutes on 2 cores).

Every set runs through the real sweep (``raysweep.tune.run_sweep``: Ray, all four models, the winner rule) and
the winner is refitted the way ``finalize`` refits it. Per set: the winner, its smallest cluster's share, the
configs excluded for splitting points off, its ARI against the labels, the best ARI of any config at the top rung
(each refitted the same way), and the reference: plain scikit-learn KMeans (4 k-means++ inits) at the k of its best
exact silhouette over the same k range. Targets: no degenerate winner (``selection.split_off_reasons``: no cluster
of fewer than 5 rows or 1% of an even share n / k), and the winner's ARI >= 0.7 x the reference's (digits: >= 0.45).

Sets:
- ``digits``, ``wine``, ``breast_cancer``, ``iris``: scikit-learn's own labelled data, constant columns dropped,
  standardized; k = 2..20; one rung (every set is smaller than the smallest sample), so no early stopping.
- ``playlists_audio``: the embedded default data (20,000 generated playlists, with outliers), the 13 mean audio
  features, the full grid k = 2..100 with early stopping (``make demo``'s settings; ``--playlist-k-max`` narrows
  it); labels = planted profiles,
  ARI over the inlier playlists (outliers carry no profile).
- ``playlists_cooccurrence``: the same playlists through the co-occurrence embedding (``--dim 32``).
- ``playlists_audio_seed1``: a second generator seed (20,000 playlists, seed 1), audio features.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep import run_folder as rf

REPO = Path(__file__).resolve().parents[1]
SKLEARN_SETS = ("digits", "wine", "breast_cancer", "iris")
PLAYLIST_SETS = ("playlists_audio", "playlists_cooccurrence", "playlists_audio_seed1")
ARI_SHARE_TARGET = 0.7
DIGITS_ARI_TARGET = 0.45


def sklearn_set(name, work):
    """Feature matrix and labels of one scikit-learn data set (constant columns dropped)."""
    from sklearn import datasets

    from raysweep.feature_matrix import write_feature_matrix

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X = X[:, X.std(axis=0) > 0]
    path = Path(work) / f"{name}.parquet"
    scaling = {"kind": "standard", "mean": X.mean(axis=0).tolist(), "std": X.std(axis=0).tolist()}
    write_feature_matrix(path, np.arange(len(X)), X, [f"x{j}" for j in range(X.shape[1])],
                         {"source": f"sklearn.datasets.load_{name}", "scaling": scaling})
    return path, pd.Series(y, index=np.arange(len(X))), 20


def playlist_set(name, work, k_max=100):
    """Feature matrix and planted labels (inliers only) of one generated playlist set."""
    from raysweep.default_data import build_default_data

    seed = 1 if name.endswith("seed1") else 0
    folder = build_default_data(seed=seed)
    features = folder / "features.parquet"
    if "cooccurrence" in name:
        from raysweep.features.cooccurrence import build_cooccurrence_embedding

        features = Path(work) / "cooccurrence.parquet"
        build_cooccurrence_embedding(folder / "dataset", features, dim=32)
    planted = pd.read_parquet(folder / "mpd" / "planted_profiles.parquet")
    if "outlier" in planted.columns:
        planted = planted[planted["outlier"].fillna("").eq("")]
    return features, planted.set_index("pid")["profile"], k_max


def reference_kmeans(X, y, k_values, seed=0):
    """Plain KMeans (4 k-means++ inits) at its best exact silhouette over ``k_values``: (k, silhouette, ARI)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from raysweep.scores import silhouette_exact

    best = None
    for k in k_values:
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)
        silhouette = silhouette_exact(X, labels)
        if best is None or silhouette > best[1]:
            best = (k, silhouette, labels)
    labelled = y.notna().to_numpy()
    return best[0], float(best[1]), float(adjusted_rand_score(y[labelled], best[2][labelled]))


def measure(name, work, cpus, playlist_k_max=100):
    from sklearn.metrics import adjusted_rand_score

    from raysweep.feature_matrix import read_feature_matrix
    from raysweep.finalize import fit_options, read_run
    from raysweep.models import fit_final
    from raysweep.samples import permutation
    from raysweep.selection import split_off_reasons
    from raysweep.tune import SweepSettings, run_sweep

    started = time.perf_counter()
    features, labels, k_max = (sklearn_set(name, work) if name in SKLEARN_SETS
                               else playlist_set(name, work, playlist_k_max))
    run_dir = run_sweep(SweepSettings(features, fraction=1.0, k_max=k_max, results=Path(work) / "results", name=name,
                                      num_cpus=cpus, progress=False))
    sweep_seconds = time.perf_counter() - started
    run_record, winner = read_run(run_dir)
    leaderboard = pd.read_parquet(run_dir / rf.LEADERBOARD)
    top = leaderboard[(leaderboard["rung"] == leaderboard["rung"].max()) & leaderboard["status"].eq("ok")]
    matrix = read_feature_matrix(features)
    order = permutation(len(matrix.pid), run_record.seed)[: int(top["n"].max())]
    X = matrix.scaled()[order]
    y = labels.reindex(matrix.pid[order])
    labelled = y.notna().to_numpy()
    aris = {}
    for row in top.itertuples():
        refit = fit_final(row.model, int(row.k), X, run_record.seed, **fit_options(row.model, run_record, len(X)))
        aris[(row.model, int(row.k))] = float(adjusted_rand_score(y[labelled], refit.labels_[labelled]))
    k_values = sorted(run_record.k_values)
    ref_k, ref_silhouette, ref_ari = reference_kmeans(X, y, k_values)
    winner_ari = aris[(winner.model, winner.k)]
    best_model, best_k = max(aris, key=aris.get)
    relative_size = winner.scores["min_cluster_share"] * winner.scores["effective_k"]
    winner_row = top[(top["model"] == winner.model) & (top["k"] == winner.k)]
    degenerate = bool(winner.eligibility["winner_excluded"] or split_off_reasons(winner_row).ne("").any())
    ari_target = DIGITS_ARI_TARGET if name == "digits" else ARI_SHARE_TARGET * ref_ari
    return {
        "set": name, "rows": int(len(matrix.pid)), "top_rung_rows": int(len(X)), "features": int(X.shape[1]),
        "winner": f"{winner.model} k={winner.k}",
        "winner_min_cluster_size": winner.scores["min_cluster_size"],
        "winner_min_cluster_share": winner.scores["min_cluster_share"], "winner_relative_size": relative_size,
        "excluded": winner.eligibility["n_excluded"],
        "configs_at_top_rung": int(len(top)), "winner_ari": winner_ari,
        "best_top_rung_ari": aris[(best_model, best_k)], "best_top_rung_config": f"{best_model} k={best_k}",
        "reference": f"KMeans k={ref_k} (silhouette {ref_silhouette:.3f})", "reference_ari": ref_ari,
        "ari_target": ari_target, "at_edge": winner.at_edge,
        "degenerate_winner": degenerate, "meets_targets": bool(not degenerate and winner_ari >= ari_target),
        "sweep_seconds": round(sweep_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
    }


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="also the three generated playlist sets")
    parser.add_argument("--sets", help="comma-separated sets (default: the scikit-learn sets; with --full all)")
    parser.add_argument("--playlist-k-max", type=int, default=100, help="k range 2..this for the playlist sets")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default all)")
    parser.add_argument("--record", type=Path, help="write the figures (with command, commit, load) as JSON here")
    args = parser.parse_args(argv)
    names = (args.sets.split(",") if args.sets else list(SKLEARN_SETS + (PLAYLIST_SETS if args.full else ())))
    names = [name for name in names if name]
    unknown = sorted(set(names) - set(SKLEARN_SETS + PLAYLIST_SETS))
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}")
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_validity_") as work:
        for name in names:
            rows.append(measure(name, work, args.cpus, args.playlist_k_max))
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table[["set", "winner", "winner_min_cluster_size", "winner_relative_size", "excluded", "winner_ari",
                 "best_top_rung_ari", "reference", "reference_ari", "ari_target", "meets_targets"]].to_string(index=False))
    if args.record:
        record = {"command": " ".join(["python", "benchmarks/bench_validity.py", *(argv or sys.argv[1:])]),
                  "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "machine": f"{os.cpu_count()} cores", "load_average_before": load_before,
                  "load_average_after": os.getloadavg(), "sets": rows}
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record, indent=2) + "\n")
    return 0 if table["meets_targets"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
