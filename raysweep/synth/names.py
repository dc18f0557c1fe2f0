"""Every name and id in the slices: Spotify-like ids and artist, album and track names, and the playlist titles.

Ids and the names of artists, albums and tracks are hashed from (kind, catalog index, seed), so one track has the
same URI and name in every slice and at every scale, with no table kept. A playlist's title is drawn from its
slice's random stream, from the words of its dominant genre, generic words or a long compositional tail.
"""

from __future__ import annotations

import functools

import numpy as np

from raysweep.synth.parameters import GENRE_TITLES

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


def spotify_ids(kind: int, indices: np.ndarray, seed: int) -> list[str]:
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


def artist_names(artists: np.ndarray, seed: int) -> list[str]:
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


def album_names(albums: np.ndarray, seed: int) -> list[str]:
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


def track_names(tracks: np.ndarray, featured_artists: np.ndarray, seed: int) -> list[str]:
    """Track titles; ~8% feature the artist ``featured_artists[i]``."""
    h = _hashes(5, tracks, seed)
    style_codes = h[0] % np.uint64(100)
    style = style_codes.tolist()
    featuring = np.flatnonzero(style_codes < np.uint64(8))
    featured = dict(zip(featuring.tolist(), artist_names(featured_artists[featuring], seed)))
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



def _zipf_choice(rng: np.random.Generator, words: tuple | list, exponent: float) -> str:
    """``words[k - 1]`` with probability proportional to ``k ** -exponent``."""
    return words[int(np.searchsorted(_zipf_cdf(len(words), exponent), rng.random(), side="right"))]


@functools.lru_cache(maxsize=None)
def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=float) ** -exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def playlist_title(rng: np.random.Generator, dominant_genre: int) -> tuple[str, str | None]:
    """A playlist title and an optional description, tied to the playlist's dominant genre."""
    source = rng.random()
    if source < 0.45:
        base = _zipf_choice(rng, GENRE_TITLES[dominant_genre], 1.2)
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
            base = f"{GENRE_TITLES[dominant_genre][0]} {noun}"
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
