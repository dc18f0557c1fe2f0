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
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from raysweep.dataset import AUDIO_FEATURES
from raysweep.mpd import MAX_TRACKS, MIN_ALBUMS, MIN_ARTISTS, MIN_TRACKS, map_slices
from raysweep.storage import atomic_dir

GENERATED_ON = "2017-12-03 00:00:00.000000"  # fixed, so the same seed gives the same bytes

# Catalog size, chosen so the full 1M playlists use about as many distinct tracks as the real MPD (2.26M).
N_ARTISTS = 200_000
ARTIST_ZIPF = 1.2  # artist popularity within a genre ~ (rank + shift)^-a (Zipf-Mandelbrot)
ARTIST_SHIFT = 15.0
LENGTH_LOG_MEAN, LENGTH_LOG_SD = 3.95, 0.95  # truncated to 5..250: mean ~66, mode ~20, median ~49
FAVOURITE_SHARE = 0.5  # of a playlist's tracks come from its few favourite artists (as in real playlists)
FAVOURITE_SPAN = 12  # one favourite artist per this many tracks
PROFILE_DOMINANT = 0.75  # a profile's weight on its dominant genre (0.21 on 1-3 others, 0.04 on all)
PLAYLIST_DIRICHLET = 40.0  # concentration of a playlist's genre mix around its profile's
SLICE_SEED, CATALOG_SEED, FEATURE_SEED, PROFILE_SEED = 1, 0, 2, 3  # spawn keys of the random streams
FEATURE_CHUNK = 1 << 16  # tracks per audio-feature random stream, so a track's features never depend on N
DAY = 86_400
LAST_DAY = 1_509_494_400  # 2017-11-01 UTC: the MPD drops tracks added later

# Genre archetypes of the taste profiles: relative popularity (share of the catalog's artists; sets profile
# prevalence), then the centres of danceability, energy, speechiness, acousticness, instrumentalness, liveness,
# valence (probabilities), tempo (BPM), loudness (dB), P(mode=1), mean track length (s), P(3/4 time); then base
# titles, most common first.
_GENRES = (
    ("pop", .13, .68, .68, .07, .18, .01, .17, .52, 118, -6.0, .62, 210, .02,
     "party|summer|pop|good vibes|pop hits|top hits|car|feels|new|happy"),
    ("rap", .13, .77, .65, .27, .13, .01, .20, .48, 122, -6.5, .55, 220, .01,
     "rap|lit|hip hop|turn up|trap|bangers|rap 🔥|hype|gym|rap caviar"),
    ("country", .10, .58, .70, .04, .22, .00, .18, .58, 126, -5.5, .86, 210, .04,
     "country|country music|classic country|country jams|old country|country songs|country ❤️|boots|country hits"),
    ("rock", .08, .48, .79, .05, .08, .06, .20, .50, 128, -5.5, .70, 240, .03,
     "rock|classic rock|alternative|rock n roll|dad rock|grunge|rock music|road trip|90s rock"),
    ("chill", .05, .62, .35, .08, .60, .50, .12, .40, 90, -11.0, .55, 170, .03,
     "chill|chill vibes|chillin|relax|lofi|study|mellow|calm|chill 🌊|coffee"),
    ("edm", .05, .66, .86, .07, .04, .30, .22, .42, 126, -4.5, .55, 230, .01,
     "edm|house|electronic|dubstep|festival|rave|bass|techno|trance|edm 🔥"),
    ("rnb", .05, .68, .55, .12, .25, .01, .15, .48, 105, -7.0, .50, 230, .03,
     "r&b|rnb|slow jams|bae|love|smooth|late night|baby making|feels|soul"),
    ("indie", .05, .55, .58, .05, .30, .10, .15, .42, 120, -8.0, .68, 230, .05,
     "indie|alt|indie rock|feels|sad|hipster|bedroom pop|aesthetic|vibes|indie vibes"),
    ("workout", .04, .70, .88, .08, .05, .05, .25, .55, 128, -4.2, .55, 200, .01,
     "workout|gym|running|cardio|pump up|gym music|work out|run|lifting|beast mode"),
    ("oldies", .035, .58, .55, .04, .50, .02, .20, .70, 120, -10.0, .78, 180, .12,
     "oldies|oldies but goodies|classics|60s|70s|motown|80s|golden oldies|old school|retro"),
    ("throwback", .04, .78, .70, .18, .10, .00, .22, .66, 100, -6.0, .55, 240, .01,
     "throwback|throwbacks|2000s|throwback jams|90s|00s|old school hip hop|middle school|high school|nostalgia"),
    ("worship", .03, .45, .55, .04, .30, .00, .20, .28, 125, -7.5, .80, 300, .10,
     "worship|christian|jesus|praise|church|gospel|sunday|faith|worship music|god"),
    ("christmas", .025, .52, .45, .05, .60, .00, .25, .60, 115, -9.0, .85, 190, .20,
     "christmas|christmas music|xmas|holiday|christmas songs|holidays|christmas 🎄|merry christmas|winter"),
    ("latin", .03, .74, .76, .09, .22, .00, .18, .72, 115, -5.0, .55, 220, .01,
     "latin|reggaeton|spanish|latino|bachata|salsa|musica|fiesta|cumbia|latin hits"),
    ("folk", .03, .52, .35, .04, .78, .05, .13, .38, 115, -11.0, .75, 220, .12,
     "folk|acoustic|coffee house|indie folk|campfire|rainy day|singer songwriter|cozy|autumn"),
    ("punk", .025, .45, .90, .07, .02, .01, .28, .52, 160, -4.5, .68, 180, .02,
     "punk|pop punk|emo|skate|warped tour|emo af|punk rock|angst|mosh"),
    ("metal", .02, .40, .95, .09, .01, .15, .25, .30, 130, -4.0, .50, 280, .03,
     "metal|heavy metal|metalcore|screamo|rage|hardcore|thrash|metal 🤘|doom"),
    ("soundtrack", .02, .32, .30, .04, .75, .70, .13, .18, 105, -17.0, .45, 200, .12,
     "disney|musicals|broadway|soundtrack|movie music|hamilton|disney 🏰|film scores|epic|video games"),
    ("jazz", .02, .55, .30, .06, .80, .40, .15, .50, 110, -13.0, .55, 300, .08,
     "jazz|smooth jazz|coffee shop|jazz vibes|dinner|sunday morning|swing|bossa nova|cocktails"),
    ("soul", .02, .58, .52, .05, .45, .05, .25, .62, 110, -9.0, .62, 230, .15,
     "soul|funk|blues|groove|motown|funky|old soul|blues rock|rhythm and blues"),
    ("reggae", .015, .75, .60, .12, .15, .03, .20, .75, 100, -7.0, .60, 240, .02,
     "reggae|beach|island|summer vibes|dub|ska|beach day|sunshine|roots"),
    ("sleep", .015, .25, .10, .05, .90, .88, .10, .10, 90, -25.0, .55, 240, .05,
     "sleep|sleepy|bedtime|ambient|meditation|yoga|rain|spa|zen"),
    ("classical", .015, .30, .12, .05, .95, .85, .12, .22, 100, -22.0, .65, 330, .15,
     "classical|piano|focus|orchestra|classical music|concentration|mozart|cello|reading"),
    ("kpop", .01, .70, .80, .08, .12, .00, .18, .60, 122, -4.0, .60, 210, .01,
     "kpop|k-pop|bts|korean|anime|jpop|kpop 💕|idol|kdrama"),
)
# Genres of the outlier playlists only, after the profiles' genres in the catalog: number of artists, then the
# columns above (the probabilities, tempo, loudness, P(mode=1), track length, P(3/4)), the track-level tempo SD
# (BPM; speech has no beat, so Spotify's tempo for it is erratic) and the titles.
_OUTLIER_GENRES = (
    ("live", 2000, .45, .80, .12, .15, .03, .90, .40, 125, -7.0, .65, 290, .03, 22,
     "live|concerts|live music|live sessions|unplugged|concert|live at red rocks|live albums|tour"),
    ("nature sounds", 300, .10, .04, .06, .60, .97, .15, .03, 95, -28.0, .50, 600, .10, 30,
     "rain sounds|sleep sounds|nature sounds|rain|ocean waves|thunderstorm|sleep|relaxing sounds|forest"),
    ("white noise", 150, .10, .93, .06, .30, .97, .20, .03, 100, -24.0, .50, 900, .10, 30,
     "white noise|sleep|baby sleep|brown noise|fan noise|white noise sleep|study noise|noise"),
    ("spoken word", 800, .65, .30, .93, .75, .00, .30, .45, 105, -13.0, .55, 420, .10, 40,
     "audiobooks|podcasts|audiobook|stories|spoken word|poetry|books|bedtime stories"),
    ("comedy", 600, .55, .70, .93, .80, .00, .85, .40, 110, -11.0, .55, 200, .10, 40,
     "stand up comedy|comedy|stand up|funny|comedians|jokes|lol|comedy albums"),
)
OUTLIER_RATE = 0.01
OUTLIER_KINDS = ("live", "sounds", "spoken", "short")
SHORT_LENGTHS = (MIN_TRACKS, MIN_TRACKS + 2)  # the short kind's lengths; the other playlists are longer
_N_PROFILE_GENRES = len(_GENRES)
# The catalog genres each kind draws from (one per playlist); a short playlist draws one of its profile's.
_KIND_GENRES = tuple(tuple(_N_PROFILE_GENRES + [genre[0] for genre in _OUTLIER_GENRES].index(name) for name in names)
                     for names in (("live",), ("nature sounds", "white noise"), ("spoken word", "comedy")))
_GENRE_SHARE = np.array([genre[1] for genre in _GENRES]) / sum(genre[1] for genre in _GENRES)
_ARTISTS_PER_GENRE = np.concatenate([np.maximum(1, np.rint(_GENRE_SHARE * N_ARTISTS)),
                                     [genre[1] for genre in _OUTLIER_GENRES]]).astype(np.int64)
_ALL_GENRES = _GENRES + tuple(genre[:14] + genre[15:] for genre in _OUTLIER_GENRES)
_PROB_CENTRES = np.array([genre[2:9] for genre in _ALL_GENRES])  # (n_genres, 7)
_TEMPO, _LOUDNESS, _MODE_P, _LENGTH_S, _TRIPLE_P = (np.array([genre[i] for genre in _ALL_GENRES])
                                                    for i in range(9, 14))
_TEMPO_SD = np.concatenate([np.full(_N_PROFILE_GENRES, 22.0), [genre[14] for genre in _OUTLIER_GENRES]])
_GENRE_TITLES = tuple(tuple(genre[14].split("|")) for genre in _ALL_GENRES)
_PROB_FEATURES = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness",
                  "valence")
# Spread in logit units (artist, track) per probability feature: instrumentalness is bimodal in real data.
_PROB_SPREAD = np.array([[.35, .44], [.35, .48], [.45, .56], [.6, .8], [1.2, 1.76], [.3, .6], [.45, .64]])

_GENERIC_TITLES = ("chill|music|jams|vibes|my playlist|new|favorites|songs|road trip|sad|lit|love|feels|mix|"
                   "random|happy|summer|car|2017|fall|party|good music|playlist|stuff|favs|drive|shower|work|"
                   "summer 2017|spring").split("|")
_ADJECTIVES = ("good|late|lazy|sunday|summer|winter|rainy|happy|sad|golden|electric|midnight|sweet|wild|lost|"
               "little|young|blue|green|red|neon|quiet|loud|slow|fast|morning|night|endless|broken|crazy|"
               "lonely|cosmic|velvet|silver|easy|heavy|bright|dark|new|old|first|last|secret|simple|fading|"
               "burning|northern|southern|city|ocean").split("|")
_NOUNS = ("vibes|jams|songs|tunes|nights|days|dreams|feels|beats|hearts|roads|lights|waves|skies|stars|fire|"
          "rain|memories|moments|mornings|drives|summers|kids|ghosts|lovers|friends|bangers|anthems|hits|grooves|"
          "sounds|stories|rhythms|echoes|colors|streets|mountains|rivers|shadows|bones|wolves|birds|flowers|"
          "machines|radios|tapes|hours|seasons|miles|tears").split("|")
_FIRST_NAMES = ("Alex|Sam|Jordan|Taylor|Chris|Jamie|Casey|Riley|Morgan|Drew|Kyle|Maya|Nina|Leo|Max|Zoe|Ella|"
                "Luke|Jack|Lily|Noah|Emma|Mia|Owen|Ruby|Finn|Ava|Cole|Jade|Eli|José|Chloé|Björn|Noël|Zoë|Renée|"
                "Andrés|Lucía|Søren|Amélie").split("|")
_LAST_NAMES = ("Smith|Rivers|Stone|Hart|Brooks|Cole|Young|King|West|Lane|Fox|Gray|Wolfe|Hayes|Reed|Banks|Moore|"
               "Price|Knight|Summers|Black|Rose|Cruz|Vega|Park|Kim|Lee|Nash|Bell|Wilde|Peña|Müller|Åberg|"
               "Laurent|Ortiz|Sato|Novak|Dubois|Costa|Moreau").split("|")
_ARTIST_PREFIXES = ("DJ|Lil|MC|Young|Big|Saint|Miss|Yung|Doctor|Uncle").split("|")
_TITLED_ADJECTIVES = tuple(word.title() for word in _ADJECTIVES)
_TITLED_NOUNS = tuple(word.title() for word in _NOUNS)
_TRACK_SUFFIXES = (" - Remastered", " - Radio Edit", " - Live", " - Acoustic", " - Remix", " (Interlude)")


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
    n_genres = len(_ALL_GENRES)
    artists_per_genre = _ARTISTS_PER_GENRE
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
    seconds = np.exp(rng.normal(np.log(_LENGTH_S[track_genre]), 0.28))
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
    n_genres = _N_PROFILE_GENRES
    by_popularity = np.argsort(-_GENRE_SHARE, kind="stable")
    dominant = by_popularity[np.arange(n_profiles) % n_genres]
    weights = np.tile(0.04 * _GENRE_SHARE, (n_profiles, 1))
    for profile, genre in enumerate(dominant):
        others = rng.choice(np.delete(np.arange(n_genres), genre), rng.integers(1, 4), replace=False)
        weights[profile, genre] += PROFILE_DOMINANT
        weights[profile, others] += (0.96 - PROFILE_DOMINANT) * rng.dirichlet(np.full(others.size, 2.0))
    weights /= weights.sum(axis=1, keepdims=True)
    prevalence = np.sqrt(_GENRE_SHARE[dominant]) * rng.dirichlet(np.full(n_profiles, 20.0))
    return Profiles(weights, prevalence / prevalence.sum())


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (Steele et al., 2014): a bijective scramble of uint64 values."""
    z = values.astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hashes(kind: int, indices: np.ndarray, seed: int) -> np.ndarray:
    """Two independent 64-bit hashes per (kind, index, seed), shape (2, n)."""
    base = indices.astype(np.uint64) * np.uint64(8) + np.uint64(kind)
    salt = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64))
    first = _mix64(base ^ salt)
    return np.stack([first, _mix64(first ^ np.uint64(0xD6E8FEB86659FD93))])


_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def _spotify_ids(kind: int, indices: np.ndarray, seed: int) -> list[str]:
    """22-character base-62 ids, like Spotify's, derived from 128 hashed bits (collisions: negligible)."""
    words = _hashes(kind, indices, seed)
    digits = np.empty((indices.size, 22), dtype=np.uint8)
    for half in range(2):
        word = words[half].copy()
        for position in range(11):
            digits[:, half * 11 + position] = _BASE62[(word % np.uint64(62)).astype(np.intp)]
            word //= np.uint64(62)
    return digits.view("S22").ravel().astype(str).tolist()


def _pick(words: tuple | list, bits: np.ndarray) -> list:
    return np.asarray(words, dtype=object)[(bits % np.uint64(len(words))).astype(np.intp)].tolist()


def _artist_names(artists: np.ndarray, seed: int) -> list[str]:
    h = _hashes(3, artists, seed)
    style = (h[0] % np.uint64(10)).tolist()
    first = _pick(_FIRST_NAMES, h[0] >> np.uint64(8))
    last = _pick(_LAST_NAMES, h[0] >> np.uint64(20))
    adjective = _pick(_TITLED_ADJECTIVES, h[1])
    noun = _pick(_TITLED_NOUNS, h[1] >> np.uint64(12))
    prefix = _pick(_ARTIST_PREFIXES, h[1] >> np.uint64(24))
    names = []
    for i, s in enumerate(style):
        if s < 4:
            names.append(f"{first[i]} {last[i]}")
        elif s < 6:
            names.append(f"The {adjective[i]} {noun[i]}")
        elif s < 7:
            names.append(f"{prefix[i]} {last[i]}")
        elif s < 9:
            names.append(f"{adjective[i]}{noun[i].lower()}")
        else:
            names.append(f"{first[i]} & The {noun[i]}")
    return names


def _album_names(albums: np.ndarray, seed: int) -> list[str]:
    h = _hashes(4, albums, seed)
    style = (h[0] % np.uint64(8)).tolist()
    adjective = _pick(_TITLED_ADJECTIVES, h[0] >> np.uint64(8))
    noun = _pick(_TITLED_NOUNS, h[1])
    other = _pick(_TITLED_NOUNS, h[1] >> np.uint64(16))
    year = (1960 + (h[1] >> np.uint64(32)) % np.uint64(58)).tolist()
    names = []
    for i, s in enumerate(style):
        if s < 4:
            names.append(f"{adjective[i]} {noun[i]}")
        elif s < 6:
            names.append(noun[i])
        elif s < 7:
            names.append(f"{noun[i]} of {other[i]}")
        else:
            names.append(f"{adjective[i]} {noun[i]} ({year[i]})")
    return names


def _track_names(tracks: np.ndarray, featured_artists: np.ndarray, seed: int) -> list[str]:
    """Track titles; ~8% feature the artist ``featured_artists[i]``."""
    h = _hashes(5, tracks, seed)
    style_codes = h[0] % np.uint64(100)
    style = style_codes.tolist()
    featuring = np.flatnonzero(style_codes < np.uint64(8))
    featured = dict(zip(featuring.tolist(), _artist_names(featured_artists[featuring], seed)))
    adjective = _pick(_TITLED_ADJECTIVES, h[0] >> np.uint64(8))
    noun = _pick(_TITLED_NOUNS, h[1])
    suffix = _pick(_TRACK_SUFFIXES, h[1] >> np.uint64(40))
    names = []
    for i, s in enumerate(style):
        name = f"{adjective[i]} {noun[i]}" if s % 3 else noun[i]
        if s < 8:
            name += f" (feat. {featured[i]})"
        elif s < 14:
            name += suffix[i]
        names.append(name)
    return names


_TRACK_BLOCK = (', \n                    "artist_name": %s, \n                    "track_uri": "spotify:track:%s", '
                '\n                    "artist_uri": "spotify:artist:%s", \n                    "track_name": %s, '
                '\n                    "album_uri": "spotify:album:%s", \n                    "duration_ms": %d, '
                '\n                    "album_name": %s\n                }')


def _track_blocks(catalog: Catalog, tracks: np.ndarray) -> list[str]:
    """The JSON text of each track after its ``pos`` (sorted unique ``tracks``), formatted like the real files."""
    seed = catalog.seed
    albums = catalog.track_album[tracks]
    artists = catalog.album_artist[albums]
    unique_artists, artist_of = np.unique(artists, return_inverse=True)
    unique_albums, album_of = np.unique(albums, return_inverse=True)
    encode = json.encoder.encode_basestring_ascii  # what Python 2's json.dumps wrote: ASCII with \u escapes
    artist_names = [encode(name) for name in _artist_names(unique_artists, seed)]
    artist_ids = _spotify_ids(1, unique_artists, seed)
    album_names = [encode(name) for name in _album_names(unique_albums, seed)]
    album_ids = _spotify_ids(2, unique_albums, seed)
    featured_artists = (artists + 7919) % catalog.artist_genre.size  # an unrelated artist, fixed per track
    track_names = [encode(name) for name in _track_names(tracks, featured_artists, seed)]
    track_ids = _spotify_ids(0, tracks, seed)
    durations = catalog.track_duration_ms[tracks].tolist()
    artist_of, album_of = artist_of.tolist(), album_of.tolist()
    return [_TRACK_BLOCK % (artist_names[artist_of[i]], track_ids[i], artist_ids[artist_of[i]], track_names[i],
                            album_ids[album_of[i]], durations[i], album_names[album_of[i]])
            for i in range(tracks.size)]


def _zipf_choice(rng: np.random.Generator, words: tuple | list, exponent: float) -> str:
    """``words[k - 1]`` with probability proportional to ``k ** -exponent``."""
    return words[int(np.searchsorted(_zipf_cdf(len(words), exponent), rng.random(), side="right"))]


@functools.lru_cache(maxsize=None)
def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=float) ** -exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def _title(rng: np.random.Generator, dominant_genre: int) -> tuple[str, str | None]:
    """A playlist title and an optional description, tied to the playlist's dominant genre."""
    source = rng.random()
    if source < 0.45:
        base = _zipf_choice(rng, _GENRE_TITLES[dominant_genre], 1.2)
    elif source < 0.65:
        base = _zipf_choice(rng, _GENERIC_TITLES, 0.5)
    else:
        tail = rng.random()
        adjective, noun = _ADJECTIVES[rng.integers(len(_ADJECTIVES))], _NOUNS[rng.integers(len(_NOUNS))]
        if tail < 0.5:
            base = f"{adjective} {noun}"
        elif tail < 0.7:
            base = f"{noun} {rng.integers(2010, 2018)}"
        elif tail < 0.85:
            base = f"{_FIRST_NAMES[rng.integers(len(_FIRST_NAMES))].lower()}'s {noun}"
        else:
            base = f"{_GENRE_TITLES[dominant_genre][0]} {noun}"
    case = rng.random()
    if case < 0.45:
        name = base
    elif case < 0.8:
        name = base.title()
    elif case < 0.88:
        name = base.upper()
    else:
        name = base.capitalize()
    decoration = rng.random()
    if decoration < 0.06:
        name += ("!", "!!", ".", "...", " :)", " (:", "~", "*")[rng.integers(8)]
    elif decoration < 0.09:
        name += (" 🔥", " 💯", " ✨", " 🎶", " ☀️", " ❤️")[rng.integers(6)]
    elif decoration < 0.11:
        name = f"{name} {rng.integers(1, 10)}"
    description = f"{base} songs for you" if rng.random() < 0.019 else None
    return name, description


@dataclass
class _SliceStats:
    playlists: int
    track_entries: int
    json_bytes: int
    used_tracks: np.ndarray
    pid: np.ndarray
    profile: np.ndarray
    outlier: np.ndarray  # 0 for none, else 1 + index in OUTLIER_KINDS


_worker_catalog: Catalog | None = None


def _catalog_for(seed: int) -> Catalog:
    """The catalog, built once per process (workers build their own rather than receive ~100 MB pickled)."""
    global _worker_catalog
    if _worker_catalog is None or _worker_catalog.seed != seed:
        _worker_catalog = build_catalog(seed)
    return _worker_catalog


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
    cdf = np.zeros(len(_ALL_GENRES))
    cdf[genre:] = 1.0
    return cdf


def _generate_slice(folder: str, index: int, first_pid: int, count: int, n_profiles: int, seed: int,
                    outlier_rate: float) -> _SliceStats:
    """Write one slice file and return what the parent needs to summarize it."""
    catalog = _catalog_for(seed)
    profiles = build_profiles(n_profiles, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SLICE_SEED, index)))
    records, track_lists = [], []
    profile_of = rng.choice(n_profiles, count, p=profiles.prevalence)
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
            dominant = int(rng.choice(_KIND_GENRES[outlier - 1]))
        if outlier:
            mix_cdf = _one_genre_cdf(dominant)
        while True:  # the MPD kept only playlists meeting its selection rules; so do we
            tracks = _draw_tracks(rng, catalog, mix_cdf, _draw_length(rng, outlier == short))
            albums = catalog.track_album[tracks]
            n_albums = np.unique(albums).size
            n_artists = np.unique(catalog.album_artist[albums]).size
            if n_albums >= MIN_ALBUMS and n_artists >= MIN_ARTISTS:
                break
        name, description = _title(rng, dominant)
        followers = int(min(rng.zipf(2.5), 100_000))
        edits = 1 + int(rng.negative_binomial(2, 2 / (2 + tracks.size / 4)))
        modified = LAST_DAY - DAY * int(min(rng.exponential(420), 2860))
        collaborative = "true" if rng.random() < 0.023 else "false"
        records.append((name, collaborative, first_pid + offset, modified, tracks.size, n_albums, followers,
                        edits, int(catalog.track_duration_ms[tracks].sum(dtype=np.int64)), n_artists, description))
        track_lists.append(tracks)
    used = np.unique(np.concatenate(track_lists))
    blocks = _track_blocks(catalog, used)
    text = _slice_text(records, track_lists, used, blocks, first_pid, count)
    path = Path(folder) / f"mpd.slice.{first_pid}-{first_pid + count - 1}.json"
    data = text.encode("ascii")
    path.write_bytes(data)  # the whole output folder is atomic (see generate), so one file need not be
    return _SliceStats(count, sum(t.size for t in track_lists), len(data), used,
                       np.arange(first_pid, first_pid + count, dtype=np.int64), profile_of.astype(np.int32),
                       outlier_of.astype(np.int8))


def _slice_text(records: list[tuple], track_lists: list[np.ndarray], used: np.ndarray, blocks: list[str],
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


def _audio_features(catalog: Catalog, tracks: np.ndarray) -> pa.Table:
    """The 13 audio features of sorted unique ``tracks``; a track's values depend only on the seed and its index."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in AUDIO_FEATURES}
    uris = []
    chunks = tracks // FEATURE_CHUNK
    for chunk in np.unique(chunks):
        start = int(chunk) * FEATURE_CHUNK
        stop = min(start + FEATURE_CHUNK, catalog.track_album.size)
        rng = np.random.default_rng(np.random.SeedSequence(catalog.seed, spawn_key=(FEATURE_SEED, int(chunk))))
        noise = rng.standard_normal((stop - start, 9))
        uniform = rng.random((stop - start, 3))
        local = tracks[chunks == chunk] - start
        selected = local + start
        artists = catalog.track_artist(selected)
        genres = catalog.artist_genre[artists]
        offsets = catalog.artist_offsets[artists]
        noise, uniform = noise[local], uniform[local]
        centre = np.log(_PROB_CENTRES[genres] + 1e-3) - np.log1p(-_PROB_CENTRES[genres] + 1e-3)
        logit = centre + offsets[:, :7] * _PROB_SPREAD[:, 0] + noise[:, :7] * _PROB_SPREAD[:, 1]
        probabilities = np.round(1 / (1 + np.exp(-logit)), 4)
        for j, name in enumerate(_PROB_FEATURES):
            columns[name].append(probabilities[:, j])
        tempo = _TEMPO[genres] + 8 * offsets[:, 7] + _TEMPO_SD[genres] * noise[:, 7]
        columns["tempo"].append(np.round(np.clip(tempo, 45, 215), 3))
        columns["loudness"].append(np.round(np.clip(_LOUDNESS[genres] + 2 * offsets[:, 8] + 2.5 * noise[:, 8],
                                                    -45, -0.5), 3))
        # Key: mostly uniform with a per-genre tilt; mode and 3/4 time follow the genre's rates.
        key_tilt = (genres * 5 + 2) % 12
        columns["key"].append(np.where(uniform[:, 0] < 0.15, key_tilt, (uniform[:, 0] * 12).astype(np.int64) % 12))
        columns["mode"].append((uniform[:, 1] < _MODE_P[genres]).astype(np.int64))
        triple = uniform[:, 2] < _TRIPLE_P[genres]
        odd = uniform[:, 2] > 0.985
        columns["time_signature"].append(np.where(triple, 3, np.where(odd, 5, 4)).astype(np.int64))
        columns["duration_ms"].append(catalog.track_duration_ms[selected].astype(np.int64))
        uris.extend(_spotify_ids(0, selected, catalog.seed))
    table = {"track_uri": pa.array(["spotify:track:" + uri for uri in uris], pa.string())}
    for name in AUDIO_FEATURES:
        values = np.concatenate(columns[name])
        table[name] = pa.array(values, pa.int64() if values.dtype.kind == "i" else pa.float64())
    return pa.table(table)


def generate(out: str | os.PathLike, playlists: int, slice_size: int = 1000, profiles: int = 17, seed: int = 0,
             workers: int | None = None, outlier_rate: float = OUTLIER_RATE) -> dict:
    """Write an MPD-format data set of ``playlists`` playlists into the new folder ``out``.

    Parameters
    ----------
    out : path
        Folder to create; it must not exist or be empty. It appears only when complete.
    playlists : int
        Number of playlists (pids 0..playlists-1).
    slice_size : int
        Playlists per slice file (the real MPD: 1000).
    profiles : int
        Number of planted taste profiles.
    seed : int
        Same seed, same bytes.
    workers : int or None
        Processes generating slices in parallel; None means all cores, 1 means in this process.
    outlier_rate : float
        Share of outlier playlists, in [0, 1]; each is live, sounds, spoken or short with equal probability.

    Returns
    -------
    summary : dict
        out, playlists, slices, track_entries, unique_tracks, json_bytes, profiles, outliers (count per kind),
        outlier_rate, seed, seconds.
    """
    for option, value in (("playlists", playlists), ("slice_size", slice_size), ("profiles", profiles)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if not 0 <= outlier_rate <= 1:
        raise ValueError(f"outlier_rate must be between 0 and 1, got {outlier_rate!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output folder {out} exists and is not empty; choose a new folder")
    started = time.perf_counter()
    starts = list(range(0, playlists, slice_size))
    workers = min(workers or os.cpu_count() or 1, len(starts))
    catalog = _catalog_for(seed)
    used = np.zeros(catalog.track_album.size, dtype=bool)
    pids, profile_of, outlier_of = [], [], []
    totals = {"playlists": 0, "track_entries": 0, "json_bytes": 0}
    with atomic_dir(out) as tmp:
        data = tmp / "data"
        data.mkdir()
        tasks = [(str(data), i, start, min(slice_size, playlists - start), profiles, seed, outlier_rate)
                 for i, start in enumerate(starts)]
        with tqdm(total=len(tasks), unit="slice", desc="synth", disable=not sys.stderr.isatty()) as bar:
            for stats in map_slices(_generate_slice, tasks, workers):
                used[stats.used_tracks] = True
                pids.append(stats.pid)
                profile_of.append(stats.profile)
                outlier_of.append(stats.outlier)
                totals["playlists"] += stats.playlists
                totals["track_entries"] += stats.track_entries
                totals["json_bytes"] += stats.json_bytes
                bar.update()
                bar.set_postfix(playlists_per_s=f"{totals['playlists'] / bar.format_dict['elapsed']:.0f}"
                                if bar.format_dict["elapsed"] else "-")
        features = _audio_features(catalog, np.flatnonzero(used))
        pq.write_table(features, tmp / "track_audio_features.parquet", compression="zstd")
        kinds = np.concatenate(outlier_of)
        planted = pa.table({"pid": np.concatenate(pids), "profile": np.concatenate(profile_of),
                            "outlier": pa.array(np.array(("", *OUTLIER_KINDS), dtype=object)[kinds], pa.string())})
        pq.write_table(planted, tmp / "planted_profiles.parquet", compression="zstd")
    counts = np.bincount(kinds, minlength=len(OUTLIER_KINDS) + 1)[1:]
    return {"out": str(out), "slices": len(starts), **totals, "unique_tracks": int(used.sum()),
            "profiles": profiles, "outliers": dict(zip(OUTLIER_KINDS, counts.tolist())),
            "outlier_rate": outlier_rate, "seed": seed, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raysweep.synth", description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    sys.exit(main())
