"""Data and results on S3 through pyarrow's S3 filesystem, against a moto server on 127.0.0.1: the ingest dataset,
the feature matrix, and a sweep whose features, Ray Tune experiment and results live in the bucket."""

import json
import uuid

import boto3
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import read_feature_matrix, write_feature_matrix
from raysweep.ingest import ingest
from raysweep.storage import filesystem_and_path
from raysweep.synth import generate
from raysweep.tune import main


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh, empty bucket on the moto server; yields its boto3 client and name."""
    client = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    name = f"raysweep-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield client, name


def _uri(s3_endpoint, bucket_name, key):
    return f"s3://{bucket_name}/{key}?endpoint_override={s3_endpoint}&scheme=http"


def _keys(client, bucket_name, prefix=""):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_ingest_dataset_in_the_bucket_reads_back_through_pyarrow(s3_endpoint, bucket, tmp_path):
    client, name = bucket
    generate(tmp_path / "mpd", 200, slice_size=100, seed=1, workers=1)
    local = tmp_path / "dataset"
    ingest(tmp_path / "mpd" / "data", local, workers=1)
    s3, root = filesystem_and_path(_uri(s3_endpoint, name, "dataset"))

    pafs.copy_files(str(local), root, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=s3)

    assert "dataset/manifest.csv" in _keys(client, name)
    for table in ("playlists", "tracks", "playlist_tracks"):
        remote = ds.dataset(f"{root}/{table}", filesystem=s3, format="parquet").to_table()
        assert remote.equals(ds.dataset(local / table, format="parquet").to_table()), table


def test_feature_matrix_round_trips_through_the_bucket(s3_endpoint, bucket):
    client, name = bucket
    rng = np.random.default_rng(0)
    pid = np.arange(50, dtype=np.int64)
    values = rng.normal(size=(50, 3)).astype(np.float32)
    metadata = {"source": "test", "scaling": {"kind": "none"}}

    write_feature_matrix(_uri(s3_endpoint, name, "features/matrix.parquet"), pid, values, ["a", "b", "c"], metadata)
    matrix = read_feature_matrix(_uri(s3_endpoint, name, "features/matrix.parquet"))

    assert _keys(client, name) == ["features/matrix.parquet"]
    np.testing.assert_array_equal(matrix.pid, pid)
    np.testing.assert_array_equal(matrix.values, values)
    assert matrix.columns == ["a", "b", "c"]
    assert matrix.metadata == metadata


def test_missing_feature_matrix_in_the_bucket_names_the_uri(s3_endpoint, bucket):
    _, name = bucket
    uri = _uri(s3_endpoint, name, "absent.parquet")
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        read_feature_matrix(uri)


@pytest.mark.slow
def test_sweep_command_on_the_bucket_and_a_new_head_reads_it_back(ray_local, s3_endpoint, bucket, tmp_path):
    client, name = bucket
    X, _ = make_blobs(n_samples=600, centers=3, n_features=4, cluster_std=0.8, random_state=0)
    features = _uri(s3_endpoint, name, "features/matrix.parquet")
    write_feature_matrix(features, np.arange(len(X)), X, ["f0", "f1", "f2", "f3"], {"source": "test"})
    command = ["--features", features, "--fraction", "1", "--models", "kmeans", "--k-min", "2", "--k-max", "5",
               "--exhaustive", "--name", "e2e", "--storage", _uri(s3_endpoint, name, "runs")]

    assert main([*command, "--results", str(tmp_path / "head_1")]) == 0
    run_dir = tmp_path / "head_1" / "e2e"

    keys = _keys(client, name, "runs/e2e/")
    assert {"runs/e2e/leaderboard.parquet", "runs/e2e/winner.json", "runs/e2e/run.json"} <= set(keys)
    winner = json.loads(client.get_object(Bucket=name, Key="runs/e2e/winner.json")["Body"].read())
    assert winner == json.loads((run_dir / "winner.json").read_text())
    assert (winner["model"], winner["k"]) == ("kmeans", 3)
    tune_keys = [key for key in keys if key.startswith("runs/e2e/rung_")]
    assert {key.split("/")[2] for key in tune_keys} == {"rung_0"}  # Ray Tune's experiment, in the bucket

    # A new head node (say the first one was lost): an empty results folder, the same command. The finished rung
    # comes back from the bucket; no trial runs again.
    assert main([*command, "--results", str(tmp_path / "head_2")]) == 0
    rerun_dir = tmp_path / "head_2" / "e2e"

    assert not (rerun_dir / "rungs" / "rung_0.trials.jsonl").exists()
    assert [key for key in _keys(client, name, "runs/e2e/") if key.startswith("runs/e2e/rung_")] == tune_keys
    pd.testing.assert_frame_equal(pd.read_parquet(rerun_dir / "leaderboard.parquet"),
                                  pd.read_parquet(run_dir / "leaderboard.parquet"))
    assert json.loads((rerun_dir / "winner.json").read_text()) == winner


def test_features_audio_to_a_bucket_without_cache_keeps_the_cache_in_the_working_directory(s3_endpoint, bucket,
                                                                                            tmp_path, monkeypatch):
    """The README's scale-out command: ``features audio --table ... --out s3://...`` with no ``--cache``."""
    from handmade_datasets import write_dataset
    from raysweep.features.__main__ import main as features_main
    from raysweep.features.audio import AUDIO_FEATURES

    client, name = bucket
    uris = [f"spotify:track:t{i:05d}" for i in range(40)]
    rng = np.random.default_rng(0)
    dataset = write_dataset(tmp_path / "dataset", {pid: list(rng.choice(uris, size=10)) for pid in range(20)})
    table = pd.DataFrame(rng.normal(size=(len(uris), len(AUDIO_FEATURES))), columns=list(AUDIO_FEATURES))
    table.insert(0, "track_uri", uris)
    table.to_parquet(tmp_path / "track_features.parquet")
    monkeypatch.chdir(tmp_path)
    out = _uri(s3_endpoint, name, "features/audio.parquet")

    assert features_main(["audio", "--dataset", str(dataset), "--table", "track_features.parquet",
                          "--out", out]) == 0

    assert _keys(client, name) == ["features/audio.parquet"]
    assert read_feature_matrix(out).values.shape == (20, 13)
    assert (tmp_path / "audio_features_cache.sqlite").exists()
