"""Benchmark of the finalizer: KMeans k=17 refit on 1,000,000 playlists x 13 features (issue 5: <= 2 min).

The features are Gaussian blobs drawn with NumPy (17 overlapping centres in 13 dimensions, raw units offset and
scaled like audio features), written as a feature matrix with a standard scaling record; a run folder with a
KMeans k=17 winner is written by hand, and ``python -m raysweep.finalize --run ...`` runs in a subprocess, timed
end to end (interpreter start, reading, refit, assignments, profiles, stability on the 2% and 10% samples, plots,
report). Peak RSS and CPU time (user + system) are the subprocess's (getrusage of children).

    python benchmarks/bench_finalize.py [--rows 1000000] [--k 17] [--keep DIR] [--dataset]

``--dataset`` also writes an ingest-shaped dataset with the MPD's proportions (66 track entries per playlist on
average, 2.26 tracks and 0.3 artists per playlist, 17,381 distinct normalized names, skewed popularity) and passes
it to the finalizer, which then counts names, artists and tracks per cluster.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysweep.dataset import AUDIO_FEATURES
from raysweep.feature_matrix import write_feature_matrix
from raysweep.run_folder import FINAL, FINAL_RECORD, RUN_RECORD, WINNER, RunRecord, Winner

COLUMNS = list(AUDIO_FEATURES)


def blob_features(rows: int, centres: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw feature values (rows, 13) from overlapping Gaussian blobs, and their pids."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0.0, 1.5, size=(centres, len(COLUMNS)))
    planted = rng.integers(0, centres, size=rows)
    standard = centre[planted] + rng.standard_normal((rows, len(COLUMNS)))
    # Raw units of different magnitudes (tempo ~120, duration ~2e5 ms), as audio features have.
    scale = np.geomspace(0.05, 5e4, len(COLUMNS))
    offset = np.linspace(0.0, 2e5, len(COLUMNS))
    return (standard * scale + offset).astype(np.float32), np.arange(rows, dtype=np.int64)


def write_run(folder: Path, rows: int, k: int, seed: int) -> Path:
    """A sweep run folder whose winner is KMeans with ``k`` clusters, for blob features of ``rows`` rows."""
    values, pid = blob_features(rows, centres=k, seed=seed)
    mean = values.mean(axis=0, dtype=np.float64)
    std = values.std(axis=0, dtype=np.float64)
    scaling = {"kind": "standard", "mean": mean.tolist(), "std": std.tolist()}
    features = folder / "features.parquet"
    write_feature_matrix(features, pid, values, COLUMNS, {"source": "bench blobs", "scaling": scaling})
    run = folder / "results" / "bench"
    run.mkdir(parents=True)
    RunRecord(name="bench", features=str(features), feature_columns=COLUMNS, scaling=scaling, seed=seed,
              fraction=1.0, n_total=rows, models=["kmeans"], k_min=k, k_max=k, exhaustive=True).write(run / RUN_RECORD)
    Winner(model="kmeans", k=k, rule="benchmark: given").write(run / WINNER)
    return run


def write_dataset(folder: Path, pid: np.ndarray, seed: int, part_rows: int = 100_000) -> Path:
    """An ingest-shaped dataset (playlists/, tracks/, playlist_tracks/) for ``pid``, written in parts."""
    rng = np.random.default_rng(seed)
    n_tracks = max(10, int(2.26 * len(pid)))
    n_artists = max(3, int(0.3 * len(pid)))
    for name in ("playlists", "tracks", "playlist_tracks"):
        (folder / name).mkdir(parents=True)
    # Popularity skew: u**3 puts most draws on low ids, as a few tracks, names and artists dominate the MPD.
    track_id = np.arange(n_tracks)
    artist = (n_artists * rng.random(n_tracks) ** 3).astype(np.int64)
    pq.write_table(pa.table({"track_id": track_id, "track_uri": [f"spotify:track:{t:022d}" for t in track_id],
                             "track_name": [f"track {t}" for t in track_id],
                             "artist_uri": [f"spotify:artist:{a:022d}" for a in artist],
                             "artist_name": [f"artist {a}" for a in artist]}), folder / "tracks" / "part-0.parquet")
    vocabulary = np.array([f"name {j}" for j in range(17_381)], dtype=object)
    for part, start in enumerate(range(0, len(pid), part_rows)):
        chunk = pid[start:start + part_rows]
        names = vocabulary[(len(vocabulary) * rng.random(len(chunk)) ** 3).astype(np.int64)]
        pq.write_table(pa.table({"pid": chunk, "name": names, "name_normalized": names}),
                       folder / "playlists" / f"part-{part}.parquet")
        lengths = rng.integers(5, 128, size=len(chunk))  # mean 66, as the MPD
        entries = pa.table({"pid": np.repeat(chunk, lengths),
                            "pos": np.concatenate([np.arange(n) for n in lengths]).astype(np.int32),
                            "track_id": (n_tracks * rng.random(int(lengths.sum())) ** 3).astype(np.int64)})
        pq.write_table(entries, folder / "playlist_tracks" / f"part-{part}.parquet")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=17)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the run here and keep it (default: a temporary folder)")
    parser.add_argument("--dataset", action="store_true", help="also describe clusters from a generated dataset")
    parser.add_argument("--full", action="store_true", help="accepted for make bench; the default is the full size")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_finalize_") as scratch:
        folder = Path(args.keep) if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        run = write_run(folder, args.rows, args.k, args.seed)
        command = [sys.executable, "-m", "raysweep.finalize", "--run", str(run), "--quiet"]
        if args.dataset:
            dataset = write_dataset(folder / "dataset", np.arange(args.rows, dtype=np.int64), args.seed)
            command += ["--dataset", str(dataset)]
        generate_seconds = time.perf_counter() - start

        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_rss_mib = usage.ru_maxrss / 1024  # Linux reports KiB
        cpu_seconds = usage.ru_utime + usage.ru_stime  # less sensitive than wall time to a shared machine's load

        summary = json.loads((run / FINAL / FINAL_RECORD).read_text())
        figures = {"rows": args.rows, "features": len(COLUMNS), "k": args.k, "wall_seconds": round(wall, 1),
                   "cpu_seconds": round(cpu_seconds, 1), "peak_rss_mib": round(peak_rss_mib),
                   "within_2_min": wall <= 120,
                   "generate_seconds": round(generate_seconds, 1), "steps_seconds": summary["seconds"],
                   "kmeans_iterations": summary["method"].get("n_iter"),
                   "stability_ari": {f"{c['fraction']:.0%}": c["ari"] for c in summary["stability"]}}
    print(f"command: python benchmarks/bench_finalize.py --rows {args.rows} --k {args.k}"
          + (" --dataset" if args.dataset else ""))
    print(f"finalize (subprocess): {' '.join(command[1:])}")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
