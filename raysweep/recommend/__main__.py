"""Command line.

``python -m raysweep.recommend --run RUN --dataset OUT (--pid P | --tracks URI,... | --title T | --playlist URL)
[--n 500] [--method M] [--json]`` prints ranked tracks; ``python -m raysweep.recommend evaluate --run RUN
--dataset OUT`` runs the offline evaluation. Errors print one line naming the option or file at fault and exit
with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from raysweep.recommend.methods import DEFAULT_METHOD, METHODS

TRACK_FEATURES_HELP = "track audio-feature table (Parquet/CSV) for the study method"


def _add_run_and_dataset(parser: argparse.ArgumentParser, run_help: str) -> None:
    """The two inputs of both commands: the run folder and the ingest output its features came from."""
    parser.add_argument("--run", required=True, help=run_help)
    parser.add_argument("--dataset", required=True, help="the ingest output the features came from")


def _recommend_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m raysweep.recommend",
                                     description="Continue a playlist from a finalized run's clusters "
                                                 "(`python -m raysweep.recommend evaluate -h`: the offline "
                                                 "evaluation).")
    _add_run_and_dataset(parser, "finalized sweep run folder (RESULTS/RUN with final/)")
    seed = parser.add_mutually_exclusive_group()
    seed.add_argument("--pid", type=int, help="a playlist of the dataset (its tracks and title)")
    seed.add_argument("--tracks", help="comma-separated track URIs (spotify:track:...)")
    seed.add_argument("--playlist", help="a public Spotify playlist URL, URI or id, read through spotipy "
                                         "(SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET)")
    parser.add_argument("--title", help="playlist title: alone, served from the clusters' names; with --tracks, "
                                        "used when no track is known")
    parser.add_argument("--n", type=int, default=500, help="recommendations (default 500)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                        help=f"default {DEFAULT_METHOD}")
    parser.add_argument("--track-features", help=TRACK_FEATURES_HELP)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--api-url", help=argparse.SUPPRESS)  # the tests' fake Spotify
    parser.add_argument("--token-url", help=argparse.SUPPRESS)
    return parser


def _evaluate_parser() -> argparse.ArgumentParser:
    from raysweep.recommend.split import CATEGORIES

    parser = argparse.ArgumentParser(prog="python -m raysweep.recommend evaluate",
                                     description="Hold out playlists in the RecSys Challenge 2018's "
                                                 f"{len(CATEGORIES)} seed categories, recommend 500 tracks for "
                                                 "each with every method, score them as the challenge did, and "
                                                 "compare the sweep's winner with its Pareto front. Writes "
                                                 "RUN/recommend/.")
    _add_run_and_dataset(parser, "sweep run folder (run.json, winner.json)")
    parser.add_argument("--per-category", type=int, help="held-out playlists per category (default: 1,000, "
                                                         "or 2%% of the playlists when fewer)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)} (default all)")
    parser.add_argument("--configs", help="further clusterings to evaluate, e.g. kmeans:5,gmm:8")
    parser.add_argument("--winner-only", action="store_true", help="evaluate the winner, not its Pareto front")
    parser.add_argument("--track-features", help=TRACK_FEATURES_HELP)
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    return parser


def _configs(text: str | None) -> list[tuple[str, int]]:
    """``kmeans:5,gmm:8`` -> [("kmeans", 5), ("gmm", 8)]; ValueError naming --configs otherwise."""
    from raysweep.models import MODEL_NAMES

    configs = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        model, _, k = item.strip().partition(":")
        if model not in MODEL_NAMES or not k.isdigit() or int(k) < 2:
            raise ValueError(f"--configs {item.strip()!r}: expected MODEL:K with MODEL one of "
                             f"{', '.join(MODEL_NAMES)} and K >= 2")
        configs.append((model, int(k)))
    return configs


def _print(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    where = f" (cluster {', '.join(map(str, result.clusters))})" if result.clusters else ""
    print(f"# {result.method}{where}: {len(result.table)} tracks from {result.seed_tracks} seed tracks"
          + (f", title {result.title!r}" if result.title else ""))
    for row in result.table.itertuples():
        print(f"{row.rank}\t{row.track_uri}\t{row.track_name}\t{row.artist_name}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["evaluate"]:
            from raysweep.recommend.evaluate import EvaluationSettings, evaluate

            args = _evaluate_parser().parse_args(argv[1:])
            methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
            summary = evaluate(args.run, args.dataset, EvaluationSettings(
                per_category=args.per_category, seed=args.seed, methods=methods, pareto=not args.winner_only,
                configs=_configs(args.configs), track_features=args.track_features, plots=not args.no_plots))
            print(f"report: {summary['report']}")
            return 0
        from raysweep.recommend.recommender import Recommender

        args = _recommend_parser().parse_args(argv)
        client = None
        if args.playlist is not None:
            from raysweep.recommend.spotify_playlist import playlist_client

            client = playlist_client(api_url=args.api_url, token_url=args.token_url)
        recommender = Recommender.load(args.run, args.dataset, track_features=args.track_features)
        tracks = None if args.tracks is None else [uri.strip() for uri in args.tracks.split(",") if uri.strip()]
        result = recommender.recommend(pid=args.pid, tracks=tracks, title=args.title, playlist=args.playlist,
                                       n=args.n, method=args.method, client=client)
    except (ValueError, FileNotFoundError) as exc:
        print(f"recommend: error: {exc}", file=sys.stderr)
        return 1
    if result.unknown:
        print(f"recommend: skipped {len(result.unknown)} unknown track URIs: {', '.join(result.unknown[:5])}"
              + (", ..." if len(result.unknown) > 5 else ""), file=sys.stderr)
    _print(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
