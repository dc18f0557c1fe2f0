"""Tests of the slice format: file discovery, reading (with salvage), the invariant checker, title normalization."""

import copy
import json

import pytest

from raysweep.mpd import (
    check_playlist,
    map_slices,
    normalize_name,
    playlist_violations,
    read_slice,
    slice_files,
    slice_pid_range,
)


def make_playlist(pid=0, n_tracks=5):
    """A valid playlist: tracks cycle over 3 artists and 2 albums."""
    tracks = [{"pos": i, "artist_name": f"A{i % 3}", "track_uri": f"spotify:track:t{pid}x{i}",
               "artist_uri": f"spotify:artist:a{i % 3}", "track_name": f"T{i}",
               "album_uri": f"spotify:album:b{i % 2}", "duration_ms": 1000 + i, "album_name": f"B{i % 2}"}
              for i in range(n_tracks)]
    return {"name": "Chill", "collaborative": "false", "pid": pid, "modified_at": 1493424000,
            "num_tracks": n_tracks, "num_albums": 2, "num_followers": 1, "tracks": tracks, "num_edits": 2,
            "duration_ms": sum(t["duration_ms"] for t in tracks), "num_artists": 3}


def write_slice(path, playlists, first=0, last=999):
    document = {"info": {"generated_on": "2017-12-03 08:41:42.057563", "slice": f"{first}-{last}", "version": "v1"},
                "playlists": playlists}
    path.write_text(json.dumps(document, indent=4, separators=(", ", ": ")))


def test_valid_playlist_has_no_violations():
    assert playlist_violations(make_playlist(), (0, 999)) == []


def _set(key, value):
    def mutate(playlist):
        playlist[key] = value
    return mutate


def _set_track(index, key, value):
    def mutate(playlist):
        playlist["tracks"][index][key] = value
    return mutate


def _drop_track(playlist):
    playlist["tracks"].pop()


def _same_artist(playlist):
    for track in playlist["tracks"]:
        track["artist_uri"] = "spotify:artist:a0"
    playlist["num_artists"] = 1


def _same_album(playlist):
    for track in playlist["tracks"]:
        track["album_uri"] = "spotify:album:b0"
    playlist["num_albums"] = 1


@pytest.mark.parametrize("mutate, message", [
    (_drop_track, "num_tracks is 5 but the playlist has 4 tracks"),
    (_set_track(2, "pos", 7), "track 2 has pos 7"),
    (_set("num_albums", 3), "num_albums is 3 but the tracks have 2 distinct albums"),
    (_set("num_artists", 4), "num_artists is 4 but the tracks have 3 distinct artists"),
    (_set("duration_ms", 1), "duration_ms is 1 but the tracks sum to 5010"),
    (_same_artist, "1 distinct artists, below 3"),
    (_same_album, "1 distinct albums, below 2"),
    (_set("num_followers", 0), "num_followers is 0, below 1"),
    (_set("collaborative", False), "collaborative is False"),
    (_set("pid", 1000), "pid 1000 outside the file's range 0-999"),
    (_set("num_edits", "2"), "num_edits is '2', not an integer"),
    (_set_track(0, "track_uri", "spotify:album:x"), "track 0 has track_uri 'spotify:album:x', not starting with"),
    (_set_track(1, "duration_ms", -5), "track 1 has duration_ms -5"),
    (_set_track(1, "artist_name", None), "track 1 has artist_name None, not a string"),
])
def test_each_broken_invariant_is_named(mutate, message):
    playlist = copy.deepcopy(make_playlist())
    mutate(playlist)
    assert any(message in problem for problem in playlist_violations(playlist, (0, 999)))


def test_track_count_bounds():
    assert "4 tracks, outside 5..250" in playlist_violations(make_playlist(n_tracks=4))
    assert "251 tracks, outside 5..250" in playlist_violations(make_playlist(n_tracks=251))
    assert playlist_violations(make_playlist(n_tracks=250)) == []


def test_missing_fields_are_named():
    playlist = make_playlist()
    del playlist["num_edits"]
    del playlist["tracks"][3]["album_name"]
    assert playlist_violations(playlist) == ["missing field 'num_edits'"]
    playlist["num_edits"] = 1
    assert playlist_violations(playlist) == ["track 3 misses field 'album_name'"]


def test_non_object_playlist_and_track():
    assert playlist_violations([1, 2]) == ["not a JSON object but list"]
    playlist = make_playlist()
    playlist["tracks"][4] = "spotify:track:x"
    assert playlist_violations(playlist) == ["track 4 is not a JSON object"]


def test_bool_is_not_an_integer():
    playlist = make_playlist()
    playlist["tracks"][1]["pos"] = True  # equals 1 in Python, yet not a position
    assert any("track 1 has pos True" in problem for problem in playlist_violations(playlist))


def test_check_playlist_returns_the_tracks_as_columns():
    playlist = make_playlist()
    problems, columns = check_playlist(playlist)
    assert problems == []
    assert columns["pos"] == [0, 1, 2, 3, 4]
    assert columns["album_uri"] == [t["album_uri"] for t in playlist["tracks"]]
    playlist["tracks"][0] = None
    assert check_playlist(playlist) == (["track 0 is not a JSON object"], None)


@pytest.mark.parametrize("title, normalized", [
    ("Chill Vibes!!", "chill vibes"),
    ("  Rock   n' Roll ", "rock n' roll"),
    ("#throwback", "throwback"),
    ("party.time", "party time"),
    ("Country ❤️", "country ❤️"),  # the MPD's normalize_name keeps emoji
    ("R&B", "r&b"),
])
def test_normalize_name_matches_the_mpd(title, normalized):
    assert normalize_name(title) == normalized


def test_slice_files_are_ordered_by_first_pid(tmp_path):
    for name in ("mpd.slice.10000-10999.json", "mpd.slice.1000-1999.json", "mpd.slice.0-999.json", "notes.txt",
                 "mpd.slice.x.json"):
        (tmp_path / name).write_text("{}")
    assert [path.name for path in slice_files(tmp_path)] == [
        "mpd.slice.0-999.json", "mpd.slice.1000-1999.json", "mpd.slice.10000-10999.json"]
    assert slice_pid_range("mpd.slice.1000-1999.json") == (1000, 1999)
    assert slice_pid_range("notes.txt") is None


def test_slice_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        slice_files(tmp_path / "missing")
    (tmp_path / "readme.md").write_text("")
    with pytest.raises(ValueError, match="holds no slice files"):
        slice_files(tmp_path)


def test_read_slice_reads_every_playlist(tmp_path):
    path = tmp_path / "mpd.slice.0-999.json"
    write_slice(path, [make_playlist(pid) for pid in range(3)])
    content = read_slice(path)
    assert content.error is None
    assert [playlist["pid"] for playlist in content.playlists] == [0, 1, 2]
    assert content.info["slice"] == "0-999"


def test_read_slice_salvages_a_truncated_file(tmp_path):
    path = tmp_path / "mpd.slice.0-999.json"
    write_slice(path, [make_playlist(pid) for pid in range(3)])
    text = path.read_text()
    path.write_text(text[: text.index('"pid": 2')])  # cut inside the third playlist
    content = read_slice(path)
    assert [playlist["pid"] for playlist in content.playlists] == [0, 1]
    assert "malformed JSON" in content.error and "salvaged 2 complete playlists" in content.error


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", 'not a slice: no top-level "playlists" array'),
    ('{"info": {}}', 'not a slice: no top-level "playlists" array'),
    ("\x00garbage", "malformed JSON"),
])
def test_read_slice_names_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "mpd.slice.0-999.json"
    path.write_text(text)
    content = read_slice(path)
    assert content.playlists == []
    assert message in content.error


@pytest.mark.parametrize("workers", [1, 2])
def test_map_slices_keeps_task_order(workers):
    names = [(f"mpd.slice.{i}-{i + 9}.json",) for i in range(0, 70, 10)]
    assert list(map_slices(slice_pid_range, names, workers)) == [(i, i + 9) for i in range(0, 70, 10)]
