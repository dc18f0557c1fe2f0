"""Tests of raysweep.finalize on hand-made run folders (make_blobs features) and one tiny real sweep."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import read_feature_matrix, write_feature_matrix
from raysweep.finalize import finalize, load_model, main
from raysweep.models import MODEL_NAMES

COLUMNS = ["danceability", "energy", "tempo"]
CENTRES = 4
QUICK = {"quiet": True, "plots": False}  # plots are tested on their own: they dominate the run time


def make_run(folder, n=2000, model="kmeans", k=CENTRES, winner=True, seed=0, scaled=True):
    """A sweep run folder as raysweep.tune writes it, for blob features in raw units far from standard."""
    values, planted = make_blobs(n_samples=n, centers=CENTRES, n_features=len(COLUMNS), cluster_std=0.4,
                                 center_box=(-10, 10), random_state=seed)
    values = values * np.array([0.1, 1.0, 20.0]) + np.array([0.5, 0.0, 120.0])  # tempo-like scale and offset
    pid = np.arange(n, dtype=np.int64) * 3 + 7  # pids need not be row numbers
    scaling = ({"kind": "standard", "mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist()}
               if scaled else {"kind": "none"})
    features = folder / "features.parquet"
    write_feature_matrix(features, pid, values, COLUMNS, {"source": "test", "scaling": scaling})
    run = folder / "results" / "blobs"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "name": "blobs", "features": str(features), "feature_columns": COLUMNS, "scaling": scaling, "seed": seed,
        "fraction": 1.0, "n_total": n, "rungs": [{"rung": 0, "n": n, "configs": 8, "promoted": 0}],
        "models": list(MODEL_NAMES), "k_min": 2, "k_max": 8, "exhaustive": True}))
    if winner:
        (run / "winner.json").write_text(json.dumps({
            "model": model, "k": k, "rule": "pairwise majority over the three scores at the top rung",
            "scores": {"silhouette": 0.8, "davies_bouldin": 0.3, "calinski_harabasz": 9000.0}}))
    pq.write_table(pa.table({"model": [model], "k": [k], "silhouette": [0.8]}), run / "leaderboard.parquet")
    return run, pid, planted


def make_dataset(folder, pid, planted):
    """An ingest-shaped dataset: playlists of blob j are named "genre j" and hold tracks of artist j."""
    out = folder / "dataset"
    for name in ("playlists", "tracks", "playlist_tracks"):
        (out / name).mkdir(parents=True)
    pq.write_table(pa.table({"pid": pid, "name": [f"Genre {j}!" for j in planted],
                             "name_normalized": [f"genre {j}" for j in planted]}),
                   out / "playlists" / "part-0.parquet")
    track_id = np.arange(3 * CENTRES)
    pq.write_table(pa.table({"track_id": track_id, "track_uri": [f"spotify:track:{t}" for t in track_id],
                             "track_name": [f"song {t}" for t in track_id],
                             "artist_uri": [f"spotify:artist:{t % CENTRES}" for t in track_id],
                             "artist_name": [f"artist {t % CENTRES}" for t in track_id]}),
                   out / "tracks" / "part-0.parquet")
    # Each playlist holds the three tracks of its blob's artist (track ids j, j + CENTRES, j + 2 * CENTRES).
    entries = pa.table({"pid": np.repeat(pid, 3), "pos": np.tile(np.arange(3), len(pid)),
                        "track_id": (np.repeat(planted, 3) + np.tile(np.arange(3), len(pid)) * CENTRES)})
    pq.write_table(entries, out / "playlist_tracks" / "part-0.parquet")
    return out


@pytest.fixture()
def run_folder(tmp_path):
    return make_run(tmp_path)


def test_assignments_cover_every_pid_once(run_folder):
    run, pid, _ = run_folder
    finalize(run, **QUICK)
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    assert sorted(assignments["pid"]) == sorted(pid)
    assert assignments["pid"].is_unique
    assert set(assignments["cluster"]) == set(range(CENTRES))
    assert (assignments["distance"] >= 0).all()


def test_distance_is_to_the_assigned_centre_in_the_scaled_space(run_folder):
    from raysweep.feature_matrix import apply_scaling

    run, _, _ = run_folder
    finalize(run, **QUICK)
    model = load_model(run / "final")
    matrix = read_feature_matrix(json.loads((run / "run.json").read_text())["features"])
    X = apply_scaling(matrix.values, model.metadata["scaling"])
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    centres = model.estimator.cluster_centers_[assignments["cluster"]]
    np.testing.assert_allclose(assignments["distance"], np.linalg.norm(X - centres, axis=1), rtol=1e-4)


def test_clusters_recover_planted_blobs(run_folder):
    from sklearn.metrics import adjusted_rand_score

    run, _, planted = run_folder
    finalize(run, **QUICK)
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    assert adjusted_rand_score(planted, assignments["cluster"]) == pytest.approx(1.0)


def test_profiles_agree_with_pandas_groupby_in_original_units(run_folder):
    run, _, _ = run_folder
    finalize(run, **QUICK)
    matrix = read_feature_matrix(json.loads((run / "run.json").read_text())["features"])
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    frame = pd.DataFrame(matrix.values.astype(np.float64), columns=COLUMNS).assign(pid=matrix.pid)
    frame = frame.merge(assignments[["pid", "cluster"]], on="pid")
    expected = frame.groupby("cluster")[COLUMNS].mean()
    profiles = pd.read_parquet(run / "final" / "cluster_profiles.parquet").set_index("cluster")
    assert (profiles["size"] == frame.groupby("cluster").size()).all()
    for column in COLUMNS:
        np.testing.assert_allclose(profiles[f"mean_{column}"], expected[column], rtol=1e-6)
    assert profiles["mean_tempo"].min() > 50  # original units (tempo ~120), not standardized


def test_unscaled_run_is_refitted_on_raw_values(tmp_path):
    run, _, _ = make_run(tmp_path, scaled=False)
    finalize(run, **QUICK)
    model = load_model(run / "final")
    assert model.metadata["scaling"] == {"kind": "none"}
    # Raw tempo (x20) dominates the distances: the centres live in raw units.
    assert np.ptp(model.estimator.cluster_centers_[:, 2]) > 20


def test_stability_ari_is_one_on_well_separated_blobs(run_folder):
    run, _, _ = run_folder
    summary = finalize(run, **QUICK)
    assert [check["fraction"] for check in summary["stability"]] == [0.02, 0.10]
    assert [check["ari"] for check in summary["stability"]] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_stability_skips_a_sample_too_small_for_k(tmp_path):
    run, _, _ = make_run(tmp_path, n=600)
    summary = finalize(run, **QUICK)
    small = summary["stability"][0]
    assert small["n"] == 12 and small["ari"] is None
    assert small["status"].startswith("skipped")


def test_loaded_model_predicts_the_assignments(run_folder):
    run, _, _ = run_folder
    finalize(run, **QUICK)
    model = load_model(run / "final")
    matrix = read_feature_matrix(json.loads((run / "run.json").read_text())["features"])
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    np.testing.assert_array_equal(model.predict(matrix), assignments["cluster"])
    assert model.metadata["feature_columns"] == COLUMNS
    assert model.metadata["versions"]["scikit-learn"]


def test_hash_check_refuses_a_changed_artifact(run_folder):
    run, _, _ = run_folder
    finalize(run, **QUICK)
    artifact = run / "final" / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.joblib: sha256 .* does not match"):
        load_model(run / "final")


def test_loaded_model_refuses_features_missing_a_column(run_folder):
    run, _, _ = run_folder
    finalize(run, **QUICK)
    model = load_model(run / "final")
    with pytest.raises(ValueError, match="lack the columns the model was fitted on: tempo"):
        model.predict(pd.DataFrame({"danceability": [0.5], "energy": [0.1]}))


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_family_finalizes(tmp_path, model):
    run, pid, _ = make_run(tmp_path, n=800, model=model)
    summary = finalize(run, fractions=(0.5,), **QUICK)
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    assert len(assignments) == len(pid) and summary["model"] == model
    assert ("probability" in assignments) == (model == "gmm")
    if model == "gmm":
        assert assignments["probability"].between(0, 1).all()


def test_birch_builds_one_cf_tree_over_all_rows(tmp_path, monkeypatch):
    import raysweep.families.birch

    monkeypatch.setattr(raysweep.families.birch, "BIRCH_MAX_N", 100)  # the sweep's cap, far below the 800 rows
    run, _, _ = make_run(tmp_path, n=800, model="birch")
    finalize(run, **QUICK)
    method = json.loads((run / "final" / "model.json").read_text())["method"]
    assert (method["tree_rows"], method["capped"]) == (800, False)


def test_agglomerative_refit_keeps_the_sweeps_ward_cap(tmp_path):
    run, _, _ = make_run(tmp_path, n=800, model="agglomerative")
    record = json.loads((run / "run.json").read_text())
    record["agglomerative_method"] = {"0": {"max_n": 300}, "1": {"max_n": 300}}
    (run / "run.json").write_text(json.dumps(record))
    finalize(run, **QUICK)
    method = json.loads((run / "final" / "model.json").read_text())["method"]
    assert (method["tree_rows"], method["capped"]) == (300, True)


def test_rerun_replaces_the_previous_result(run_folder):
    run, _, _ = run_folder
    finalize(run, **QUICK)
    (run / "final" / "stale.txt").write_text("from an earlier run")
    finalize(run, model="kmeans", k=3, **QUICK)
    assert not (run / "final" / "stale.txt").exists()
    assert json.loads((run / "final" / "model.json").read_text())["k"] == 3


def test_failed_run_keeps_the_previous_result(run_folder, tmp_path):
    run, _, _ = run_folder
    finalize(run, **QUICK)
    before = (run / "final" / "assignments.parquet").read_bytes()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="dataset .*empty: no playlists/"):
        finalize(run, dataset=tmp_path / "empty", **QUICK)
    assert (run / "final" / "assignments.parquet").read_bytes() == before


def test_run_without_winner_is_an_error_naming_it(tmp_path):
    run, _, _ = make_run(tmp_path, winner=False)
    with pytest.raises(FileNotFoundError, match="has no winner.json .* pass --model and --k"):
        finalize(run, **QUICK)


def test_run_without_winner_finalizes_the_given_model(tmp_path):
    run, _, _ = make_run(tmp_path, winner=False)
    summary = finalize(run, model="kmeans", k=3, **QUICK)
    assert summary["effective_k"] == 3 and summary["source"] == "given on the command line"


def test_model_without_k_is_an_error():
    with pytest.raises(ValueError, match="--model and --k go together"):
        _resolve("kmeans", None)


def _resolve(model, k):
    from raysweep.finalize import resolve_choice

    return resolve_choice("run", None, model, k)


@pytest.mark.parametrize("model, k, message", [("dbscan", 3, "unknown model 'dbscan'"),
                                               ("kmeans", 1, "k must be an integer >= 2")])
def test_bad_model_or_k_is_an_error_naming_it(model, k, message):
    with pytest.raises(ValueError, match=message):
        _resolve(model, k)


def test_missing_run_json_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="run.json: no such file"):
        finalize(tmp_path / "run", **QUICK)


def test_run_json_of_an_unknown_format_is_the_run_folders_message(run_folder):
    run, _, _ = run_folder
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "format": 99}))
    with pytest.raises(ValueError, match=r"run.json: run folder format 99; this raysweep reads formats 1, 2 "):
        finalize(run, **QUICK)


def test_a_run_folder_written_before_formats_finalizes(tmp_path):
    """The format-1 fixture (no "format" in its records): its winner, and a Birch refit at its recorded threshold."""
    import shutil

    from raysweep.finalize import fit_options, read_run

    fixture = Path(__file__).parent / "fixtures" / "run_format1"
    run = shutil.copytree(fixture, tmp_path / "format1")
    values, _ = make_blobs(n_samples=600, centers=3, n_features=4, cluster_std=0.8, random_state=0)
    features = tmp_path / "blobs.parquet"  # the fixture's matrix (as test_tune makes it), at this test's path
    write_feature_matrix(features, np.arange(600), values, ["f0", "f1", "f2", "f3"], {"source": "test"})
    summary = finalize(run, features=features, **QUICK)
    assert (summary["model"], summary["k"], summary["source"]) == ("kmeans", 3, "the sweep's winner (winner.json)")
    assert len(pd.read_parquet(run / "final" / "assignments.parquet")) == 600
    record, _ = read_run(run)
    threshold = json.loads((fixture / "run.json").read_text())["birch_threshold"]["0"]
    assert fit_options("birch", record, 600) == {"max_n": 600, "threshold": threshold}
    assert finalize(run, model="birch", k=3, features=features, **QUICK)["method"]["threshold"] >= threshold


def test_refit_options_come_from_the_highest_rung_that_recorded_them():
    from raysweep.finalize import fit_options
    from raysweep.run_folder import RunRecord

    record = RunRecord(features="f.parquet", feature_columns=["f0"], scaling={"kind": "none"}, seed=0, n_total=9,
                       agglomerative_method={"2": {"max_n": 50}, "10": {"max_n": 70}},
                       birch_threshold={"2": 0.5, "10": 0.25})  # rung 10 > rung 2, though "10" < "2" as text
    assert fit_options("agglomerative", record, 9) == {"max_n": 70}
    assert fit_options("birch", record, 9) == {"max_n": 9, "threshold": 0.25}
    bare = RunRecord(features="f.parquet", feature_columns=["f0"], scaling={"kind": "none"}, seed=0, n_total=9)
    assert fit_options("agglomerative", bare, 9) == {} and fit_options("birch", bare, 9) == {"max_n": 9}


def test_features_missing_pids_are_an_error(run_folder, tmp_path):
    run, _, _ = run_folder
    matrix = read_feature_matrix(json.loads((run / "run.json").read_text())["features"])
    fewer = tmp_path / "fewer.parquet"
    write_feature_matrix(fewer, matrix.pid[:-5], matrix.values[:-5], matrix.columns, matrix.metadata)
    with pytest.raises(ValueError, match="fewer.parquet: 1,995 playlists, 5 fewer than the 2,000 the sweep ran on"):
        finalize(run, features=fewer, **QUICK)


def test_moved_feature_matrix_is_an_error_suggesting_features(run_folder, tmp_path):
    run, _, _ = run_folder
    (tmp_path / "features.parquet").rename(tmp_path / "moved.parquet")
    with pytest.raises(FileNotFoundError, match="features.parquet: cannot read it .* pass --features PATH"):
        finalize(run, **QUICK)
    assert finalize(run, features=tmp_path / "moved.parquet", **QUICK)["n"] == 2000


def test_features_missing_a_column_are_an_error(run_folder, tmp_path):
    run, _, _ = run_folder
    matrix = read_feature_matrix(json.loads((run / "run.json").read_text())["features"])
    narrower = tmp_path / "narrower.parquet"
    write_feature_matrix(narrower, matrix.pid, matrix.values[:, :2], matrix.columns[:2], {})
    with pytest.raises(ValueError, match="narrower.parquet: lacks the columns the sweep was fitted on: tempo"):
        finalize(run, features=narrower, **QUICK)


def test_dataset_adds_names_artists_and_tracks(run_folder, tmp_path):
    run, pid, planted = run_folder
    dataset = make_dataset(tmp_path, pid, planted)
    finalize(run, dataset=dataset, quiet=True)
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    blob_of_cluster = (pd.DataFrame({"pid": pid, "blob": planted}).merge(assignments, on="pid")
                       .groupby("cluster")["blob"].first())
    profiles = pd.read_parquet(run / "final" / "cluster_profiles.parquet").set_index("cluster")
    for cluster, blob in blob_of_cluster.items():
        size = profiles.loc[cluster, "size"]
        assert [dict(item) for item in profiles.loc[cluster, "top_names"]] == [{"name": f"genre {blob}",
                                                                                 "count": size}]
        assert profiles.loc[cluster, "top_artists"][0]["artist_name"] == f"artist {blob}"
        assert profiles.loc[cluster, "top_artists"][0]["count"] == 3 * size
        assert len(profiles.loc[cluster, "top_tracks"]) == 3
    assert (run / "final" / "plots" / "cluster_names.png").exists()


def test_top_tracks_agree_with_pandas_counts(run_folder, tmp_path):
    run, pid, planted = run_folder
    dataset = make_dataset(tmp_path, pid, planted)
    rng = np.random.default_rng(1)
    track_id = rng.integers(0, 3 * CENTRES, size=(len(pid), 5))  # random tracks: many ties in the counts
    entries = pd.DataFrame({"pid": np.repeat(pid, 5), "pos": np.tile(np.arange(5), len(pid)),
                            "track_id": track_id.ravel()})
    pq.write_table(pa.Table.from_pandas(entries, preserve_index=False),
                   dataset / "playlist_tracks" / "part-0.parquet")
    finalize(run, dataset=dataset, **QUICK)
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    counts = (entries.merge(assignments, on="pid").groupby(["cluster", "track_id"]).size().rename("count")
              .reset_index().sort_values(["cluster", "count", "track_id"], ascending=[True, False, True]))
    profiles = pd.read_parquet(run / "final" / "cluster_profiles.parquet").set_index("cluster")
    for cluster, expected in counts.groupby("cluster"):
        top = expected.head(10)
        listed = profiles.loc[cluster, "top_tracks"]
        assert [item["track_uri"] for item in listed] == [f"spotify:track:{t}" for t in top["track_id"]]
        assert [item["count"] for item in listed] == top["count"].tolist()


def test_dataset_with_other_pids_is_an_error_before_the_refit(run_folder, tmp_path, monkeypatch):
    import raysweep.models

    run, pid, planted = run_folder
    dataset = make_dataset(tmp_path, pid + 1, planted)
    monkeypatch.setattr(raysweep.models, "fit_final", lambda *args, **kwargs: pytest.fail("refit started"))
    with pytest.raises(ValueError, match="dataset .*: 2,000 of the feature matrix's 2,000 pids are not among"):
        finalize(run, dataset=dataset, **QUICK)


def test_report_names_winner_stability_and_plots(run_folder):
    run, _, _ = run_folder
    finalize(run, quiet=True)
    report = (run / "final" / "report.md").read_text()
    assert report.startswith("# Final clustering: kmeans, k = 4")
    assert "pairwise majority over the three scores" in report
    assert "| 2% | 40 | 1 | ok |" in report
    for plot in ("cluster_sizes", "cluster_profiles", "cluster_projection"):
        assert f"(plots/{plot}.png)" in report
        assert (run / "final" / "plots" / f"{plot}.png").stat().st_size > 0


def test_cli_prints_the_report_path(run_folder, capsys):
    run, _, _ = run_folder
    assert main(["--run", str(run), "--quiet", "--no-plots"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {run / 'final' / 'report.md'}"


def test_without_matplotlib_plots_are_skipped_with_a_message(run_folder, monkeypatch, capsys):
    run, _, _ = run_folder
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    summary = finalize(run, quiet=True)
    assert summary["plots"] == {} and not (run / "final" / "plots").exists()
    assert "matplotlib is not installed, plots skipped" in capsys.readouterr().err
    assert "(none drawn" in (run / "final" / "report.md").read_text()


def test_cli_error_is_one_line_naming_the_problem(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err == f"finalize: error: run folder {tmp_path / 'nowhere'} does not exist\n"


@pytest.mark.slow
def test_finalizes_a_real_sweep(ray_local, tmp_path):
    from sklearn.metrics import adjusted_rand_score

    from raysweep.tune import SweepSettings, run_sweep

    _, pid, planted = make_run(tmp_path, n=3000)
    run = run_sweep(SweepSettings(tmp_path / "features.parquet", fraction=1.0, models=["kmeans", "agglomerative"],
                                  k_min=2, k_max=6, exhaustive=True, results=tmp_path / "sweep", name="e2e", seed=0,
                                  progress=False))
    summary = finalize(run, quiet=True)
    winner = json.loads((run / "winner.json").read_text())
    assert (summary["model"], summary["k"]) == (winner["model"], winner["k"]) and summary["k"] == CENTRES
    assignments = pd.read_parquet(run / "final" / "assignments.parquet")
    order = np.argsort(pid)
    assert adjusted_rand_score(planted[order], assignments.sort_values("pid")["cluster"]) == pytest.approx(1.0)
    assert all(check["ari"] == pytest.approx(1.0) for check in summary["stability"])


def test_settings_object_and_keywords_give_the_same_refit(run_folder):
    from raysweep.finalize import FinalizeSettings

    run, _, _ = run_folder
    by_settings = finalize(run, FinalizeSettings(model="kmeans", k=3, plots=False, quiet=True))
    by_keywords = finalize(run, model="kmeans", k=3, **QUICK)
    assert (by_settings["model"], by_settings["k"]) == (by_keywords["model"], by_keywords["k"]) == ("kmeans", 3)
    with pytest.raises(TypeError, match="plot"):
        finalize(run, plot=False)


def test_notebook_function_leaves_the_stage_package_reachable_by_its_name():
    import inspect

    import raysweep

    function = raysweep.finalize_run
    import raysweep.finalize as stage

    assert inspect.ismodule(stage) and stage.finalize_run is function
