"""One slice's playlists, drawn: each one's genre mix, length, tracks, title and the rest of its fields.

A playlist follows its taste profile: it draws its own genre mix around the profile's (Dirichlet), a length
(truncated log-normal: mean ~66, mode ~20, 8..250), a few favourite artists, then distinct tracks, redrawing them
if they break the dataset's selection rules (>= 3 artists, >= 2 albums), as the real sampling did. An outlier
draws from one genre: its kind's own (``live``, ``sounds``, ``spoken``) or, for ``short`` (5-7 tracks), one of its
profile's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysweep.mpd import MAX_TRACKS, MIN_ALBUMS, MIN_ARTISTS
from raysweep.synth.catalog import Catalog, Profiles
from raysweep.synth.names import playlist_title
from raysweep.synth.parameters import (ALL_GENRES, DAY, FAVOURITE_SHARE, FAVOURITE_SPAN, KIND_GENRES, LAST_DAY,
                                       LENGTH_LOG_MEAN, LENGTH_LOG_SD, OUTLIER_KINDS, PLAYLIST_DIRICHLET,
                                       SHORT_LENGTHS)


@dataclass
class SlicePlaylists:
    """The playlists of one slice.

    Attributes
    ----------
    records : list of tuple
        Per playlist, its fields in the order :func:`raysweep.synth.slice_json.slice_text` writes them: name,
        collaborative, pid, modified_at, num_tracks, num_albums, num_followers, num_edits, duration_ms,
        num_artists, description (None for none).
    track_lists : list of ndarray of shape (num_tracks,)
        Per playlist, its distinct catalog track indices in playlist order.
    profile : ndarray of shape (n_playlists,)
        The taste profile drawn for each playlist.
    outlier : ndarray of shape (n_playlists,)
        0 for none, else 1 + the kind's index in ``OUTLIER_KINDS``.
    """

    records: list[tuple]
    track_lists: list[np.ndarray]
    profile: np.ndarray
    outlier: np.ndarray


def draw_playlists(rng: np.random.Generator, catalog: Catalog, profiles: Profiles, first_pid: int, count: int,
                   outlier_rate: float) -> SlicePlaylists:
    """Draw ``count`` playlists, pids ``first_pid`` onwards, from the slice's random stream ``rng``."""
    records, track_lists = [], []
    profile_of = rng.choice(len(profiles.prevalence), count, p=profiles.prevalence)
    outlier_of = np.where(rng.random(count) < outlier_rate, 1 + rng.integers(len(OUTLIER_KINDS), size=count), 0)
    short = 1 + OUTLIER_KINDS.index("short")
    for offset in range(count):
        profile, outlier = int(profile_of[offset]), int(outlier_of[offset])
        mix = rng.dirichlet(PLAYLIST_DIRICHLET * profiles.genre_weights[profile] + 1e-3)
        mix_cdf = np.cumsum(mix)  # over the profiles' genres only: they never draw an outlier genre
        dominant = int(np.argmax(mix))
        if outlier == short:  # one genre, so its means are those of a handful of similar tracks
            dominant = min(int(np.searchsorted(mix_cdf, rng.random(), side="right")), mix.size - 1)
        elif outlier:
            dominant = int(rng.choice(KIND_GENRES[outlier - 1]))
        if outlier:
            mix_cdf = _one_genre_cdf(dominant)
        while True:  # the MPD kept only playlists meeting its selection rules; so do we
            tracks = _draw_tracks(rng, catalog, mix_cdf, _draw_length(rng, outlier == short))
            albums = catalog.track_album[tracks]
            n_albums = np.unique(albums).size
            n_artists = np.unique(catalog.album_artist[albums]).size
            if n_albums >= MIN_ALBUMS and n_artists >= MIN_ARTISTS:
                break
        name, description = playlist_title(rng, dominant)
        followers = int(min(rng.zipf(2.5), 100_000))
        edits = 1 + int(rng.negative_binomial(2, 2 / (2 + tracks.size / 4)))
        modified = LAST_DAY - DAY * int(min(rng.exponential(420), 2860))
        collaborative = "true" if rng.random() < 0.023 else "false"
        records.append((name, collaborative, first_pid + offset, modified, tracks.size, n_albums, followers,
                        edits, int(catalog.track_duration_ms[tracks].sum(dtype=np.int64)), n_artists, description))
        track_lists.append(tracks)
    return SlicePlaylists(records, track_lists, profile_of, outlier_of)


def _draw_tracks(rng: np.random.Generator, catalog: Catalog, mix_cdf: np.ndarray, length: int) -> np.ndarray:
    """``length`` distinct tracks: some by the playlist's favourite artists, the rest from genres of its mix."""
    favourites = catalog.track_artist(_genre_draws(rng, catalog, mix_cdf, 1 + rng.poisson(length / FAVOURITE_SPAN)))
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < length:
        draws = length - chosen.size + 4 + length // 4
        tracks = _genre_draws(rng, catalog, mix_cdf, draws)
        by_favourite = rng.random(draws) < FAVOURITE_SHARE
        artists = favourites[rng.integers(favourites.size, size=int(by_favourite.sum()))]
        tracks[by_favourite] = np.searchsorted(catalog.artist_cdf, artists + rng.random(artists.size))
        candidates = np.concatenate([chosen, tracks])
        _, first = np.unique(candidates, return_index=True)
        chosen = candidates[np.sort(first)][:length]
    return chosen


def _genre_draws(rng: np.random.Generator, catalog: Catalog, mix_cdf: np.ndarray, draws: int) -> np.ndarray:
    genres = np.minimum(np.searchsorted(mix_cdf, rng.random(draws), side="right"), mix_cdf.size - 1)
    return np.searchsorted(catalog.track_cdf, genres + rng.random(draws))


def _draw_length(rng: np.random.Generator, short: bool) -> int:
    if short:
        return int(rng.integers(SHORT_LENGTHS[0], SHORT_LENGTHS[1] + 1))
    while True:
        length = int(np.rint(np.exp(rng.normal(LENGTH_LOG_MEAN, LENGTH_LOG_SD))))
        if SHORT_LENGTHS[1] < length <= MAX_TRACKS:
            return length


def _one_genre_cdf(genre: int) -> np.ndarray:
    """A mix CDF from which ``_genre_draws`` (searching on the right) draws only ``genre``."""
    cdf = np.zeros(len(ALL_GENRES))
    cdf[genre:] = 1.0
    return cdf

