"""Fetching audio features through spotipy against the fake Web API (a real HTTP server on 127.0.0.1)."""

import base64
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from fake_spotify import ACCESS_TOKEN, FakeSpotify
from raysweep.feature_matrix import read_feature_matrix
from raysweep.features.__main__ import EXIT_ACCESS_DENIED, EXIT_RESUMABLE, main
from raysweep.features.audio import AUDIO_FEATURES, AudioFeatureCache
from raysweep.features.spotify import (AccessDenied, FetchStopped, RateLimited, ServiceUnavailable,
                                       fetch_audio_features, spotify_client)
from handmade_datasets import write_dataset

CLIENT_ID = "client-id-4f1e"
SECRET = "sEcReT-do-not-print-9c2a71"
REPO = Path(__file__).resolve().parents[1]


def track_features(n, known=None, seed=0):
    """``n`` track ids (22 base62 chars, like Spotify's); features for the first ``known`` of them."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:022d}" for i in range(n)]
    known = n if known is None else known
    features = {i: dict(zip(AUDIO_FEATURES, rng.normal(size=len(AUDIO_FEATURES)).tolist())) for i in ids[:known]}
    return [f"spotify:track:{i}" for i in ids], features


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)


def serve(features, **knobs):
    return FakeSpotify(features, client_id=CLIENT_ID, client_secret=SECRET, **knobs)


def fetch(fake, cache, uris, sleeps=None, **options):
    client = spotify_client(timeout=5, api_prefix=fake.api_url, token_url=fake.token_url)
    sleep = sleeps.append if sleeps is not None else (lambda seconds: None)
    return fetch_audio_features(cache, uris, client, sleep=sleep, progress=False, **options)


def test_requests_are_ceil_missing_over_100_and_zero_on_rerun(tmp_path, credentials):
    uris, features = track_features(450)
    with serve(features) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        cache.store([(uri, None) for uri in uris[:130]], source="earlier run")
        report = fetch(fake, cache, uris)
        assert fake.requests == report.requests == math.ceil(320 / 100)
        assert sorted(fake.ids_requested) == sorted(u.rsplit(":", 1)[1] for u in uris[130:])
        fetch(fake, cache, uris)
        assert fake.requests == 4
        assert fake.token_requests == 1


def test_fetched_features_are_stored_per_uri(tmp_path, credentials):
    uris, features = track_features(120)
    with serve(features) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        fetch(fake, cache, uris)
        values, has = cache.lookup(uris)
    expected = np.array([[features[u.rsplit(":", 1)[1]][name] for name in AUDIO_FEATURES] for u in uris])
    assert has.all()
    np.testing.assert_allclose(values, expected)


def test_unknown_ids_are_cached_as_null_and_not_refetched(tmp_path, credentials):
    uris, features = track_features(150, known=140)
    with serve(features) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        report = fetch(fake, cache, uris)
        assert (report.tracks_ok, report.tracks_null) == (140, 10)
        assert cache.counts() == {"ok": 140, "null": 10}
        fetch(fake, cache, uris)
        assert fake.requests == 2


def test_fake_api_rejects_more_than_100_ids(credentials):
    uris, features = track_features(101)
    with serve(features) as fake:
        token = requests.post(fake.token_url, data={"grant_type": "client_credentials"},
                              auth=(CLIENT_ID, SECRET), timeout=5).json()["access_token"]
        answer = requests.get(fake.api_url + "audio-features", params={"ids": ",".join(features)},
                              headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 400


def test_rate_limit_within_max_wait_is_waited_then_retried(tmp_path, credentials):
    uris, features = track_features(300)
    sleeps = []
    with serve(features, rate_limits={2: 7}) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        report = fetch(fake, cache, uris, sleeps=sleeps, max_wait=60)
        assert sleeps == [7.0]
        assert fake.requests == report.requests == 4
        assert cache.counts()["ok"] == 300


def test_rate_limit_beyond_max_wait_saves_and_says_what_remains(tmp_path, credentials):
    uris, features = track_features(350)
    sleeps = []
    with serve(features, rate_limits={2: 3600}) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(RateLimited, match=r"wait 3600 s, more than --max-wait 60 s.*250 tracks remain") as info:
            fetch(fake, cache, uris, sleeps=sleeps, max_wait=60)
        assert info.value.remaining == 250
        assert sleeps == []
        assert cache.counts()["ok"] == 100
    with serve(features) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        fetch(fake, cache, uris)
        assert fake.requests == 3
        assert cache.counts()["ok"] == 350


def test_repeated_rate_limits_stop_once_their_sum_exceeds_max_wait(tmp_path, credentials):
    uris, features = track_features(100)
    sleeps = []
    with serve(features, rate_limits={1: 30, 2: 30, 3: 30}) as fake, \
            AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(RateLimited, match="100 tracks remain"):
            fetch(fake, cache, uris, sleeps=sleeps, max_wait=60)
        assert sleeps == [30.0, 30.0]
        assert fake.requests == 3


def test_forbidden_stops_at_once_explaining_the_closure(tmp_path, credentials):
    uris, features = track_features(500)
    with serve(features, forbidden=True) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(AccessDenied, match=r"HTTP 403.*2024-11-27.*--table PATH.*cooccurrence"):
            fetch(fake, cache, uris)
        assert fake.requests == 1


def test_server_errors_are_retried_with_exponential_backoff(tmp_path, credentials):
    uris, features = track_features(200)
    sleeps = []
    with serve(features, server_errors={1, 2, 3}) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        fetch(fake, cache, uris, sleeps=sleeps, backoff=0.5)
        assert sleeps == [0.5, 1.0, 2.0]
        assert fake.requests == 5
        assert cache.counts()["ok"] == 200


def test_persistent_server_errors_stop_after_max_retries(tmp_path, credentials):
    uris, features = track_features(200)
    with serve(features, server_errors=set(range(1, 20))) as fake, \
            AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ServiceUnavailable, match="HTTP 503.* after 2 retries.*200 tracks remain"):
            fetch(fake, cache, uris, max_retries=2)
        assert fake.requests == 3


def test_connection_errors_are_retried_then_stop(tmp_path, credentials):
    uris, _ = track_features(10)
    sleeps = []
    with AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        client = spotify_client(timeout=2, api_prefix="http://127.0.0.1:9/v1/", token_url="http://127.0.0.1:9/t")
        with pytest.raises(ServiceUnavailable, match="ConnectionError"):
            fetch_audio_features(cache, uris, client, max_retries=2, sleep=sleeps.append, progress=False)
    assert sleeps == [1.0, 2.0]


def test_wrong_credentials_stop_naming_the_variables(tmp_path, credentials, monkeypatch):
    uris, features = track_features(10)
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "wrong")
    with serve(features) as fake, AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(FetchStopped, match="invalid_client.*SPOTIPY_CLIENT_SECRET"):
            fetch(fake, cache, uris)
        assert fake.requests == 0


def test_missing_credentials_name_the_variable(monkeypatch):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", CLIENT_ID)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    with pytest.raises(ValueError, match="set SPOTIPY_CLIENT_SECRET in the environment"):
        spotify_client()


@pytest.fixture
def small_dataset(tmp_path):
    """30 playlists of 20 tracks drawn from 400 tracks, and the fake API's features for all of them."""
    uris, features = track_features(400)
    rng = np.random.default_rng(3)
    playlists = {pid: list(rng.choice(uris, size=20, replace=False)) for pid in range(30)}
    n_used = len({uri for tracks in playlists.values() for uri in tracks})
    return write_dataset(tmp_path / "dataset", playlists), features, n_used


def cli(dataset, out, fake, *extra):
    return ["audio", "--dataset", str(dataset), "--out", str(out), "--spotify",
            "--api-url", fake.api_url, "--token-url", fake.token_url, *extra]


def test_cli_spotify_writes_the_matrix(small_dataset, tmp_path, credentials, capsys):
    dataset, features, n_used = small_dataset
    with serve(features) as fake:
        assert main(cli(dataset, tmp_path / "out.parquet", fake)) == 0
        assert fake.requests == math.ceil(n_used / 100)
    assert read_feature_matrix(tmp_path / "out.parquet").values.shape == (30, 13)


def test_cli_resumes_after_a_kill_between_batches(small_dataset, tmp_path):
    dataset, features, n_used = small_dataset
    env = {**os.environ, "SPOTIPY_CLIENT_ID": CLIENT_ID, "SPOTIPY_CLIENT_SECRET": SECRET}
    with serve(features, hold_after=2) as fake:
        process = subprocess.Popen([sys.executable, "-m", "raysweep.features",
                                    *cli(dataset, tmp_path / "out.parquet", fake)],
                                   env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert fake.held.wait(60), "the CLI never sent its third request"
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate()
    with AudioFeatureCache(tmp_path / "audio_features_cache.sqlite") as cache:
        assert cache.counts()["ok"] == 200  # the two batches answered before the kill
    with serve(features) as fake:
        rerun = subprocess.run([sys.executable, "-m", "raysweep.features",
                                *cli(dataset, tmp_path / "out.parquet", fake)],
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert fake.requests == math.ceil((n_used - 200) / 100)
    assert read_feature_matrix(tmp_path / "out.parquet").values.shape == (30, 13)


def test_cli_rate_limit_beyond_cap_exits_resumable(small_dataset, tmp_path, credentials, capsys):
    dataset, features, n_used = small_dataset
    with serve(features, rate_limits={1: 120}) as fake:
        status = main(cli(dataset, tmp_path / "out.parquet", fake, "--max-wait", "5"))
    assert status == EXIT_RESUMABLE
    assert f"{n_used} tracks remain" in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists()


def test_cli_403_exits_with_the_explanation(small_dataset, tmp_path, credentials, capsys):
    dataset, features, _ = small_dataset
    with serve(features, forbidden=True) as fake:
        status = main(cli(dataset, tmp_path / "out.parquet", fake))
    assert status == EXIT_ACCESS_DENIED
    err = capsys.readouterr().err
    assert "Since 2024-11-27 Spotify no longer serves audio-features" in err
    assert "python -m raysweep.features cooccurrence" in err


def test_secrets_never_appear_in_output_logs_or_files(small_dataset, tmp_path, credentials, capsys, caplog,
                                                      monkeypatch):
    dataset, features, _ = small_dataset
    monkeypatch.chdir(tmp_path)
    caplog.set_level("DEBUG")
    outputs = []
    for knobs in ({"forbidden": True}, {"rate_limits": {2: 999}}, {"server_errors": {1}}, {}):
        with serve(features, **knobs) as fake:
            main(cli(dataset, tmp_path / "out.parquet", fake, "--max-retries", "1"))
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    secrets = [SECRET, ACCESS_TOKEN, base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()]
    files = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and "dataset" not in path.parts]
    assert not (tmp_path / ".cache").exists()  # spotipy's default token file
    assert (tmp_path / "out.parquet").exists()
    for secret in secrets:
        assert secret not in "".join(outputs) + caplog.text
        assert not any(secret.encode() in content for content in files)


def test_cli_429_storm_longer_than_max_wait_stops_with_one_line_and_the_rerun_completes(small_dataset, tmp_path,
                                                                                        credentials, capsys):
    dataset, features, n_used = small_dataset
    with serve(features) as fake:
        assert main(cli(dataset, tmp_path / "undisturbed" / "out.parquet", fake)) == 0
    capsys.readouterr()
    # Every request after the first is told to wait 1 s: the waits add up past --max-wait 1 within one batch.
    with serve(features, rate_limits={number: 1 for number in range(2, 100)}) as fake:
        status = main(cli(dataset, tmp_path / "out.parquet", fake, "--max-wait", "1"))
        assert fake.requests == 3  # batch 1, then batch 2 twice (one wait of 1 s, then the stop)
    err = capsys.readouterr().err
    assert status == EXIT_RESUMABLE
    assert [line for line in err.splitlines() if not line.startswith("WARNING")] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("stopped: Spotify rate limit") and "\x1b[" not in err
    assert f"more than --max-wait 1 s. Progress is saved in the cache; {n_used - 100} tracks remain" in err
    assert not (tmp_path / "out.parquet").exists()

    with serve(features) as fake:
        assert main(cli(dataset, tmp_path / "out.parquet", fake)) == 0
        assert fake.requests == math.ceil((n_used - 100) / 100)  # the first batch came from the cache
    rerun, undisturbed = (read_feature_matrix(path) for path in (tmp_path / "out.parquet",
                                                                 tmp_path / "undisturbed" / "out.parquet"))
    np.testing.assert_array_equal(rerun.pid, undisturbed.pid)
    np.testing.assert_array_equal(rerun.values, undisturbed.values)
