"""``make demo``: the whole pipeline on the embedded default data set, end to end.

generate + ingest + audio features (cached after the first run) -> the sweep over all 4 models x k=2..100 on
every generated playlist -> finalize the winner -> print where every output is.

    python -m raysweep.demo [--playlists 20000] [--k-max 100] [--results results] [--name demo]
"""

from __future__ import annotations

import argparse
import sys
import time

from raysweep.default_data import DEFAULT_PLAYLISTS, build_default_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raysweep.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--playlists", type=int, default=DEFAULT_PLAYLISTS,
                        help="generated playlists (default %(default)s)")
    parser.add_argument("--k-max", type=int, default=100, help="largest k in the grid (default %(default)s)")
    parser.add_argument("--results", default="results", help="results folder (default %(default)s)")
    parser.add_argument("--name", default="demo", help="run name (default %(default)s)")
    args = parser.parse_args(argv)

    from raysweep import run_folder as rf
    from raysweep.finalize import finalize
    from raysweep.tune import SweepSettings, run_sweep

    started = time.perf_counter()
    data = build_default_data(args.playlists)
    print(f"[1/3] data: MPD-format slices in {data / 'mpd' / 'data'}, Parquet dataset in {data / 'dataset'}, "
          f"feature matrix {data / 'features.parquet'}", flush=True)
    run_dir = rf.RunFolder(run_sweep(SweepSettings(data / "features.parquet", fraction=1.0, k_max=args.k_max,
                                                   results=args.results, name=args.name)))
    print(f"[2/3] sweep: leaderboard {run_dir / rf.LEADERBOARD_CSV}, winner {run_dir / rf.WINNER}, "
          f"plots {run_dir / rf.PLOTS}", flush=True)
    finalize(run_dir.path, dataset=data / "dataset")
    print(f"[3/3] final: assignments, profiles and plots in {run_dir / rf.FINAL}", flush=True)
    print(f"\ndone in {time.perf_counter() - started:.0f} s. Read first: {run_dir / rf.FINAL / rf.FINAL_REPORT}")
    print(f"TensorBoard: tensorboard --logdir {run_dir.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
