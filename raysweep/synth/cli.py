"""The command ``python -m raysweep.synth --out DIR --playlists N``: its options are :func:`generate`'s."""

from __future__ import annotations

import argparse
import json
import sys

from raysweep.synth.generator import generate
from raysweep.synth.parameters import OUTLIER_RATE


def main(argv: list[str] | None = None) -> int:
    description = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package docstring's first paragraph
    parser = argparse.ArgumentParser(prog="python -m raysweep.synth", description=description)
    parser.add_argument("--out", required=True, help="new folder to write (must not exist or be empty)")
    parser.add_argument("--playlists", type=int, required=True, help="number of playlists")
    parser.add_argument("--slice-size", type=int, default=1000, help="playlists per slice file (default 1000)")
    parser.add_argument("--profiles", type=int, default=17, help="planted taste profiles (default 17)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--outlier-rate", type=float, default=OUTLIER_RATE,
                        help=f"share of outlier playlists: live, sounds, spoken, short (default {OUTLIER_RATE})")
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, args.playlists, args.slice_size, args.profiles, args.seed, args.workers,
                           args.outlier_rate)
    except (ValueError, FileExistsError) as exc:
        parser.exit(2, f"synth: error: {exc}\n")
    print(json.dumps(summary))
    return 0

