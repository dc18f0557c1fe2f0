"""The embedded default data set: generated MPD-format playlists run through ingest and features.

A new user's first ``python -m raysweep.tune`` or ``make demo`` needs no download: this module generates
MPD-format slices with :mod:`raysweep.synth`, ingests them with :mod:`raysweep.ingest`, computes the audio
feature matrix from the generator's track table, and caches all of it. The cache folder appears only when
complete (:func:`raysweep.storage.atomic_dir`), so an interrupted build is simply redone.
"""

from __future__ import annotations

import os
from pathlib import Path

from raysweep.storage import atomic_dir

DEFAULT_PLAYLISTS = 20_000  # the original study's 2% sample size
DEFAULT_PROFILES = 17  # the original study's winning k, planted as taste profiles
FORMAT_VERSION = 3  # bump when synth/ingest/features change their output, to rebuild caches


def cache_root() -> Path:
    """``$RAYSWEEP_CACHE`` if set, else ``~/.cache/raysweep``."""
    return Path(os.environ.get("RAYSWEEP_CACHE", Path.home() / ".cache" / "raysweep"))


def default_data_dir(playlists: int = DEFAULT_PLAYLISTS, seed: int = 0) -> Path:
    """Where the default data set of this size and seed lives (built or not)."""
    return cache_root() / f"mpd-synth-v{FORMAT_VERSION}-n{playlists}-p{DEFAULT_PROFILES}-s{seed}"


def build_default_data(playlists: int = DEFAULT_PLAYLISTS, seed: int = 0, quiet: bool = False) -> Path:
    """Build (once) and return the default data folder.

    It holds ``mpd/`` (slices, track audio features, planted profiles), ``dataset/`` (the ingest output)
    and ``features.parquet`` (the audio feature matrix).
    """
    from raysweep.features.audio import build_audio_features
    from raysweep.ingest import ingest
    from raysweep.synth import generate

    folder = default_data_dir(playlists, seed)
    if (folder / "features.parquet").exists():
        return folder
    if not quiet:
        print(f"building the default data set ({playlists:,} generated playlists) in {folder} ...", flush=True)
    with atomic_dir(folder) as tmp:
        generate(tmp / "mpd", playlists, profiles=DEFAULT_PROFILES, seed=seed)
        ingest(tmp / "mpd" / "data", tmp / "dataset")
        build_audio_features(tmp / "dataset", tmp / "features.parquet",
                             table=tmp / "mpd" / "track_audio_features.parquet", cache=tmp / "audio_cache.sqlite")
    return folder


def default_features(playlists: int = DEFAULT_PLAYLISTS, seed: int = 0, quiet: bool = False) -> Path:
    """Path of the default feature matrix, building the default data set first if needed."""
    return build_default_data(playlists, seed, quiet) / "features.parquet"
