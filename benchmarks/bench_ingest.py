"""Benchmark of the data layer (issue 2): generate MPD-format slices, then ingest them to Parquet.

Each stage runs as its own command (``python -m raysweep.synth``, ``python -m raysweep.ingest``) in a subprocess,
so the figures are what a user gets: wall seconds, CPU seconds of the stage and its workers (``os.wait4``), peak
RSS of its largest process (``ru_maxrss``) and of the whole process tree (``/proc``, sampled every 0.1 s). Ingest
runs on the first tenth of the slices and on all of them: its peak RSS should not grow with the slice count.

    python benchmarks/bench_ingest.py            # quick: 10 slices (10,000 playlists)
    python benchmarks/bench_ingest.py --full     # 100 slices (100,000 playlists), the issue's benchmark
    python benchmarks/bench_ingest.py --slices 30 [--keep DIR]

Figures: JSON bytes, Parquet bytes and their ratio, ingest MB/s of JSON per core (wall, and per CPU-second, which
load on a shared machine does not inflate), and generation time with a linear extrapolation to 1M playlists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MB = 1e6
GIB = 1 << 30


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 for processes that are gone)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (OSError, StopIteration):
            continue
    return total


def run_stage(args: list[str]) -> dict:
    """Run ``python -m ARGS``: wall and CPU seconds, peak RSS (largest process and whole tree), its summary."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak_tree = [0]
    finished = threading.Event()

    def sample() -> None:
        while not finished.wait(0.1):
            peak_tree[0] = max(peak_tree[0], _tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    finished.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(args)} failed:\n{stderr}")
    return {"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_largest_gib": usage.ru_maxrss * 1024 / GIB, "peak_rss_tree_gib": peak_tree[0] / GIB,
            "summary": json.loads(stdout.strip().splitlines()[-1])}


def bench(slices: int, scratch: Path, workers: int) -> dict:
    playlists = slices * 1000
    generated = run_stage(["raysweep.synth", "--out", str(scratch / "mpd"), "--playlists", str(playlists),
                           "--workers", str(workers)])
    data = scratch / "mpd" / "data"
    tenth = scratch / "tenth"
    tenth.mkdir()
    for path in sorted(data.iterdir(), key=lambda p: int(p.name.split(".")[2].split("-")[0]))[:max(1, slices // 10)]:
        (tenth / path.name).symlink_to(path)
    small = run_stage(["raysweep.ingest", str(tenth), str(scratch / "dataset_tenth"), "--workers", str(workers)])
    full = run_stage(["raysweep.ingest", str(data), str(scratch / "dataset"), "--workers", str(workers)])
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
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="100 slices (100,000 playlists)")
    parser.add_argument("--slices", type=int, default=None, help="number of 1000-playlist slices (default 10)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes per stage (default: all)")
    parser.add_argument("--keep", default=None, help="folder to keep the data in (default: a temporary one)")
    args = parser.parse_args(argv)
    slices = args.slices or (100 if args.full else 10)
    if args.keep:
        scratch = Path(args.keep)
        scratch.mkdir(parents=True, exist_ok=False)
        figures = bench(slices, scratch, args.workers)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_ingest.") as folder:
            figures = bench(slices, Path(folder), args.workers)
    print(f"command: python benchmarks/bench_ingest.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(json.dumps(figures, indent=2))
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
