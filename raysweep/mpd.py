"""The MPD slice format: finding slice files, reading one (salvaging what parses), checking playlists.

A slice file is one JSON object, ``{"info": {"generated_on", "slice", "version"}, "playlists": [...]}``,
named ``mpd.slice.<first pid>-<last pid>.json``. :func:`playlist_violations` is the dataset's invariant
checker: it returns every broken invariant of one playlist with its reason, so ingest can reject the
playlist and say why, and tests can check generated slices.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice, repeat
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

MIN_TRACKS = 5
MAX_TRACKS = 250
MIN_ARTISTS = 3
MIN_ALBUMS = 2

# Key order of the real files (written by Python 2's json module, so fixed by its dict order).
PLAYLIST_KEYS = ("name", "collaborative", "pid", "modified_at", "num_tracks", "num_albums", "num_followers",
                 "tracks", "num_edits", "duration_ms", "num_artists")
TRACK_KEYS = ("pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms",
              "album_name")
URI_PREFIXES = {"track_uri": "spotify:track:", "artist_uri": "spotify:artist:", "album_uri": "spotify:album:"}

_INT_PLAYLIST_KEYS = ("pid", "modified_at", "num_tracks", "num_albums", "num_followers", "num_edits", "duration_ms",
                      "num_artists")
_STR_TRACK_KEYS = ("artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "album_name")
_SLICE_NAME = re.compile(r"^mpd\.slice\.(\d+)-(\d+)\.json$")
# The MPD's own normalize_name (src/stats.py of the dataset): lowercase, these punctuation marks to spaces,
# whitespace collapsed. It keeps emoji and other symbols, so titles that differ only by emoji stay distinct.
_TITLE_PUNCTUATION = re.compile(r"[.,\/#!$%\^\*;:{}=\_`~()@]")
_WHITESPACE = re.compile(r"\s+")


def normalize_name(name: str) -> str:
    """Normalize a playlist title exactly as the MPD's ``stats.py`` does (``"Chill Vibes!!"`` -> ``"chill vibes"``)."""
    name = _TITLE_PUNCTUATION.sub(" ", name.lower())
    return _WHITESPACE.sub(" ", name).strip()


def slice_pid_range(path: str | os.PathLike) -> tuple[int, int] | None:
    """The ``(first, last)`` pids a slice file's name promises, or None if it is not named like a slice."""
    match = _SLICE_NAME.match(Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def slice_files(src: str | os.PathLike) -> list[Path]:
    """The slice files of a folder (or the one file given), ordered by their first pid.

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    ValueError
        If ``src`` is a folder without any ``mpd.slice.*.json`` file.
    """
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"slice source {src} does not exist")
    if src.is_file():
        return [src]
    files = [path for path in src.iterdir() if path.is_file() and slice_pid_range(path) is not None]
    if not files:
        raise ValueError(f"slice source {src} holds no slice files (mpd.slice.<first>-<last>.json)")
    return sorted(files, key=lambda path: (slice_pid_range(path), path.name))


@dataclass
class SliceContent:
    """What could be read from one slice file.

    Attributes
    ----------
    path : Path
    playlists : list of object, the playlist records in file order (complete ones only)
    info : dict, the ``info`` record ({} when unreadable)
    error : str or None, why the file is not fully readable (then ``playlists`` holds what was salvaged)
    """

    path: Path
    playlists: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    error: str | None = None


def read_slice(path: str | os.PathLike) -> SliceContent:
    """Read one slice file; a truncated or malformed file yields the playlists before the damage.

    The fast path parses the whole file with orjson. Only when that fails are the playlists decoded one by
    one with the standard library's ``raw_decode`` until the first one that does not parse.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        playlists = _salvage_playlists(data.decode("utf-8", errors="replace"))
        return SliceContent(path, playlists, error=f"malformed JSON ({exc}); salvaged {len(playlists)} "
                                                   "complete playlists before the damage")
    if not isinstance(document, dict) or not isinstance(document.get("playlists"), list):
        return SliceContent(path, error='not a slice: no top-level "playlists" array')
    info = document.get("info")
    return SliceContent(path, document["playlists"], info if isinstance(info, dict) else {})


def _salvage_playlists(text: str) -> list:
    """The complete playlist objects at the start of a damaged slice's ``"playlists"`` array."""
    start = re.search(r'"playlists"\s*:\s*\[', text)
    if start is None:
        return []
    decoder = json.JSONDecoder()
    playlists = []
    position = start.end()
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return playlists
        try:
            playlist, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return playlists
        playlists.append(playlist)


def playlist_violations(playlist: object, pid_range: tuple[int, int] | None = None) -> list[str]:
    """Every invariant of the MPD that ``playlist`` breaks, each as a reason a person can act on.

    Checks the fields and their types, then: ``num_tracks == len(tracks)``, ``MIN_TRACKS <= num_tracks <=
    MAX_TRACKS``, ``pos`` equals the track's index, ``num_albums`` / ``num_artists`` equal the distinct album /
    artist URIs, at least ``MIN_ALBUMS`` albums and ``MIN_ARTISTS`` artists, ``duration_ms`` is the sum of the
    tracks' durations, ``num_followers >= 1``, URIs carry their ``spotify:<kind>:`` prefix and, when
    ``pid_range`` is given (from the file name), the pid lies in it.

    Parameters
    ----------
    playlist : object
        One decoded element of a slice's ``"playlists"`` array.
    pid_range : (int, int) or None
        Inclusive pid range of the slice file, see :func:`slice_pid_range`.

    Returns
    -------
    violations : list of str
        Empty when the playlist is valid.
    """
    return check_playlist(playlist, pid_range)[0]


def check_playlist(playlist: object, pid_range: tuple[int, int] | None = None
                   ) -> tuple[list[str], dict[str, list] | None]:
    """:func:`playlist_violations`, plus the tracks as columns, so that a caller need not walk them again.

    Returns
    -------
    violations : list of str
    track_columns : dict of str to list, or None
        Each field of :data:`TRACK_KEYS` -> its values in track order; None when the tracks are not well formed.
    """
    if not isinstance(playlist, dict):
        return [f"not a JSON object but {type(playlist).__name__}"], None
    problems = [f"missing field {key!r}" for key in PLAYLIST_KEYS if key not in playlist]
    if problems:
        return problems, None
    for key in _INT_PLAYLIST_KEYS:
        if not _is_int(playlist[key]):
            problems.append(f"{key} is {playlist[key]!r}, not an integer")
    if not isinstance(playlist["name"], str):
        problems.append(f"name is {playlist['name']!r}, not a string")
    if playlist["collaborative"] not in ("true", "false"):
        problems.append(f"collaborative is {playlist['collaborative']!r}, not \"true\" or \"false\"")
    if "description" in playlist and not isinstance(playlist["description"], str):
        problems.append(f"description is {playlist['description']!r}, not a string")
    tracks = playlist["tracks"]
    if not isinstance(tracks, list):
        problems.append(f"tracks is {type(tracks).__name__}, not an array")
    if problems:
        return problems, None

    if pid_range is not None and not pid_range[0] <= playlist["pid"] <= pid_range[1]:
        problems.append(f"pid {playlist['pid']} outside the file's range {pid_range[0]}-{pid_range[1]}")
    if playlist["num_tracks"] != len(tracks):
        problems.append(f"num_tracks is {playlist['num_tracks']} but the playlist has {len(tracks)} tracks")
    if not MIN_TRACKS <= len(tracks) <= MAX_TRACKS:
        problems.append(f"{len(tracks)} tracks, outside {MIN_TRACKS}..{MAX_TRACKS}")
    if playlist["num_followers"] < 1:
        problems.append(f"num_followers is {playlist['num_followers']}, below 1")

    columns = _track_columns(tracks)
    if columns is None:
        problems.extend(problem for index, track in enumerate(tracks) for problem in _track_violations(track, index))
        return problems, None
    albums = set(columns["album_uri"])
    artists = set(columns["artist_uri"])
    duration = sum(columns["duration_ms"])
    if playlist["num_albums"] != len(albums):
        problems.append(f"num_albums is {playlist['num_albums']} but the tracks have {len(albums)} distinct albums")
    if playlist["num_artists"] != len(artists):
        problems.append(f"num_artists is {playlist['num_artists']} but the tracks have {len(artists)} "
                        "distinct artists")
    if len(albums) < MIN_ALBUMS:
        problems.append(f"{len(albums)} distinct albums, below {MIN_ALBUMS}")
    if len(artists) < MIN_ARTISTS:
        problems.append(f"{len(artists)} distinct artists, below {MIN_ARTISTS}")
    if playlist["duration_ms"] != duration:
        problems.append(f"duration_ms is {playlist['duration_ms']} but the tracks sum to {duration}")
    return problems, columns


def _track_columns(tracks: list) -> dict[str, list] | None:
    """The tracks' fields as columns if every track has its fields, types, URI prefixes and pos == index, else None.

    Ingest checks every playlist, so this path runs column by column without per-track Python calls; only a
    playlist that fails it is diagnosed track by track by :func:`_track_violations`.
    """
    try:
        columns = {key: [track[key] for track in tracks] for key in TRACK_KEYS}
    except (KeyError, TypeError):  # a track that is not an object, or misses a field
        return None
    positions, durations = columns["pos"], columns["duration_ms"]
    if positions != list(range(len(tracks))) or not _all_of_type(positions, int) or not _all_of_type(durations, int):
        return None
    if durations and min(durations) < 0:
        return None
    if not all(_all_of_type(columns[key], str) for key in _STR_TRACK_KEYS):
        return None
    if not all(all(map(str.startswith, columns[key], repeat(prefix))) for key, prefix in URI_PREFIXES.items()):
        return None
    return columns


def _all_of_type(values: list, kind: type) -> bool:
    return set(map(type, values)) <= {kind}  # exact types: a bool is not an int here


def _track_violations(track: object, index: int) -> list[str]:
    where = f"track {index}"
    if not isinstance(track, dict):
        return [f"{where} is not a JSON object"]
    missing = [key for key in TRACK_KEYS if key not in track]
    if missing:
        return [f"{where} misses field {key!r}" for key in missing]
    problems = []
    if not _is_int(track["pos"]) or track["pos"] != index:
        problems.append(f"{where} has pos {track['pos']!r}")
    if not _is_int(track["duration_ms"]) or track["duration_ms"] < 0:
        problems.append(f"{where} has duration_ms {track['duration_ms']!r}, not a non-negative integer")
    for key in _STR_TRACK_KEYS:
        if not isinstance(track[key], str):
            problems.append(f"{where} has {key} {track[key]!r}, not a string")
    for key, prefix in URI_PREFIXES.items():
        if isinstance(track[key], str) and not track[key].startswith(prefix):
            problems.append(f"{where} has {key} {track[key]!r}, not starting with {prefix!r}")
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def map_slices(function: Callable, tasks: Iterable[tuple], workers: int) -> Iterator:
    """Yield ``function(*task)`` for each task, in task order, computed by ``workers`` processes.

    At most ``2 * workers`` tasks are in flight, so results waiting for an earlier slice stay few and memory
    does not grow with the number of slices. ``workers == 1`` runs in this process.
    """
    if workers == 1:
        for task in tasks:
            yield function(*task)
        return
    # spawn, not fork: the caller may hold threads (Ray, BLAS pools) that a forked child would inherit broken.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        remaining = iter(tasks)
        pending = deque(pool.submit(function, *task) for task in islice(remaining, 2 * workers))
        while pending:
            result = pending.popleft().result()
            for task in islice(remaining, 1):
                pending.append(pool.submit(function, *task))
            yield result
