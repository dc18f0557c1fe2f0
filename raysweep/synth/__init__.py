"""MPD-format data at any scale: slices, a track audio-features table and the planted taste profiles.

``python -m raysweep.synth --out DIR --playlists N [--slice-size 1000] [--profiles 17] [--seed 0]`` writes

- ``DIR/data/mpd.slice.<first>-<last>.json``: the real slice format, formatted like the real files (Python 2
  ``json.dumps(indent=4)``: 4-space indent, ``", "`` item separator, ASCII escapes), every invariant of
  :func:`raysweep.mpd.playlist_violations` holding;
- ``DIR/track_audio_features.parquet``: one row per track URI that occurs, with the 13 Spotify audio-feature
  fields in their real units, as if fetched earlier;
- ``DIR/planted_profiles.parquet``: pid -> planted taste profile and outlier kind (ground truth for tests only).

The model. A fixed catalog (independent of N, so the first slices of a small and a large data set are the
same) of genres, each owning artists, who own albums, which own tracks. Popularity is Zipf-like at every level,
so a few tracks appear in ~5% of playlists while most appear once or never. A taste profile is a mixture over
genres dominated by one; a playlist draws its own genre mix around its profile (Dirichlet), a length (truncated
log-normal: mean ~66, mode ~20, 8..250), a few favourite artists, then distinct tracks, redrawing it if it breaks
the dataset's selection rules (>= 3 artists, >= 2 albums), as the real sampling did. Audio features of a track
are its genre's centre plus artist and track noise, so profiles differ in mean features, but noisily. Titles come
from a vocabulary tied to the dominant genre, a generic one and a long compositional tail, in varied spelling.

Outliers. A share ``outlier_rate`` (default 1%) of the playlists are the kinds every clustering of the real MPD
meets, a quarter each: ``live`` (concert recordings), ``sounds`` (rain, nature or white-noise sleep sounds),
``spoken`` (comedy, audiobooks, spoken word) and ``short`` (5-7 tracks of one genre; the others have 8..250). The
first three draw from catalog genres of their own, which taste profiles never draw, with the audio features
Spotify reports for such tracks (liveness ~0.9; instrumentalness ~0.95, danceability ~0.1, valence ~0.03 at
-20..-35 dB; speechiness ~0.9 at erratic tempo).

Each slice has its own random stream (``SeedSequence(seed, spawn_key=(1, slice_index))``), so slices are generated
in parallel, independently of the worker count, and never held in memory together.

Modules, in the order a data set is made: ``parameters`` (every number of the model, the genre tables), ``catalog``
(the catalog and the taste profiles), ``names`` (ids, names and playlist titles), ``playlists`` (one slice's
playlists, drawn), ``slice_json`` (the slice file's text), ``audio`` (the audio-feature table), ``generator``
(:func:`generate`: the folder, slices in parallel) and ``cli`` (the command).
"""

from raysweep.dataset import AUDIO_FEATURES
from raysweep.synth.catalog import Catalog, Profiles, build_catalog, build_profiles
from raysweep.synth.cli import main
from raysweep.synth.generator import generate
from raysweep.synth.parameters import OUTLIER_KINDS, OUTLIER_RATE

__all__ = ["AUDIO_FEATURES", "OUTLIER_KINDS", "OUTLIER_RATE", "Catalog", "Profiles", "build_catalog",
           "build_profiles", "generate", "main"]
