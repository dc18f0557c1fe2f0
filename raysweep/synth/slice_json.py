"""The slice files' text, formatted as the real MPD's were: Python 2's ``json.dumps(indent=4)``.

That is a 4-space indent, ``", "`` as the item separator (so every line ends in a space before its newline) and
ASCII escapes, keys in the real files' order. The text is assembled from pieces rather than by :mod:`json`, because
each track's block is formatted once per slice and repeated wherever the track occurs.
"""

from __future__ import annotations

import json

import numpy as np

from raysweep.synth import names
from raysweep.synth.catalog import Catalog

GENERATED_ON = "2017-12-03 00:00:00.000000"  # fixed, so the same seed gives the same bytes

_TRACK_BLOCK = (', \n                    "artist_name": %s, \n                    "track_uri": "spotify:track:%s", '
                '\n                    "artist_uri": "spotify:artist:%s", \n                    "track_name": %s, '
                '\n                    "album_uri": "spotify:album:%s", \n                    "duration_ms": %d, '
                '\n                    "album_name": %s\n                }')


def track_blocks(catalog: Catalog, tracks: np.ndarray) -> list[str]:
    """The JSON text of each track after its ``pos`` (sorted unique ``tracks``), formatted like the real files."""
    seed = catalog.seed
    albums = catalog.track_album[tracks]
    artists = catalog.album_artist[albums]
    unique_artists, artist_of = np.unique(artists, return_inverse=True)
    unique_albums, album_of = np.unique(albums, return_inverse=True)
    encode = json.encoder.encode_basestring_ascii  # what Python 2's json.dumps wrote: ASCII with \u escapes
    artist_names = [encode(name) for name in names.artist_names(unique_artists, seed)]
    artist_ids = names.spotify_ids(1, unique_artists, seed)
    album_names = [encode(name) for name in names.album_names(unique_albums, seed)]
    album_ids = names.spotify_ids(2, unique_albums, seed)
    featured_artists = (artists + 7919) % catalog.artist_genre.size  # an unrelated artist, fixed per track
    track_names = [encode(name) for name in names.track_names(tracks, featured_artists, seed)]
    track_ids = names.spotify_ids(0, tracks, seed)
    durations = catalog.track_duration_ms[tracks].tolist()
    artist_of, album_of = artist_of.tolist(), album_of.tolist()
    return [_TRACK_BLOCK % (artist_names[artist_of[i]], track_ids[i], artist_ids[artist_of[i]], track_names[i],
                            album_ids[album_of[i]], durations[i], album_names[album_of[i]])
            for i in range(tracks.size)]


def slice_text(records: list[tuple], track_lists: list[np.ndarray], used: np.ndarray, blocks: list[str],
               first_pid: int, count: int) -> str:
    """The slice file's text: playlist ``records`` with their tracks, each track's block looked up in ``used``."""
    encode = json.encoder.encode_basestring_ascii
    parts = []
    for record, tracks in zip(records, track_lists):
        name, collaborative, pid, modified, n_tracks, n_albums, followers, edits, duration, n_artists, desc = record
        head = (f'        {{\n            "name": {encode(name)}, \n            "collaborative": "{collaborative}", '
                f'\n            "pid": {pid}, \n            "modified_at": {modified}, \n            "num_tracks": '
                f'{n_tracks}, \n            "num_albums": {n_albums}, \n            "num_followers": {followers}, '
                '\n            "tracks": [\n')
        positions = np.searchsorted(used, tracks).tolist()
        body = ", \n".join([f'                {{\n                    "pos": {pos}{blocks[at]}'
                            for pos, at in enumerate(positions)])
        tail = (f'\n            ], \n            "num_edits": {edits}, \n            "duration_ms": {duration}, '
                f'\n            "num_artists": {n_artists}')
        if desc is not None:
            tail += f', \n            "description": {encode(desc)}'
        parts.append(head + body + tail + "\n        }")
    return ('{\n    "info": {\n        "generated_on": "%s", \n        "slice": "%d-%d", \n        "version": "v1"'
            '\n    }, \n    "playlists": [\n%s\n    ]\n}' % (GENERATED_ON, first_pid, first_pid + count - 1,
                                                         ", \n".join(parts)))

