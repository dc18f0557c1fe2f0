"""Benchmark of the recommender (issue 14): at 1M playlists one recommendation <= 50 ms median after loading, the
index load <= 30 s, peak RSS <= 6 GB, the whole evaluation (10,000 held-out playlists, all methods) <= 15 min.

The data is the generator's (``raysweep.synth``, 17 planted profiles) ingested, with audio features from its
track table, or ``--data``: a folder of ``mpd/``, ``dataset/`` and ``features.parquet`` built already (the default
data set, ``raysweep.default_data``); the run is a KMeans k=17 sweep of one config on 100% (the study's winner) and
its finalize. They are built once into ``--workdir`` and reused. Then, in this process:

- index load, ``Recommender.load`` (tables -> CSR playlist x track and its transpose, clusters), wall time, three
  ways: building without the saved index, building and saving it (``RUN/recommend/index/``, removed first), and
  loading the saved one (the figure a user sees from the second load on);
- latency: one recommendation of 500 tracks per query, for ``--queries`` playlists' first 10 tracks (and title
  only) per method, median and 95th percentile;
- the whole evaluation: ``raysweep.recommend.evaluate`` with ``--per-category`` (1,000: 10,000 held-out
  playlists), every method, the winner's clustering (refitted on the training playlists), wall time;
- peak RSS of this process (``ru_maxrss``) after everything.

    python benchmarks/bench_recommend.py --playlists 1000000 --workdir /tmp/bench_recommend_1m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def build(workdir: Path, playlists: int, workers: int, data: Path | None = None) -> tuple[Path, Path, Path, dict]:
    """Generate, ingest, features (or take them from ``data``), sweep (KMeans k=17), finalize, each only if absent;
    returns run, dataset, the generator's track audio-feature table, times."""
    from raysweep.features.audio import build_audio_features
    from raysweep.finalize import finalize
    from raysweep.ingest import ingest
    from raysweep.run_folder import FINAL, MODEL_RECORD, WINNER
    from raysweep.synth import generate
    from raysweep.tune import SweepSettings, run_sweep

    seconds = {}
    source = data if data is not None else workdir
    mpd, dataset, features = source / "mpd", source / "dataset", source / "features.parquet"
    run = workdir / "results" / "bench"

    def step(name, done, action):
        if not done:
            started = time.perf_counter()
            action()
            seconds[name] = round(time.perf_counter() - started, 1)
            print(f"bench_recommend: {name} {seconds[name]} s", file=sys.stderr, flush=True)

    step("synth", mpd.exists(), lambda: generate(mpd, playlists, slice_size=1000, profiles=17, seed=0,
                                                 workers=workers))
    step("ingest", dataset.exists(), lambda: ingest(mpd / "data", dataset, workers=workers))
    step("features", features.exists(), lambda: build_audio_features(
        dataset, features, table=mpd / "track_audio_features.parquet"))
    step("sweep", (run / WINNER).exists(), lambda: run_sweep(SweepSettings(
        features, fraction=1.0, models=("kmeans",), k_values=[17], exhaustive=True, results=workdir / "results",
        name="bench", progress=False, num_cpus=workers)))
    step("finalize", (run / FINAL / MODEL_RECORD).exists(), lambda: finalize(
        run, plots=False, quiet=True, fractions=()))
    return run, dataset, mpd / "track_audio_features.parquet", seconds


def latency(recommender, queries: int, seed: int = 0) -> dict:
    """Median and p95 milliseconds of one 500-track recommendation per method, over ``queries`` seeds."""
    from raysweep.recommend.methods import METHODS, Seed

    index = recommender.index
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(index.pid), size=queries, replace=False)
    seeds = []
    for row in rows:
        tracks = index.by_playlist.indices[index.by_playlist.indptr[row]:index.by_playlist.indptr[row + 1]]
        seeds.append(Seed(tracks[:10].astype(np.int64), None))
    titled = index.titles[index.title_code[rows[index.title_code[rows] >= 0]]]
    title_seeds = [Seed(np.empty(0, np.int64), str(t)) for t in titled[:queries // 4]]
    found = {}
    for name, method in METHODS.items():
        for kind, batch in (("10 tracks", seeds), ("title only", title_seeds)):
            times = []
            for seed_ in batch:
                started = time.perf_counter()
                method.rank(index, recommender.clustering, seed_, 500)
                times.append((time.perf_counter() - started) * 1000)
            found[f"{name} ({kind})"] = {"median_ms": round(float(np.median(times)), 2),
                                         "p95_ms": round(float(np.percentile(times, 95)), 2), "queries": len(times)}
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--playlists", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, required=True, help="data and run, built once and reused")
    parser.add_argument("--data", type=Path, help="a built data folder (mpd/, dataset/, features.parquet) to use "
                                                  "instead of generating one into --workdir")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--per-category", type=int, default=1000)
    parser.add_argument("--no-evaluation", action="store_true")
    args = parser.parse_args()

    from raysweep.recommend.evaluate import evaluate
    from raysweep.recommend.recommender import INDEX_FOLDER, Recommender
    from raysweep.run_folder import RECOMMEND

    record = {"playlists": args.playlists, "cpus": os.cpu_count(),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=Path(__file__).parent).stdout.strip(),
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    # The track table is passed on: a data folder built aside and renamed (raysweep.default_data) records a path
    # in its feature matrix that no longer exists, and the study method would fall back to derived features.
    run, dataset, track_table, record["build_seconds"] = build(args.workdir, args.playlists, args.workers, args.data)
    record["data"] = str(dataset)
    saved = run / RECOMMEND / INDEX_FOLDER
    record["index_load_s"] = {}
    for way, cache in (("built, not saved", False), ("built and saved", True), ("loaded from the saved index", True)):
        if way == "built and saved":
            shutil.rmtree(saved, ignore_errors=True)
        started = time.perf_counter()
        recommender = Recommender.load(run, dataset, track_features=track_table, index_cache=cache)
        record["index_load_s"][way] = round(time.perf_counter() - started, 2)
        print(f"bench_recommend: index {way}: {record['index_load_s'][way]} s", file=sys.stderr, flush=True)
        if way != "loaded from the saved index":
            del recommender
    record["index_saved_gib"] = round(sum(f.stat().st_size for f in saved.iterdir()) / 2**30, 2)
    record["track_features"] = recommender.index.track_feature_source
    record["index"] = {"playlists": int(len(recommender.index.pid)), "tracks": int(recommender.index.n_tracks),
                       "pairs": int(recommender.index.by_playlist.nnz)}
    record["rss_after_load_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    record["latency"] = latency(recommender, args.queries)
    record["load_average_after_latency"] = [round(x, 2) for x in os.getloadavg()]
    # On stderr now: the evaluation takes minutes, and these figures stand on their own if it is cut short.
    print(f"bench_recommend: load and latency {json.dumps(record)}", file=sys.stderr, flush=True)
    del recommender
    if not args.no_evaluation:
        started, cpu = time.perf_counter(), time.process_time()
        summary = evaluate(run, dataset, per_category=args.per_category, pareto=False, plots=False,
                           track_features=track_table)
        record["evaluation_s"] = round(time.perf_counter() - started, 1)
        record["evaluation_cpu_s"] = round(time.process_time() - cpu, 1)  # this process: wall >> CPU when shared
        record["evaluation_held_out"] = summary["split"]["held_out"]
        record["evaluation_steps_s"] = summary["seconds"]
        record["evaluation_overall"] = [
            {key: row[key] for key in ("method", "clustering", "r_precision", "r_precision_tracks", "ndcg", "clicks")}
            for row in summary["results"] if row["category"] == "all"]
    record["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    record["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
