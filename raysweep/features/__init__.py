"""Playlist features: the matrix the sweep clusters, from two sources.

- :mod:`raysweep.features.audio`: the mean of 13 Spotify audio features over a playlist's tracks, from a
  feature table or from the Web API (:mod:`raysweep.features.spotify`), through one SQLite track cache
  (:mod:`raysweep.features.audio_cache`).
- :mod:`raysweep.features.cooccurrence`: an offline embedding from which tracks playlists share.

Both write :mod:`raysweep.feature_matrix` files. Command line: ``python -m raysweep.features {audio,cooccurrence}``.
"""
