"""Audio features: the feature table and the playlist means (checked against pandas)."""

import json
import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysweep.feature_matrix import read_feature_matrix
from raysweep.features.__main__ import main
from raysweep.features.audio import AUDIO_FEATURES, build_audio_features, read_feature_table

from handmade_datasets import write_dataset


def feature_table(uris, seed=0) -> pd.DataFrame:
    """Random audio features for ``uris``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(len(uris), len(AUDIO_FEATURES))), columns=list(AUDIO_FEATURES))
    frame.insert(0, "track_uri", list(uris))
    return frame


@pytest.fixture
def random_dataset(tmp_path):
    """60 playlists of 5-30 entries over 150 tracks (repeats allowed); features for 120 of the tracks."""
    rng = np.random.default_rng(1)
    uris = [f"spotify:track:t{i:05d}" for i in range(150)]
    playlists = {int(pid): list(rng.choice(uris, size=rng.integers(5, 31))) for pid in rng.permutation(1000)[:60]}
    dataset = write_dataset(tmp_path / "dataset", playlists)
    table = feature_table(uris[:120])
    table.to_parquet(tmp_path / "features.parquet")
    return dataset, playlists, table, tmp_path


def expected_means(playlists, table) -> pd.DataFrame:
    entries = pd.DataFrame([(pid, uri) for pid, tracks in playlists.items() for uri in tracks],
                           columns=["pid", "track_uri"])
    return entries.merge(table, on="track_uri").groupby("pid")[list(AUDIO_FEATURES)].mean()


def test_means_equal_pandas_groupby(random_dataset):
    dataset, playlists, table, tmp = random_dataset
    build_audio_features(dataset, tmp / "out.parquet", table=tmp / "features.parquet", min_coverage=0.0)
    matrix = read_feature_matrix(tmp / "out.parquet")
    expected = expected_means(playlists, table)
    np.testing.assert_array_equal(matrix.pid, np.sort(expected.index.to_numpy()))
    np.testing.assert_allclose(matrix.values, expected.sort_index().to_numpy(), rtol=1e-5, atol=1e-6)


def test_scaling_record_is_mean_and_std_of_raw_means(random_dataset):
    dataset, playlists, table, tmp = random_dataset
    build_audio_features(dataset, tmp / "out.parquet", table=tmp / "features.parquet", min_coverage=0.0)
    matrix = read_feature_matrix(tmp / "out.parquet")
    expected = expected_means(playlists, table)
    assert matrix.metadata["source"] == "audio"
    assert matrix.metadata["scaling"]["kind"] == "standard"
    np.testing.assert_allclose(matrix.metadata["scaling"]["mean"], expected.mean().to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(matrix.metadata["scaling"]["std"], expected.std(ddof=0).to_numpy(), rtol=1e-6)


def test_min_coverage_leaves_out_and_counts_playlists(tmp_path):
    # coverage: pid 1 -> 4/4, pid 2 -> 2/4, pid 3 -> 1/4
    playlists = {1: ["a1", "a2", "a3", "a4"], 2: ["a1", "a2", "b1", "b2"], 3: ["a3", "b3", "b4", "b5"]}
    playlists = {pid: [f"spotify:track:{t}" for t in tracks] for pid, tracks in playlists.items()}
    dataset = write_dataset(tmp_path / "dataset", playlists)
    feature_table([f"spotify:track:a{i}" for i in range(1, 5)]).to_parquet(tmp_path / "f.parquet")
    summary = build_audio_features(dataset, tmp_path / "out.parquet", table=tmp_path / "f.parquet",
                                   min_coverage=0.5)
    matrix = read_feature_matrix(tmp_path / "out.parquet")
    assert matrix.pid.tolist() == [1, 2]
    assert summary["n_playlists_left_out"] == matrix.metadata["n_playlists_left_out"] == 1
    assert matrix.metadata["min_coverage"] == 0.5
    assert matrix.metadata["coverage"]["tracks_with_features"] == 4


def test_no_playlist_reaching_coverage_is_an_error(random_dataset):
    dataset, _, table, tmp = random_dataset
    table.head(3).to_parquet(tmp / "three_tracks.parquet")
    with pytest.raises(ValueError, match="no playlist reaches min_coverage=0.5"):
        build_audio_features(dataset, tmp / "out.parquet", table=tmp / "three_tracks.parquet", min_coverage=0.5)


def test_min_coverage_outside_unit_interval_is_an_error(random_dataset):
    dataset, _, _, tmp = random_dataset
    with pytest.raises(ValueError, match="min_coverage=1.5"):
        build_audio_features(dataset, tmp / "out.parquet", min_coverage=1.5)


def test_second_build_reads_the_cache_without_the_table(random_dataset):
    dataset, _, _, tmp = random_dataset
    build_audio_features(dataset, tmp / "a.parquet", table=tmp / "features.parquet", cache=tmp / "c.sqlite")
    build_audio_features(dataset, tmp / "b.parquet", cache=tmp / "c.sqlite")
    np.testing.assert_array_equal(read_feature_matrix(tmp / "a.parquet").values,
                                  read_feature_matrix(tmp / "b.parquet").values)


def test_default_cache_is_beside_the_output(random_dataset):
    dataset, _, _, tmp = random_dataset
    summary = build_audio_features(dataset, tmp / "out" / "f.parquet", table=tmp / "features.parquet")
    assert summary["cache"] == str(tmp / "out" / "audio_features_cache.sqlite")
    assert (tmp / "out" / "audio_features_cache.sqlite").exists()


def test_feature_table_reads_csv(tmp_path):
    feature_table(["spotify:track:a", "spotify:track:b"]).to_csv(tmp_path / "f.csv", index=False)
    table = read_feature_table(tmp_path / "f.csv")
    assert table.column_names == ["track_uri", *AUDIO_FEATURES]
    assert table.num_rows == 2


def test_feature_table_without_some_features_reads_the_others(tmp_path):
    feature_table(["spotify:track:a"]).drop(columns=["valence", "tempo"]).to_parquet(tmp_path / "f.parquet")
    table = read_feature_table(tmp_path / "f.parquet")
    assert table.column_names == ["track_uri", *(name for name in AUDIO_FEATURES if name not in ("valence", "tempo"))]


def test_feature_table_lacking_a_requested_feature_names_it_and_those_it_has(tmp_path):
    feature_table(["spotify:track:a"])[["track_uri", "energy", "tempo"]].to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match=r"f\.parquet: has no column valence \(its audio features: energy, tempo\)"):
        read_feature_table(tmp_path / "f.parquet", columns=["energy", "valence"])


def test_feature_table_without_any_feature_is_named(tmp_path):
    pd.DataFrame({"track_uri": ["spotify:track:a"], "popularity": [3]}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match=r"f\.parquet: none of the 13 audio features .* popularity"):
        read_feature_table(tmp_path / "f.parquet")


def test_feature_table_without_a_key_column_is_named(tmp_path):
    feature_table(["spotify:track:a"]).rename(columns={"track_uri": "uri"}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match=r"f\.parquet: no track_uri column, nor a track id column \(id or track_id\)"):
        read_feature_table(tmp_path / "f.parquet")


@pytest.mark.parametrize("key", ["id", "track_id"])
def test_feature_table_keyed_by_bare_ids_gets_track_uris(tmp_path, key):
    ids = ["4uLU6hMCjMI75M1A2tKUQC", "7ouMYWpwJ422jRcDASZB7P"]
    feature_table(ids).rename(columns={"track_uri": key}).to_csv(tmp_path / "f.csv", index=False)
    table = read_feature_table(tmp_path / "f.csv")
    assert table.column("track_uri").to_pylist() == [f"spotify:track:{i}" for i in ids]


def test_feature_table_id_that_is_not_a_track_id_is_named(tmp_path):
    frame = feature_table(["4uLU6hMCjMI75M1A2tKUQC", "12"]).rename(columns={"track_uri": "id"})
    frame.to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match="column id holds '12', not a bare 22-character Spotify track id"):
        read_feature_table(tmp_path / "f.parquet")


def test_feature_table_nulls_in_a_column_not_read_do_not_matter(tmp_path):
    frame = feature_table(["spotify:track:a", "spotify:track:b"])
    frame.loc[1, "tempo"] = None
    frame.to_parquet(tmp_path / "f.parquet")
    assert read_feature_table(tmp_path / "f.parquet", columns=["energy"]).column_names == ["track_uri", "energy"]


def test_feature_table_duplicate_uri_is_named(tmp_path):
    feature_table(["spotify:track:a", "spotify:track:b", "spotify:track:a"]).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match="track_uri spotify:track:a appears more than once"):
        read_feature_table(tmp_path / "f.parquet")


def test_feature_table_null_value_is_named(tmp_path):
    frame = feature_table(["spotify:track:a", "spotify:track:b"])
    frame.loc[1, "energy"] = None
    frame.to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ValueError, match="column energy has 1 null values"):
        read_feature_table(tmp_path / "f.parquet")


def test_playlist_tracks_with_unknown_pid_is_an_error(random_dataset):
    dataset, _, _, tmp = random_dataset
    pq.write_table(pa.table({"pid": pa.array([10_000], pa.int64()), "pos": pa.array([0], pa.int32()),
                             "track_id": pa.array([0], pa.int64())}), dataset / "playlist_tracks" / "part-1.parquet")
    with pytest.raises(ValueError, match="references pid 10000 that is not in playlists"):
        build_audio_features(dataset, tmp / "out.parquet", table=tmp / "features.parquet")


def test_missing_dataset_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tracks/ folder"):
        build_audio_features(tmp_path, tmp_path / "out.parquet")


def test_cli_audio_from_table(random_dataset, capsys):
    dataset, playlists, table, tmp = random_dataset
    status = main(["audio", "--dataset", str(dataset), "--table", str(tmp / "features.parquet"),
                   "--out", str(tmp / "out.parquet"), "--min-coverage", "0"])
    assert status == 0
    assert '"n_playlists": 60' in capsys.readouterr().out
    assert read_feature_matrix(tmp / "out.parquet").values.shape == (60, 13)


def random_table_without(tmp, table, drop=(), constant=None):
    """The random dataset's feature table without the ``drop`` columns, ``constant`` columns set to 4."""
    frame = table.drop(columns=list(drop)).assign(**{name: 4 for name in constant or ()})
    frame.to_parquet(tmp / "real.parquet")
    return tmp / "real.parquet"


def test_table_without_a_feature_gives_a_matrix_of_the_others(random_dataset, caplog):
    dataset, playlists, table, tmp = random_dataset
    path = random_table_without(tmp, table, drop=["time_signature"])
    with caplog.at_level(logging.WARNING, logger="raysweep.features.audio"):
        summary = build_audio_features(dataset, tmp / "out.parquet", table=path, min_coverage=0.0)
    matrix = read_feature_matrix(tmp / "out.parquet")
    assert matrix.columns == list(AUDIO_FEATURES[:-1]) == summary["columns"]
    assert matrix.metadata["columns"] == {"used": matrix.columns, "left_out": {"time_signature": "not in the table"}}
    assert [r.getMessage() for r in caplog.records] == [
        f"audio features of {dataset}: left out time_signature (not in the table)"]
    expected = expected_means(playlists, table).sort_index()[matrix.columns]
    np.testing.assert_allclose(matrix.values, expected.to_numpy(), rtol=1e-5, atol=1e-6)


def test_constant_feature_is_left_out_with_a_warning(random_dataset, caplog):
    dataset, _, table, tmp = random_dataset
    path = random_table_without(tmp, table, constant=["time_signature"])
    with caplog.at_level(logging.WARNING, logger="raysweep.features.audio"):
        summary = build_audio_features(dataset, tmp / "out.parquet", table=path, min_coverage=0.0)
    assert summary["columns_left_out"] == {"time_signature": "constant: every track has 4"}
    assert read_feature_matrix(tmp / "out.parquet").columns == list(AUDIO_FEATURES[:-1])
    assert "left out time_signature (constant: every track has 4)" in caplog.text


def test_no_usable_feature_is_an_error_naming_the_reasons(random_dataset):
    dataset, _, table, tmp = random_dataset
    path = random_table_without(tmp, table[["track_uri", "mode"]], constant=["mode"])
    with pytest.raises(ValueError, match=r"no feature column left to use \(.*mode: constant: every track has 4"):
        build_audio_features(dataset, tmp / "out.parquet", table=path, min_coverage=0.0)


def test_columns_picks_the_features_without_a_warning(random_dataset, caplog):
    dataset, _, _, tmp = random_dataset
    with caplog.at_level(logging.WARNING, logger="raysweep.features.audio"):
        build_audio_features(dataset, tmp / "out.parquet", table=tmp / "features.parquet", min_coverage=0.0,
                             columns=["valence", "energy"])
    matrix = read_feature_matrix(tmp / "out.parquet")
    assert matrix.columns == ["energy", "valence"]  # in the canonical order
    assert matrix.metadata["columns"]["left_out"]["tempo"] == "not chosen (--columns)"
    assert caplog.records == []


def test_unknown_column_is_named_with_the_available_ones(random_dataset):
    dataset, _, _, tmp = random_dataset
    with pytest.raises(ValueError, match=r"--columns: unknown audio feature loudnes \(available: danceability, "
                                         r"energy, key, loudness"):
        build_audio_features(dataset, tmp / "out.parquet", table=tmp / "features.parquet", columns=["loudnes"])


def test_table_keyed_by_bare_ids_matches_the_dataset_uris(tmp_path):
    ids = [f"{i:022d}" for i in range(6)]
    playlists = {1: [f"spotify:track:{i}" for i in ids[:3]], 2: [f"spotify:track:{i}" for i in ids[3:]]}
    dataset = write_dataset(tmp_path / "dataset", playlists)
    feature_table(ids).rename(columns={"track_uri": "id"}).to_parquet(tmp_path / "f.parquet")
    summary = build_audio_features(dataset, tmp_path / "out.parquet", table=tmp_path / "f.parquet")
    assert summary["coverage"]["track_coverage"] == 1.0 and summary["n_playlists"] == 2


def test_cli_table_with_missing_and_constant_features_warns_and_exits_0(random_dataset):
    """The real command in a subprocess: its stderr holds one warning line naming both columns."""
    dataset, _, table, tmp = random_dataset
    path = random_table_without(tmp, table, drop=["key"], constant=["time_signature"])
    done = subprocess.run([sys.executable, "-m", "raysweep.features", "audio", "--dataset", str(dataset),
                           "--table", str(path), "--out", str(tmp / "out.parquet"), "--min-coverage", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"WARNING raysweep.features.audio: audio features of {dataset}: left out key (not in the table); "
        "time_signature (constant: every track has 4)"]
    assert json.loads(done.stdout)["columns_left_out"] == {"key": "not in the table",
                                                            "time_signature": "constant: every track has 4"}
    assert set(read_feature_matrix(tmp / "out.parquet").metadata["columns"]["left_out"]) == {"key", "time_signature"}


def test_cli_columns_option(random_dataset):
    dataset, _, _, tmp = random_dataset
    status = main(["audio", "--dataset", str(dataset), "--table", str(tmp / "features.parquet"),
                   "--out", str(tmp / "out.parquet"), "--min-coverage", "0", "--columns", "tempo, energy"])
    assert status == 0
    assert read_feature_matrix(tmp / "out.parquet").columns == ["energy", "tempo"]


def test_cli_unknown_column_exits_1_naming_it(random_dataset, capsys):
    dataset, _, _, tmp = random_dataset
    status = main(["audio", "--dataset", str(dataset), "--table", str(tmp / "features.parquet"),
                   "--out", str(tmp / "out.parquet"), "--columns", "energy,bpm"])
    assert status == 1
    assert "--columns: unknown audio feature bpm (available: danceability" in capsys.readouterr().err


def test_cli_bad_table_exits_1_naming_it(random_dataset, capsys):
    dataset, _, _, tmp = random_dataset
    status = main(["audio", "--dataset", str(dataset), "--table", str(tmp / "nope.parquet"),
                   "--out", str(tmp / "out.parquet")])
    assert status == 1
    assert "nope.parquet: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_generated_data_means_equal_pandas_groupby(generated_mpd, tmp_path):
    summary = build_audio_features(generated_mpd / "dataset", tmp_path / "out.parquet",
                                   table=generated_mpd / "mpd" / "track_audio_features.parquet")
    assert summary["coverage"]["track_coverage"] == 1.0
    assert summary["n_playlists_left_out"] == 0
    entries = pq.read_table(generated_mpd / "dataset" / "playlist_tracks").to_pandas()
    tracks = pq.read_table(generated_mpd / "dataset" / "tracks", columns=["track_id", "track_uri"]).to_pandas()
    table = pd.read_parquet(generated_mpd / "mpd" / "track_audio_features.parquet")
    expected = (entries.merge(tracks, on="track_id").merge(table, on="track_uri")
                .groupby("pid")[list(AUDIO_FEATURES)].mean().sort_index())
    matrix = read_feature_matrix(tmp_path / "out.parquet")
    np.testing.assert_array_equal(matrix.pid, expected.index.to_numpy())
    np.testing.assert_allclose(matrix.values, expected.to_numpy(), rtol=1e-5)
