"""The catalog every playlist draws from (genres own artists, who own albums, which own tracks) and the profiles.

The catalog depends only on the seed, never on the number of playlists, so the first slices of a small and a large
data set are the same. Popularity is Zipf-like at every level: a few tracks appear in ~5% of playlists while most
appear once or never. A taste profile is a mixture over the profiles' genres, dominated by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysweep.synth.parameters import (ALL_GENRES, ARTIST_SHIFT, ARTIST_ZIPF, ARTISTS_PER_GENRE, CATALOG_SEED,
                                       GENRE_SHARE, LENGTH_S, N_PROFILE_GENRES, PROFILE_DOMINANT, PROFILE_SEED)

@dataclass
class Catalog:
    """The tracks every playlist draws from, as flat arrays (names and URIs are derived from the indices).

    Attributes
    ----------
    seed : int
    artist_genre : ndarray of shape (n_artists,), int16
    album_artist : ndarray of shape (n_albums,), int32
    track_album : ndarray of shape (n_tracks,), int32
    track_duration_ms : ndarray of shape (n_tracks,), int32
    track_cdf : ndarray of shape (n_tracks,), float64
        Genre-blocked cumulative popularity: genre g's tracks (contiguous) cover ``(g, g + 1]``, so
        ``searchsorted(track_cdf, g + u)`` draws a track of genre g for ``u ~ U(0, 1)``.
    artist_cdf : ndarray of shape (n_tracks,), float64
        Artist-blocked cumulative popularity of an artist's own tracks: artist a's cover ``(a, a + 1]``.
    artist_offsets : ndarray of shape (n_artists, 9), float32
        Standard-normal artist effects on the 7 probability features, tempo and loudness.
    """

    seed: int
    artist_genre: np.ndarray
    album_artist: np.ndarray
    track_album: np.ndarray
    track_duration_ms: np.ndarray
    track_cdf: np.ndarray
    artist_cdf: np.ndarray
    artist_offsets: np.ndarray

    def track_artist(self, tracks: np.ndarray) -> np.ndarray:
        return self.album_artist[self.track_album[tracks]]


def build_catalog(seed: int = 0) -> Catalog:
    """The catalog of a seed: genres own artists (Zipf popularity), artists own albums, albums own tracks."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(CATALOG_SEED,)))
    n_genres = len(ALL_GENRES)
    artists_per_genre = ARTISTS_PER_GENRE
    artist_genre = np.repeat(np.arange(n_genres, dtype=np.int16), artists_per_genre)
    n_artists = artist_genre.size
    artist_rank = np.arange(n_artists) - np.repeat(np.cumsum(artists_per_genre) - artists_per_genre,
                                                   artists_per_genre)
    albums_per_artist = np.minimum(rng.geometric(0.45, n_artists), 15)
    album_artist = np.repeat(np.arange(n_artists, dtype=np.int32), albums_per_artist)
    album_rank = np.arange(album_artist.size) - np.repeat(np.cumsum(albums_per_artist) - albums_per_artist,
                                                          albums_per_artist)
    # Singles, EPs and LPs.
    kind = rng.choice(3, album_artist.size, p=[.35, .15, .5])
    tracks_per_album = np.where(kind == 0, 1, np.where(kind == 1, rng.integers(3, 7, kind.size),
                                                       rng.integers(8, 17, kind.size)))
    track_album = np.repeat(np.arange(album_artist.size, dtype=np.int32), tracks_per_album)
    track_rank = np.arange(track_album.size) - np.repeat(np.cumsum(tracks_per_album) - tracks_per_album,
                                                         tracks_per_album)
    track_artist = album_artist[track_album]
    # Within an artist, earlier albums and earlier tracks are the hits; the artist's total is its Zipf weight.
    within = (album_rank[track_album] + 1.0) ** -1.0 * (track_rank + 1.0) ** -0.6
    within /= np.bincount(track_artist, weights=within, minlength=n_artists)[track_artist]
    artist_cdf = _blocked_cdf(within, track_artist, n_artists)
    weight = within * (artist_rank[track_artist] + ARTIST_SHIFT) ** -ARTIST_ZIPF
    track_genre = artist_genre[track_artist]
    track_cdf = _blocked_cdf(weight, track_genre, n_genres)
    seconds = np.exp(rng.normal(np.log(LENGTH_S[track_genre]), 0.28))
    duration_ms = np.clip(np.rint(seconds * 1000), 30_000, 1_200_000).astype(np.int32)
    offsets = rng.standard_normal((n_artists, 9)).astype(np.float32)
    return Catalog(seed, artist_genre, album_artist, track_album, duration_ms, track_cdf, artist_cdf, offsets)


def _blocked_cdf(weight: np.ndarray, block: np.ndarray, n_blocks: int) -> np.ndarray:
    """Cumulative ``weight`` normalized within contiguous blocks, block b spanning ``(b, b + 1]``."""
    total = np.bincount(block, weights=weight, minlength=n_blocks)
    start = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    cdf = block + (np.cumsum(weight) - start[block]) / total[block]
    cdf[np.cumsum(np.bincount(block, minlength=n_blocks)) - 1] = np.arange(1, n_blocks + 1)  # exact ends
    return cdf


@dataclass
class Profiles:
    """Planted taste profiles.

    Attributes
    ----------
    genre_weights : ndarray of shape (n_profiles, n_profile_genres), rows sum to 1
        Weights of the profiles' genres (the first of the catalog; the outlier genres get none).
    prevalence : ndarray of shape (n_profiles,), sums to 1
    """

    genre_weights: np.ndarray
    prevalence: np.ndarray


def build_profiles(n_profiles: int, seed: int = 0) -> Profiles:
    """Profile i is dominated by the i-th most popular genre (cycling), plus one to three random others.

    Prevalence follows the dominant genre's popularity, with noise, so pop and rap profiles are the largest.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PROFILE_SEED,)))
    n_genres = N_PROFILE_GENRES
    by_popularity = np.argsort(-GENRE_SHARE, kind="stable")
    dominant = by_popularity[np.arange(n_profiles) % n_genres]
    weights = np.tile(0.04 * GENRE_SHARE, (n_profiles, 1))
    for profile, genre in enumerate(dominant):
        others = rng.choice(np.delete(np.arange(n_genres), genre), rng.integers(1, 4), replace=False)
        weights[profile, genre] += PROFILE_DOMINANT
        weights[profile, others] += (0.96 - PROFILE_DOMINANT) * rng.dirichlet(np.full(others.size, 2.0))
    weights /= weights.sum(axis=1, keepdims=True)
    prevalence = np.sqrt(GENRE_SHARE[dominant]) * rng.dirichlet(np.full(n_profiles, 20.0))
    return Profiles(weights, prevalence / prevalence.sum())

