"""raysweep: a Ray Tune search over clustering models for the Spotify Million Playlist Dataset.

Stages, one module each, in data-flow order: ``synth`` (MPD-format generator), ``ingest`` (slices to Parquet),
``features`` (playlist feature matrix), ``tune`` (the sweep), ``finalize`` (refit the winner).
Shared pieces: ``models``, ``scores``, ``selection``, ``storage``, ``plots``.
"""

__version__ = "0.1.0"
