"""Tests of the MPD-format generator: format, invariants, determinism, the features table, outliers, realism."""

import collections
import json

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from raysweep.mpd import normalize_name, playlist_violations, slice_files, slice_pid_range
from raysweep.synth import AUDIO_FEATURES, OUTLIER_KINDS, generate, main

OUTLIER_RATE = 0.1  # of the `with_outliers` data: high, so each kind has ~50 playlists to measure


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """250 playlists in slices of 100, generated in this process."""
    out = tmp_path_factory.mktemp("synth") / "mpd"
    summary = generate(out, 250, slice_size=100, profiles=5, seed=3, workers=1)
    return out, summary


@pytest.fixture(scope="module")
def with_outliers(tmp_path_factory):
    """2,000 playlists of which ~10% are outliers, with their planted table and mean audio features."""
    out = tmp_path_factory.mktemp("synth") / "mpd"
    generate(out, 2000, slice_size=500, profiles=5, seed=5, workers=1, outlier_rate=OUTLIER_RATE)
    playlists = load_playlists(out)
    planted = pq.read_table(out / "planted_profiles.parquet").to_pandas()
    return out, playlists, planted, playlist_means(out, playlists)


def load_playlists(folder):
    return [playlist for path in slice_files(folder / "data")
            for playlist in orjson.loads(path.read_bytes())["playlists"]]


def playlist_means(folder, playlists):
    """Each playlist's mean of the 13 audio features over its tracks, shape (n_playlists, 13)."""
    features = pq.read_table(folder / "track_audio_features.parquet")
    row_of = {uri: row for row, uri in enumerate(features.column("track_uri").to_pylist())}
    lengths = np.array([p["num_tracks"] for p in playlists])
    rows = np.fromiter((row_of[t["track_uri"]] for p in playlists for t in p["tracks"]), dtype=np.int64)
    values = np.column_stack([features.column(name).to_numpy() for name in AUDIO_FEATURES]).astype(float)
    return np.add.reduceat(values[rows], np.cumsum(lengths) - lengths, axis=0) / lengths[:, None]


def inlier_z(planted, means, kind):
    """Mean features of the ``kind`` outliers in standard deviations of the inliers, by feature name."""
    inliers = means[(planted["outlier"] == "").to_numpy()]
    z = (means[(planted["outlier"] == kind).to_numpy()] - inliers.mean(axis=0)) / inliers.std(axis=0)
    return dict(zip(AUDIO_FEATURES, z.mean(axis=0)))


def test_slices_are_named_by_their_pid_range(small):
    out, summary = small
    assert [path.name for path in slice_files(out / "data")] == [
        "mpd.slice.0-99.json", "mpd.slice.100-199.json", "mpd.slice.200-249.json"]
    assert summary["slices"] == 3 and summary["playlists"] == 250
    assert [p["pid"] for p in load_playlists(out)] == list(range(250))


def test_every_playlist_passes_the_invariant_checker(small):
    out, _ = small
    for path in slice_files(out / "data"):
        for playlist in orjson.loads(path.read_bytes())["playlists"]:
            assert playlist_violations(playlist, slice_pid_range(path)) == [], playlist["pid"]


def test_files_are_formatted_like_the_real_mpd(small):
    """The real files are Python 2 json.dumps(indent=4): 4-space indent, ", " separators, ASCII escapes."""
    out, _ = small
    text = (out / "data" / "mpd.slice.100-199.json").read_text(encoding="ascii")
    assert text.startswith('{\n    "info": {\n        "generated_on": "2017-12-03 00:00:00.000000", \n'
                           '        "slice": "100-199", \n        "version": "v1"\n    }, \n    "playlists": [\n'
                           '        {\n            "name": ')
    assert json.dumps(json.loads(text), indent=4, separators=(", ", ": ")) == text


def test_summary_counts_match_the_files(small):
    out, summary = small
    playlists = load_playlists(out)
    assert summary["track_entries"] == sum(p["num_tracks"] for p in playlists)
    assert summary["unique_tracks"] == len({t["track_uri"] for p in playlists for t in p["tracks"]})
    assert summary["json_bytes"] == sum(path.stat().st_size for path in slice_files(out / "data"))


def test_audio_features_cover_every_track_in_real_units(small):
    out, summary = small
    table = pq.read_table(out / "track_audio_features.parquet").to_pandas()
    assert list(table.columns) == ["track_uri", *AUDIO_FEATURES]
    durations = {t["track_uri"]: t["duration_ms"] for p in load_playlists(out) for t in p["tracks"]}
    assert table["track_uri"].is_unique and set(table["track_uri"]) == set(durations)
    assert (table["duration_ms"] == table["track_uri"].map(durations)).all()
    for column in ("danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness", "valence"):
        assert table[column].between(0, 1).all(), column
    assert table["key"].between(0, 11).all() and set(table["mode"]) <= {0, 1}
    assert set(table["time_signature"]) <= {3, 4, 5}
    assert table["loudness"].between(-60, 0).all() and table["tempo"].between(40, 220).all()


def test_planted_profiles_name_every_pid(small):
    out, _ = small
    planted = pq.read_table(out / "planted_profiles.parquet").to_pandas()
    assert list(planted.columns) == ["pid", "profile", "outlier"]
    assert planted["pid"].tolist() == list(range(250))
    assert planted["profile"].between(0, 4).all() and planted["profile"].nunique() > 1
    assert set(planted["outlier"]) <= {"", *OUTLIER_KINDS}


def test_outliers_occur_at_the_stated_rate_a_quarter_per_kind(with_outliers):
    _, _, planted, _ = with_outliers
    counts = planted["outlier"].value_counts()
    expected = OUTLIER_RATE * len(planted)  # binomial: sd ~13 overall, ~7 per kind
    assert abs(len(planted) - counts[""] - expected) < 4 * np.sqrt(expected)
    for kind in OUTLIER_KINDS:
        assert abs(counts[kind] - expected / 4) < 4 * np.sqrt(expected / 4), kind


def test_outlier_playlists_pass_the_invariant_checker(with_outliers):
    out, _, planted, _ = with_outliers
    outliers = set(planted.loc[planted["outlier"] != "", "pid"])
    for path in slice_files(out / "data"):
        for playlist in orjson.loads(path.read_bytes())["playlists"]:
            if playlist["pid"] in outliers:
                assert playlist_violations(playlist, slice_pid_range(path)) == [], playlist["pid"]


def test_taste_profiles_never_draw_the_outlier_genres(with_outliers):
    """Live, sounds and spoken playlists draw from genres of their own: no inlier shares a track with them."""
    _, playlists, planted, _ = with_outliers
    kind = dict(zip(planted["pid"], planted["outlier"]))
    tracks = {group: set() for group in ("inlier", "own genres")}
    for p in playlists:
        group = "inlier" if kind[p["pid"]] in ("", "short") else "own genres"
        tracks[group].update(t["track_uri"] for t in p["tracks"])
    assert tracks["own genres"] and not tracks["inlier"] & tracks["own genres"]


def test_live_playlists_have_high_liveness(with_outliers):
    _, _, planted, means = with_outliers
    z = inlier_z(planted, means, "live")
    assert z["liveness"] > 8
    live = means[(planted["outlier"] == "live").to_numpy(), AUDIO_FEATURES.index("liveness")]
    assert 0.7 <= live.mean() <= 0.95  # what Spotify reports for live albums


def test_sounds_playlists_are_quiet_instrumental_joyless_and_long(with_outliers):
    _, _, planted, means = with_outliers
    z = inlier_z(planted, means, "sounds")
    assert z["instrumentalness"] > 3 and z["duration_ms"] > 5
    assert z["loudness"] < -4 and z["valence"] < -3 and z["danceability"] < -3
    loudness = means[(planted["outlier"] == "sounds").to_numpy(), AUDIO_FEATURES.index("loudness")]
    assert -35 <= loudness.min() and loudness.max() <= -20


def test_spoken_playlists_are_speech_without_instruments(with_outliers):
    _, _, planted, means = with_outliers
    z = inlier_z(planted, means, "spoken")
    assert z["speechiness"] > 8 and z["instrumentalness"] < -0.5
    speech = means[(planted["outlier"] == "spoken").to_numpy(), AUDIO_FEATURES.index("speechiness")]
    assert 0.8 <= speech.min() and speech.max() <= 0.97


def test_short_playlists_have_5_to_7_tracks_and_scattered_means(with_outliers):
    """Only short outliers have 5-7 tracks, and their few tracks leave their means farther from the centre."""
    _, playlists, planted, means = with_outliers
    short = (planted["outlier"] == "short").to_numpy()
    lengths = np.array([p["num_tracks"] for p in playlists])
    assert set(lengths[short]) <= {5, 6, 7} and (lengths[~short] >= 8).all()
    inliers = (planted["outlier"] == "").to_numpy()
    z = (means - means[inliers].mean(axis=0)) / means[inliers].std(axis=0)
    distance = np.sqrt((z ** 2).mean(axis=1))
    assert np.median(distance[short]) > 1.3 * np.median(distance[inliers])


def test_same_seed_same_bytes_whatever_the_worker_count(small, tmp_path):
    out, _ = small
    generate(tmp_path / "again", 250, slice_size=100, profiles=5, seed=3, workers=2)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        assert (tmp_path / "again" / path.relative_to(out)).read_bytes() == path.read_bytes(), path.name


def test_first_slices_do_not_depend_on_the_total(small, tmp_path):
    out, _ = small
    generate(tmp_path / "short", 100, slice_size=100, profiles=5, seed=3, workers=1)
    assert ((tmp_path / "short" / "data" / "mpd.slice.0-99.json").read_bytes()
            == (out / "data" / "mpd.slice.0-99.json").read_bytes())


def test_another_seed_gives_other_data(small, tmp_path):
    out, _ = small
    generate(tmp_path / "other", 100, slice_size=100, profiles=5, seed=4, workers=1)
    assert ((tmp_path / "other" / "data" / "mpd.slice.0-99.json").read_bytes()
            != (out / "data" / "mpd.slice.0-99.json").read_bytes())


@pytest.mark.parametrize("options, message", [
    ({"playlists": 0}, "playlists must be a positive integer, got 0"),
    ({"playlists": 10, "outlier_rate": 1.5}, "outlier_rate must be between 0 and 1, got 1.5"),
    ({"playlists": 10, "slice_size": -1}, "slice_size must be a positive integer"),
    ({"playlists": 10, "profiles": 0}, "profiles must be a positive integer"),
    ({"playlists": 10, "workers": 0}, "workers must be a positive integer or None"),
])
def test_bad_options_are_named(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "out", **options)


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        generate(tmp_path, 10)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_command_line_prints_the_summary(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--playlists", "20", "--slice-size", "10", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["playlists"] == 20 and summary["slices"] == 2
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    assert (tmp_path / "cli" / "data" / "mpd.slice.10-19.json").exists()


def test_command_line_sets_the_outlier_rate(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--playlists", "40", "--workers", "1", "--outlier-rate", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["outliers"] == dict.fromkeys(OUTLIER_KINDS, 0)
    assert set(pq.read_table(tmp_path / "cli" / "planted_profiles.parquet").column("outlier").to_pylist()) == {""}


@pytest.mark.slow
def test_statistics_of_20k_playlists_are_near_the_mpd(tmp_path):
    """Length mean ~66 and mode ~20, a top track in ~5% of playlists, the MPD's top titles, separable profiles.

    All with the default 1% of outliers; the profiles are recovered by KMeans fitted on the inlier playlists (the
    outliers' own tests are above).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    out = tmp_path / "mpd"
    generate(out, 20_000, seed=0)
    playlists = load_playlists(out)
    lengths = np.array([p["num_tracks"] for p in playlists])
    assert 60 <= lengths.mean() <= 72
    smoothed = np.convolve(np.bincount(lengths), np.ones(5) / 5, mode="same")
    assert 14 <= smoothed.argmax() <= 28
    track_playlists = collections.Counter(uri for p in playlists for uri in {t["track_uri"] for t in p["tracks"]})
    assert 0.02 <= max(track_playlists.values()) / len(playlists) <= 0.10
    titles = collections.Counter(normalize_name(p["name"]) for p in playlists)
    assert {"country", "chill", "rap"} <= {title for title, _ in titles.most_common(6)}
    assert len(titles) < len({p["name"] for p in playlists}) / 1.2  # normalization merges spelling variants

    planted = pq.read_table(out / "planted_profiles.parquet").to_pandas()
    inliers = (planted["outlier"] == "").to_numpy()
    assert 150 <= (~inliers).sum() <= 250  # 1% of 20,000; binomial sd 14
    means = playlist_means(out, playlists)[inliers]
    scaled = (means - means.mean(axis=0)) / means.std(axis=0)
    labels = KMeans(17, n_init=2, random_state=0).fit_predict(scaled)
    assert adjusted_rand_score(planted["profile"][inliers], labels) > 0.5
