"""Benchmark of the data layer (issue 2): generate MPD-format slices, then ingest them to Parquet.

Each stage runs as its own command (``python -m raysweep.synth``, ``python -m raysweep.ingest``) in a subprocess
under ``_measure.measure``, so the figures are what a user gets: wall seconds, CPU seconds of the stage's whole
process tree (its workers included), peak RSS of its largest process and of the whole tree (sampled). Ingest
runs on the first tenth of the slices and on all of them: its peak RSS should not grow with the slice count.
The figures are written as a record under ``benchmarks/records/ingest/``.

    python benchmarks/bench_ingest.py            # quick: 10 slices (10,000 playlists)
    python benchmarks/bench_ingest.py --full     # 100 slices (100,000 playlists), the issue's benchmark
    python benchmarks/bench_ingest.py --slices 30 [--keep DIR] [--drop-caches]

The JSON is generated just before it is ingested, so ingest reads it from the page cache unless ``--drop-caches``
(root only: drops the page cache of the whole machine before each ingest) makes it read the disk; the record says
which. Figures: JSON bytes, Parquet bytes and their ratio, ingest MB/s of JSON per core (wall, and per CPU-second,
which load on a shared machine does not inflate), and generation time with a linear extrapolation to 1M playlists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _measure import GIB, measure
from _records import write_record

MB = 1e6
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def run_stage(args: list[str]) -> tuple[dict, object]:
    """Run ``python -m ARGS`` measured: (wall, CPU, peak RSS of the largest process and of the tree, summary; its
    Measurement)."""
    measured = measure([sys.executable, "-m", *args], capture_output=True, interval=0.1, check=False)
    if measured.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(args)} failed:\n{measured.stderr}")
    return {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s,
            "peak_rss_largest_gib": measured.peak_rss_largest_bytes / GIB,
            "peak_rss_tree_gib": measured.peak_rss_bytes / GIB,
            "summary": json.loads(measured.stdout.strip().splitlines()[-1])}, measured


def drop_page_cache() -> None:
    """Write back dirty pages, then drop the page cache, so the next stage reads its input from disk (root only)."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError as error:
        raise SystemExit(f"--drop-caches: cannot write {DROP_CACHES} ({error.strerror}): it needs root") from None


def bench(slices: int, scratch: Path, workers: int, drop_caches: bool = False) -> tuple[dict, dict]:
    """Generate ``slices`` slices, ingest a tenth of them and all of them; (figures, {stage: Measurement})."""
    playlists = slices * 1000
    generated, generate_run = run_stage(["raysweep.synth", "--out", str(scratch / "mpd"), "--playlists",
                                         str(playlists), "--workers", str(workers)])
    data = scratch / "mpd" / "data"
    tenth = scratch / "tenth"
    tenth.mkdir()
    for path in sorted(data.iterdir(), key=lambda p: int(p.name.split(".")[2].split("-")[0]))[:max(1, slices // 10)]:
        (tenth / path.name).symlink_to(path)
    if drop_caches:
        drop_page_cache()
    small, small_run = run_stage(["raysweep.ingest", str(tenth), str(scratch / "dataset_tenth"), "--workers",
                                  str(workers)])
    if drop_caches:
        drop_page_cache()
    full, full_run = run_stage(["raysweep.ingest", str(data), str(scratch / "dataset"), "--workers", str(workers)])
    json_bytes = full["summary"]["json_bytes"]
    parquet_bytes = full["summary"]["parquet_bytes"]
    return {
        "slices": slices, "playlists": playlists, "workers": workers, "cores": os.cpu_count(),
        "track_entries": full["summary"]["track_entries"], "distinct_tracks": full["summary"]["tracks"],
        "json_bytes": json_bytes, "parquet_bytes": parquet_bytes, "json_to_parquet": json_bytes / parquet_bytes,
        "generate": {key: generated[key] for key in generated if key != "summary"},
        "generate_1m_estimate_min": generated["wall_s"] * 1_000_000 / playlists / 60,
        "generate_1m_estimate_cpu_bound_min": generated["cpu_s"] * 1_000_000 / playlists / 60 / workers,
        "ingest": {key: full[key] for key in full if key != "summary"},
        "ingest_mb_s_per_core_wall": json_bytes / MB / full["wall_s"] / workers,
        "ingest_mb_s_per_cpu_second": json_bytes / MB / full["cpu_s"],
        "ingest_tenth": {"slices": small["summary"]["files"], **{key: small[key] for key in small if key != "summary"}},
        "page_cache": "dropped before each ingest" if drop_caches else "warm: the JSON was generated just before",
    }, {"generate": generate_run, "ingest_tenth": small_run, "ingest": full_run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="100 slices (100,000 playlists)")
    parser.add_argument("--slices", type=int, default=None, help="number of 1000-playlist slices (default 10)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes per stage (default: all)")
    parser.add_argument("--keep", default=None, help="folder to keep the data in (default: a temporary one)")
    parser.add_argument("--drop-caches", action="store_true",
                        help="drop the machine's page cache before each ingest, so it reads the disk (root only)")
    args = parser.parse_args(argv)
    slices = args.slices or (100 if args.full else 10)
    if args.keep:
        scratch = Path(args.keep)
        scratch.mkdir(parents=True, exist_ok=False)
        figures, measured = bench(slices, scratch, args.workers, args.drop_caches)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_ingest.") as folder:
            figures, measured = bench(slices, Path(folder), args.workers, args.drop_caches)
    record = write_record("ingest", f"ingest-{slices}slices", figures, measurements=measured)
    print(f"command: python benchmarks/bench_ingest.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(json.dumps(figures, indent=2))
    print(f"record: {record}")
    g, i, t = figures["generate"], figures["ingest"], figures["ingest_tenth"]
    print(f"\n{slices} slices, {figures['playlists']:,} playlists, {figures['track_entries']:,} entries, "
          f"{figures['workers']} workers on {figures['cores']} cores")
    print(f"JSON {figures['json_bytes'] / MB:,.0f} MB -> Parquet {figures['parquet_bytes'] / MB:,.1f} MB "
          f"(1/{figures['json_to_parquet']:.1f})")
    print(f"ingest: {i['wall_s']:.1f} s wall, {i['cpu_s']:.1f} s CPU, {figures['ingest_mb_s_per_core_wall']:.0f} MB/s "
          f"per core (wall), {figures['ingest_mb_s_per_cpu_second']:.0f} MB/s per CPU-second; peak RSS "
          f"{i['peak_rss_largest_gib']:.2f} GiB largest process, {i['peak_rss_tree_gib']:.2f} GiB all processes "
          f"(vs {t['peak_rss_largest_gib']:.2f} / {t['peak_rss_tree_gib']:.2f} GiB on {t['slices']} slices)")
    print(f"generate: {g['wall_s']:.1f} s wall, {g['cpu_s']:.1f} s CPU; 1M playlists estimated "
          f"{figures['generate_1m_estimate_min']:.0f} min at this wall rate "
          f"({figures['generate_1m_estimate_cpu_bound_min']:.0f} min if CPU-bound on {figures['workers']} idle cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
