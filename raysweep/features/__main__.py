"""Command line: ``python -m raysweep.features audio ...`` and ``python -m raysweep.features cooccurrence ...``.

Exit status: 0 done; 1 bad input (the message names the file or option); 3 stopped early with progress saved
(rate limit beyond --max-wait, Spotify unavailable): rerun the same command later; 4 Spotify refused access.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from raysweep.features.spotify import API_PREFIX, TOKEN_URL
from raysweep.storage import is_uri

EXIT_ERROR, EXIT_RESUMABLE, EXIT_ACCESS_DENIED = 1, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m raysweep.features",
                                     description="Build the playlist feature matrix the sweep clusters.")
    commands = parser.add_subparsers(dest="command", required=True)

    audio = commands.add_parser("audio", help="mean Spotify audio features per playlist",
                                description="Mean of 13 audio features over each playlist's tracks, from a "
                                            "feature table (--table) or the Spotify Web API (--spotify), "
                                            "through the track cache; with neither, from the cache alone.")
    audio.add_argument("--dataset", required=True, help="ingest output folder (playlists/, tracks/, ...)")
    audio.add_argument("--out", required=True, help="feature matrix to write (.parquet, local path or URI)")
    source = audio.add_mutually_exclusive_group()
    source.add_argument("--table", help="Parquet/CSV of track audio features: track_uri (or bare track ids in id "
                                        "or track_id) + the features; missing or constant ones are left out")
    source.add_argument("--spotify", action="store_true",
                        help="fetch missing tracks from the Web API (SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET)")
    audio.add_argument("--cache", help="SQLite track cache (default: audio_features_cache.sqlite beside --out; "
                                       "for an --out URI, in the working directory)")
    audio.add_argument("--columns", type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
                       help="comma-separated features to use, e.g. danceability,energy,valence "
                            "(default: all 13, or those the table has)")
    audio.add_argument("--min-coverage", type=float, default=0.5,
                       help="leave out playlists with a smaller share of tracks with features (default 0.5)")
    audio.add_argument("--max-wait", type=float, default=60.0,
                       help="longest rate-limit wait in seconds before saving and stopping (default 60)")
    audio.add_argument("--max-retries", type=int, default=5,
                       help="retries of a batch after a 5xx or connection error (default 5)")
    audio.add_argument("--api-url", default=API_PREFIX, help=argparse.SUPPRESS)  # a proxy, or the tests' fake
    audio.add_argument("--token-url", default=TOKEN_URL, help=argparse.SUPPRESS)

    cooc = commands.add_parser("cooccurrence", help="offline playlist embedding from shared tracks",
                               description="Playlist x track TF-IDF -> randomized truncated SVD -> "
                                           "L2-normalized vectors. Needs no API.")
    cooc.add_argument("--dataset", required=True, help="ingest output folder")
    cooc.add_argument("--out", required=True, help="feature matrix to write (.parquet, local path or URI)")
    cooc.add_argument("--dim", type=int, default=32, help="embedding dimension (default 32)")
    cooc.add_argument("--seed", type=int, default=0, help="random state of the SVD (default 0)")
    cooc.add_argument("--min-playlists", type=int, default=2,
                      help="drop tracks in fewer playlists (default 2)")
    return parser


def _audio(args) -> int:
    from raysweep.features.audio import AudioFeatureCache, build_audio_features, check_columns, dataset_track_uris, \
        default_cache_path
    from raysweep.features.spotify import AccessDenied, FetchStopped, fetch_audio_features, requests_needed, \
        spotify_client

    # An output URI has no local folder to keep the cache beside: the working directory holds it instead (the
    # same file name), so a rerun from the same place resumes from it.
    cache = args.cache or default_cache_path(Path.cwd() / "features.parquet" if is_uri(args.out) else args.out)
    check_columns(args.columns)  # before any fetching
    if args.spotify:
        _, uris = dataset_track_uris(args.dataset)
        client = spotify_client(api_prefix=args.api_url, token_url=args.token_url)
        with AudioFeatureCache(cache) as store:
            missing = len(store.missing(uris))
            print(f"{len(uris):,} tracks, {len(uris) - missing:,} cached, {missing:,} to fetch in "
                  f"{requests_needed(missing):,} requests", flush=True)
            try:
                report = fetch_audio_features(store, uris, client, max_wait=args.max_wait,
                                              max_retries=args.max_retries)
            except AccessDenied as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_ACCESS_DENIED
            except FetchStopped as exc:
                print(f"stopped: {exc}", file=sys.stderr)
                return EXIT_RESUMABLE
        print(f"fetched: {report.tracks_ok:,} with features, {report.tracks_null:,} null, "
              f"{report.requests:,} requests", flush=True)
    summary = build_audio_features(args.dataset, args.out, table=args.table, cache=cache,
                                   min_coverage=args.min_coverage, columns=args.columns)
    print(json.dumps(summary, indent=2))
    return 0


def _cooccurrence(args) -> int:
    from raysweep.features.cooccurrence import build_cooccurrence_embedding

    summary = build_cooccurrence_embedding(args.dataset, args.out, dim=args.dim, seed=args.seed,
                                           min_playlists=args.min_playlists)
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _audio(args) if args.command == "audio" else _cooccurrence(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
