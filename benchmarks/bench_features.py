"""Benchmark of the features stage (issue 3): audio means from a table, and the co-occurrence embedding.

1. Generated MPD-format playlists (``raysweep.synth``) ingested (``raysweep.ingest``); then, each in its own
   subprocess, ``python -m raysweep.features audio --table`` (the generator's track table) and
   ``python -m raysweep.features cooccurrence --dim 32``: wall seconds (interpreter start included) and the
   subprocess's peak RSS.
2. ``--mpd-shape N``: the co-occurrence embedding at the full MPD shape. Generating and ingesting 1M playlists of
   JSON takes long, and the embedding reads only ``playlists/``, ``tracks/`` and ``playlist_tracks/``, so those
   are written directly with NumPy: N playlists of MPD-like lengths (5..250, mean ~66), 2,262,292 tracks in 17
   taste catalogues with power-law popularity, 70% of a playlist's entries from its catalogue.

    python benchmarks/bench_features.py                      # quick: 5,000 generated playlists
    python benchmarks/bench_features.py --full               # 100,000 generated + 1,000,000 MPD-shaped
    python benchmarks/bench_features.py --playlists 100000 --mpd-shape 0 [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MPD_TRACKS = 2_262_292
MPD_PLAYLISTS = 1_000_000
# Runs the CLI's main() and writes the process's own peak RSS and CPU time (getrusage) where
# RAYSWEEP_BENCH_USAGE says: on a shared machine CPU seconds well below wall seconds show the load.
CHILD = ("import json, os, resource, sys; from raysweep.features.__main__ import main; status = main(sys.argv[1:]); "
         "usage = resource.getrusage(resource.RUSAGE_SELF); open(os.environ['RAYSWEEP_BENCH_USAGE'], 'w').write("
         "json.dumps([usage.ru_maxrss, usage.ru_utime + usage.ru_stime])); sys.exit(status)")


def measure(args: list[str], scratch: Path) -> dict:
    """Run ``python -m raysweep.features ARGS`` in a subprocess: wall and CPU seconds, peak RSS (GiB), summary."""
    usage_file = scratch / "usage.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                          env={**os.environ, "RAYSWEEP_BENCH_USAGE": str(usage_file)})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"python -m raysweep.features {' '.join(args)} failed:\n{done.stderr}")
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    max_rss_kib, cpu_seconds = json.loads(usage_file.read_text())
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "peak_rss_gib": round(max_rss_kib / 2**20, 2), "summary": summary}


def write_mpd_shaped_dataset(root: Path, n_playlists: int, n_tracks: int = MPD_TRACKS, profiles: int = 17,
                             seed: int = 0) -> int:
    """Write playlists/, tracks/, playlist_tracks/ of MPD shape with NumPy; returns the number of entries."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(48), 0.8, n_playlists)), 5, 250).astype(np.int64)
    for name in ("playlists", "tracks", "playlist_tracks"):
        (root / name).mkdir(parents=True)
    pq.write_table(pa.table({"pid": np.arange(n_playlists, dtype=np.int64),
                             "num_tracks": lengths}), root / "playlists" / "part-0.parquet")
    pq.write_table(pa.table({"track_id": np.arange(n_tracks, dtype=np.int64)}), root / "tracks" / "part-0.parquet")
    catalogue = n_tracks // profiles
    global_rank = rng.permutation(n_tracks)
    profile = rng.integers(profiles, size=n_playlists)
    chunk = 50_000  # playlists per part file, to bound the generator's memory
    for part, first in enumerate(range(0, n_playlists, chunk)):
        pid = np.repeat(np.arange(first, min(first + chunk, n_playlists)), lengths[first:first + chunk])
        pos = np.arange(len(pid)) - np.repeat(np.cumsum(lengths[first:first + chunk]) - lengths[first:first + chunk],
                                              lengths[first:first + chunk])
        # rank = size * u**2: P(rank) ~ rank**-1/2, a long tail of rarely used tracks
        u = rng.random(len(pid))
        own = rng.random(len(pid)) < 0.7
        in_catalogue = profile[pid] * catalogue + (catalogue * u ** 2).astype(np.int64)
        anywhere = global_rank[(n_tracks * u ** 2).astype(np.int64)]
        track_id = np.where(own, in_catalogue, anywhere)
        pq.write_table(pa.table({"pid": pid, "pos": pos.astype(np.int32), "track_id": track_id}),
                       root / "playlist_tracks" / f"part-{part:04d}.parquet")
    return int(lengths.sum())


def bench_generated(playlists: int, scratch: Path) -> dict:
    from raysweep.ingest import ingest
    from raysweep.synth import generate

    start = time.perf_counter()
    generate(scratch / "mpd", playlists, seed=0)
    ingest(scratch / "mpd" / "data", scratch / "dataset")
    prepared = time.perf_counter() - start
    audio = measure(["audio", "--dataset", str(scratch / "dataset"), "--out", str(scratch / "audio.parquet"),
                     "--table", str(scratch / "mpd" / "track_audio_features.parquet")], scratch)
    rerun = measure(["audio", "--dataset", str(scratch / "dataset"), "--out", str(scratch / "audio.parquet")],
                    scratch)
    cooc = measure(["cooccurrence", "--dataset", str(scratch / "dataset"), "--out", str(scratch / "cooc.parquet"),
                    "--dim", "32"], scratch)
    return {"playlists": playlists, "generate_and_ingest_seconds": round(prepared, 1),
            "audio_from_table": audio, "audio_from_cache": rerun, "cooccurrence_dim32": cooc}


def bench_mpd_shape(playlists: int, scratch: Path) -> dict:
    start = time.perf_counter()
    entries = write_mpd_shaped_dataset(scratch / "mpd_shape", playlists)
    written = time.perf_counter() - start
    cooc = measure(["cooccurrence", "--dataset", str(scratch / "mpd_shape"), "--out",
                    str(scratch / "mpd_shape_cooc.parquet"), "--dim", "32"], scratch)
    return {"playlists": playlists, "tracks": MPD_TRACKS, "entries": entries,
            "write_dataset_seconds": round(written, 1), "cooccurrence_dim32": cooc}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="100,000 generated and 1,000,000 MPD-shaped playlists")
    parser.add_argument("--playlists", type=int, help="generated playlists (default 5,000; 100,000 with --full)")
    parser.add_argument("--mpd-shape", type=int, help="MPD-shaped playlists (default 0; 1,000,000 with --full)")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    playlists = args.playlists if args.playlists is not None else (100_000 if args.full else 5_000)
    mpd_shape = args.mpd_shape if args.mpd_shape is not None else (MPD_PLAYLISTS if args.full else 0)

    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        scratch = Path(args.keep) if args.keep else Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        figures = {"command": "python benchmarks/bench_features.py " + " ".join(argv or sys.argv[1:]),
                   "cpus": os.cpu_count(),
                   "api_requests_full_mpd": {"batched_100": math.ceil(MPD_TRACKS / 100), "one_per_track": MPD_TRACKS}}
        if playlists:
            figures["generated"] = bench_generated(playlists, scratch)
            print(json.dumps(figures["generated"], indent=2), flush=True)
        if mpd_shape:
            figures["mpd_shape"] = bench_mpd_shape(mpd_shape, scratch)
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
