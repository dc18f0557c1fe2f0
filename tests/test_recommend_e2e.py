"""The recommender end to end on a real finalized run of the generated data (1,000 playlists, 5 planted profiles):
audio features from the generator's track table -> a KMeans sweep on local Ray -> finalize -> recommend/evaluate."""

import json

import numpy as np
import pyarrow.dataset as pads
import pytest

from fake_spotify import FakeSpotify
from raysweep.recommend.__main__ import main
from raysweep.recommend.evaluate import evaluate
from raysweep.recommend.index import build_index
from raysweep.recommend.methods import METHODS
from raysweep.recommend.recommender import Recommender, SeedError, run_features
from raysweep.recommend.split import CATEGORIES, make_split


@pytest.fixture(scope="session")
def finalized(generated_mpd, ray_local, tmp_path_factory):
    """(run folder, dataset folder) of a finalized sweep over KMeans k = 2..6."""
    from raysweep.features.audio import build_audio_features
    from raysweep.finalize import finalize
    from raysweep.tune import SweepSettings, run_sweep

    folder = tmp_path_factory.mktemp("recommend_run")
    dataset = generated_mpd / "dataset"
    build_audio_features(dataset, folder / "features.parquet",
                         table=generated_mpd / "mpd" / "track_audio_features.parquet")
    run = run_sweep(SweepSettings(folder / "features.parquet", fraction=1.0, models=("kmeans",), k_min=2, k_max=6,
                                  exhaustive=True, results=folder / "results", name="rec", progress=False))
    finalize(run, dataset=dataset, plots=False, quiet=True, fractions=())
    return run, dataset


@pytest.fixture(scope="session")
def evaluation(finalized):
    run, dataset = finalized
    return evaluate(run, dataset, configs=[("kmeans", 5)], quiet=True)


@pytest.fixture(scope="session")
def recommender(finalized):
    run, dataset = finalized
    return Recommender.load(run, dataset)


def _overall(summary, method, clustering=""):
    [row] = [r for r in summary["results"] if r["category"] == "all" and r["method"] == method
             and r["clustering"] == clustering]
    return row


def test_split_holds_the_challenge_categories_and_leaks_nothing_into_the_index(finalized):
    run, dataset = finalized
    _, matrix = run_features(run)
    split = make_split(dataset, matrix.pid, seed=0)
    assert np.bincount(split.category, minlength=len(CATEGORIES)).tolist() == [20] * len(CATEGORIES)
    for i, c in enumerate(split.category):
        category = CATEGORIES[c]
        assert split.seeds(i).size == category.n_seed and split.truth(i).size >= 1
        assert (split.title[i] is not None) == category.title
        assert not np.isin(split.seeds(i), split.truth(i)).any()
    index = build_index(dataset, matrix, exclude_pids=split.pid)
    assert not np.isin(index.pid, split.pid).any() and index.excluded == len(split.pid)
    # Every counted entry is a training playlist's: popularity equals the distinct (pid, track) pairs of the
    # training playlists, so no held-out track entry is counted anywhere.
    entries = pads.dataset(dataset / "playlist_tracks").to_table(columns=["pid", "track_id"]).to_pandas()
    training = entries[entries["pid"].isin(index.pid)].drop_duplicates()
    expected = np.bincount(training["track_id"], minlength=index.n_tracks)
    assert np.array_equal(index.popularity, expected)
    assert index.by_playlist.nnz == len(training)
    held = entries[entries["pid"].isin(split.pid)]
    only_held = np.setdiff1d(held["track_id"].unique(), training["track_id"].unique())
    assert (index.popularity[only_held] == 0).all()
    assert not np.isin(index.title_rows, np.flatnonzero(np.isin(index.pid, split.pid))).any()


def test_every_method_beats_random_and_clusters_beat_popular(evaluation):
    random = _overall(evaluation, "random")
    winner = f"{evaluation['clusterings'][0]['model']} k={evaluation['clusterings'][0]['k']}"
    for name, method in METHODS.items():
        if name == "random":
            continue
        row = _overall(evaluation, name, winner if method.uses_clusters else "")
        assert row["ndcg"] > random["ndcg"] and row["clicks"] < random["clicks"], name
    # planted profiles: neighbour scoring inside the predicted cluster beats the most popular tracks overall
    assert _overall(evaluation, "cluster-cooccurrence", winner)["ndcg"] > _overall(evaluation, "popular")["ndcg"]


def test_evaluation_writes_json_report_and_plot_and_reuses_refits(finalized, evaluation):
    run, dataset = finalized
    out = run / "recommend"
    written = json.loads((out / "evaluation.json").read_text())
    assert written["split"]["held_out"] == 200 and {c["k"] for c in written["clusterings"]} >= {5}
    report = (out / "report.md").read_text()
    assert "## Which clustering recommends best" in report and "title + random 100" in report
    assert (out / "plots" / "metrics.png").stat().st_size > 0
    again = evaluate(run, dataset, methods=["cluster-cooccurrence"], configs=[("kmeans", 5)], plots=False,
                     quiet=True)
    assert all(c["reused"] for c in again["clusterings"])
    assert _overall(again, "cluster-cooccurrence", "kmeans k=5") == _overall(evaluation, "cluster-cooccurrence",
                                                                             "kmeans k=5")


def test_title_only_seed_is_served_by_every_method(recommender):
    for name in METHODS:
        result = recommender.recommend(title="Country", n=50, method=name)
        assert len(result.table) == 50 and result.table["track_uri"].is_unique, name
    assert recommender.recommend(title="country").clusters  # placed in a cluster by its name


def test_pid_seed_never_gets_its_own_tracks_back(recommender, finalized):
    _, dataset = finalized
    tracks = pads.dataset(dataset / "playlist_tracks").to_table(columns=["pid", "track_id"]).to_pandas()
    own = recommender.index.catalog.uri.take(tracks[tracks["pid"] == 7]["track_id"].to_numpy()).to_pylist()
    for name in METHODS:
        result = recommender.recommend(pid=7, n=500, method=name)
        assert len(result.table) == 500 and not set(result.table["track_uri"]) & set(own), name


def test_unknown_uris_are_reported_and_skipped(recommender):
    known = recommender.index.catalog.uri[0].as_py()
    result = recommender.recommend(tracks=[known, "spotify:track:doesnotexist"], n=10)
    assert result.unknown == ["spotify:track:doesnotexist"] and result.seed_tracks == 1
    assert known not in set(result.table["track_uri"])


@pytest.mark.parametrize("seed, message", [
    ({"tracks": ["spotify:track:nope1", "spotify:track:nope2"]},
     r"--tracks: no usable seed \(2 URIs, none in the dataset, e.g. spotify:track:nope1\)"),
    ({"title": "no such title at all"}, r"--title 'no such title at all': no playlist of the index"),
    ({"pid": 10**9}, r"--pid 1000000000: no such playlist"),
    ({}, r"no seed: give --pid, --tracks, --title or --playlist"),
])
def test_bad_seeds_are_clear_errors(recommender, seed, message):
    with pytest.raises(SeedError, match=message):
        recommender.recommend(**seed)


def test_bad_options_are_clear_errors(recommender):
    with pytest.raises(ValueError, match="--method 'best': unknown; expected one of cluster-cooccurrence"):
        recommender.recommend(title="country", method="best")
    with pytest.raises(ValueError, match="--n 0: must be a positive integer"):
        recommender.recommend(title="country", n=0)


def test_cli_prints_tracks_and_fails_in_one_line(finalized, capsys):
    run, dataset = finalized
    assert main(["--run", str(run), "--dataset", str(dataset), "--title", "chill", "--n", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# cluster-cooccurrence (cluster ") and len(lines) == 4
    assert lines[1].split("\t")[0] == "1" and lines[1].split("\t")[1].startswith("spotify:track:")
    assert main(["--run", str(run), "--dataset", str(dataset), "--tracks", "spotify:track:nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recommend: error: --tracks: no usable seed")
    assert main(["evaluate", "--run", str(run), "--dataset", str(dataset), "--configs", "kmeans:x"]) == 1
    assert "--configs 'kmeans:x': expected MODEL:K" in capsys.readouterr().err


def test_cli_reads_a_spotify_playlist(finalized, recommender, capsys, monkeypatch):
    run, dataset = finalized
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "test-secret")
    uris = recommender.index.catalog.uri[:120].to_pylist() + ["spotify:track:notinthedataset"]
    with FakeSpotify({}, playlists={"pl1": {"name": "Road Trip", "tracks": uris}}) as fake:
        code = main(["--run", str(run), "--dataset", str(dataset), "--playlist", "pl1", "--n", "20", "--json",
                     "--api-url", fake.api_url, "--token-url", fake.token_url])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    answer = json.loads(captured.out)
    assert answer["seed_tracks"] == 120 and answer["unknown_uris"] == ["spotify:track:notinthedataset"]
    assert answer["title"] == "Road Trip" and len(answer["recommendations"]) == 20
    assert "skipped 1 unknown track URIs" in captured.err


@pytest.mark.parametrize("model", ["kmeans", "agglomerative", "birch", "gmm"])
def test_seed_placement_equals_the_models_own_predict(recommender, finalized, model):
    from raysweep.feature_matrix import apply_scaling
    from raysweep.models import fit_final

    run, _ = finalized
    record, _ = run_features(run)
    index = recommender.index
    X = apply_scaling(index.features, record.scaling)
    estimator = fit_final(model, 4, X, 0)
    clustering = index.clustering(model, model, 4, estimator, record.scaling, np.asarray(estimator.labels_))
    placed = np.array([clustering.clusters_of(row)[0] for row in index.features[:300]])
    assert np.array_equal(placed, np.asarray(estimator.predict(X[:300])))


def test_evaluate_command_passes_its_options_as_settings(finalized, tmp_path, capsys):
    import shutil

    run, dataset = finalized
    copy = shutil.copytree(run, tmp_path / "rec")  # the session's run keeps its own evaluation
    assert main(["evaluate", "--run", str(copy), "--dataset", str(dataset), "--methods", "popular-cluster",
                 "--winner-only", "--configs", "kmeans:5", "--per-category", "5", "--seed", "1", "--no-plots"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {copy / 'recommend' / 'report.md'}"
    written = json.loads((copy / "recommend" / "evaluation.json").read_text())
    assert (written["split"]["seed"], written["split"]["per_category"], written["plot"]) == (1, 5, None)
    assert set(written["methods"]) == {"popular-cluster"}
    roles = {(c["model"], c["k"]): c["roles"] for c in written["clusterings"]}
    assert "requested" in roles[("kmeans", 5)] and not any("Pareto front" in r for r in roles.values())
