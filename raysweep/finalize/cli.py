"""Command line: ``python -m raysweep.finalize --run RESULTS/RUN [--model M --k K] [--features F] [--dataset OUT]``."""

from __future__ import annotations

import argparse
import sys

from raysweep.finalize.pipeline import finalize

def main(argv: list[str] | None = None) -> int:
    """``python -m raysweep.finalize``: errors print one line naming what is wrong and exit with status 1."""
    parser = argparse.ArgumentParser(prog="python -m raysweep.finalize",
                                     description="Refit the sweep's winner on every playlist, assign each one a "
                                                 "cluster and describe the clusters (writes RUN/final/).")
    parser.add_argument("--run", required=True, help="the sweep's run folder (RESULTS/RUN)")
    parser.add_argument("--model", help="refit this model instead of the winner (with --k)")
    parser.add_argument("--k", type=int, help="number of clusters (with --model)")
    parser.add_argument("--features", help="feature matrix instead of the one in run.json (same playlists)")
    parser.add_argument("--dataset", help="ingest output folder: adds top names, artists and tracks per cluster")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    try:
        summary = finalize(args.run, model=args.model, k=args.k, features=args.features, dataset=args.dataset,
                           plots=not args.no_plots, quiet=args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"finalize: error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {summary['report']}")
    return 0
