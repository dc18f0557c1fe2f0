"""The sweep: Ray Tune trials, successive halving with a rung barrier, shared builds, outputs, resume, errors."""

import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import write_feature_matrix
from raysweep.families.ward import FAMILY as WARD
from raysweep.models import ward_labels, ward_tree
from raysweep.pairwise import DISTANCE_MATRIX_MIN_LABELINGS
from raysweep.selection import rank_configs
from raysweep.run_folder import LEADERBOARD_COLUMNS, Ledger
from raysweep.tune import SweepSettings, main, run_sweep

REPO = Path(__file__).resolve().parents[1]
FORMAT_1 = REPO / "tests" / "fixtures" / "run_format1"  # a run folder of commit 96b9e72, before formats
PLANTED_K = 4


def _blobs(path, n, centers=PLANTED_K, seed=0):
    X, _ = make_blobs(n_samples=n, centers=centers, n_features=4, cluster_std=0.8, random_state=seed)
    write_feature_matrix(path, np.arange(n), X, ["f0", "f1", "f2", "f3"], {"source": "test"})
    return path


def _events(path):
    """(step, tag, value) of every scalar in a TensorBoard event file (TFRecord framing, tensorboardX's proto)."""
    from tensorboardX.proto import event_pb2

    data, offset, out = Path(path).read_bytes(), 0, []
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[offset + 12:offset + 12 + length])
        offset += 12 + length + 4  # length, its CRC, the record, its CRC
        out += [(event.step, value.tag, value.simple_value) for value in event.summary.value]
    return out


# --------------------------------------------------------------------------------------------- one sweep, many checks


@pytest.fixture(scope="module")
def sweep(ray_local, tmp_path_factory):
    """A 3-rung sweep of all four models, k = 2..7, on 1,500 blob rows with 4 planted clusters."""
    root = tmp_path_factory.mktemp("sweep")
    features = _blobs(root / "blobs.parquet", 1500)
    run_dir = run_sweep(SweepSettings(features, fraction=1.0, k_min=2, k_max=7, results=root / "results", name="blobs",
                                      min_rung_size=150))
    return SimpleNamespace(run_dir=run_dir, leaderboard=pd.read_parquet(run_dir / "leaderboard.parquet"),
                           run=json.loads((run_dir / "run.json").read_text()),
                           winner=json.loads((run_dir / "winner.json").read_text()))


@pytest.mark.slow
def test_sweep_picks_the_planted_k(sweep):
    assert sweep.winner["k"] == PLANTED_K


@pytest.mark.slow
def test_sweep_on_generated_playlists_lands_near_the_planted_profile_count(ray_local, generated_mpd, tmp_path):
    """The whole data path (generated slices -> ingest -> features -> sweep) finds the 5 planted taste profiles.

    The co-occurrence embedding is the feature set that carries the profiles (kNN purity 0.98, see
    test_features_cooccurrence); in mean audio features they overlap (silhouette of the planted labels ~0.15),
    so an audio-feature sweep is not expected to recover them.
    """
    from raysweep.features.cooccurrence import build_cooccurrence_embedding

    planted = pd.read_parquet(generated_mpd / "mpd" / "planted_profiles.parquet")
    n_profiles = planted["profile"].nunique()
    features = tmp_path / "embedding.parquet"
    build_cooccurrence_embedding(generated_mpd / "dataset", features, dim=16)
    run_dir = run_sweep(SweepSettings(features, fraction=1.0, k_min=2, k_max=10, results=tmp_path / "results",
                                      name="planted", min_rung_size=150))
    winner = json.loads((run_dir / "winner.json").read_text())
    assert n_profiles == 5
    assert abs(winner["k"] - n_profiles) <= 1, winner


@pytest.mark.slow
def test_rungs_are_nested_samples_with_successive_halving(sweep):
    assert [(r["n"], r["configs"]) for r in sweep.run["rungs"]] == [(167, 24), (500, 8), (1500, 3)]
    assert sweep.leaderboard.groupby("rung")["n"].unique().map(list).tolist() == [[167], [500], [1500]]


@pytest.mark.slow
def test_promotion_is_exactly_the_rule(sweep):
    board = sweep.leaderboard
    null = pd.read_parquet(sweep.run_dir / "rungs" / "null_scores.parquet").set_index("k")
    for rung in (0, 1):
        at_rung = board[board["rung"] == rung]
        expected = rank_configs(at_rung, null=null).head(math.ceil(len(at_rung) / 3))
        promoted = board[board["rung"] == rung + 1]
        assert set(zip(expected["model"], expected["k"])) == set(zip(promoted["model"], promoted["k"]))


@pytest.mark.slow
def test_leaderboard_has_one_row_per_trial_in_parquet_and_csv(sweep):
    board = sweep.leaderboard
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == 24 + 8 + 3 == board["trial_id"].nunique()
    assert (board["status"] == "ok").all()
    assert (board["silhouette_se"] == 0).all()  # every rung is below the exact-silhouette limit
    csv = pd.read_csv(sweep.run_dir / "leaderboard.csv")
    np.testing.assert_allclose(csv["silhouette"], board["silhouette"])


@pytest.mark.slow
def test_a_run_that_no_promotion_limit_touches_does_not_record_it(sweep):
    settings = json.loads((sweep.run_dir / "rungs" / "settings.json").read_text())
    assert "promotion_exact_max_n" not in settings  # rungs of 167 and 500 rows: exact under either limit


@pytest.mark.slow
def test_lower_rungs_above_the_promotion_limit_are_estimated_and_the_top_rung_exact(ray_local, tmp_path):
    features = _blobs(tmp_path / "blobs.parquet", 1500)
    run_dir = run_sweep(SweepSettings(features, fraction=1.0, models=["kmeans"], k_min=2, k_max=25,
                                      results=tmp_path / "results", name="limits", min_rung_size=150,
                                      promotion_exact_max_n=300, query_points=100, progress=False))
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    se = board.groupby("rung")["silhouette_se"]
    assert [board[board["rung"] == r]["n"].iloc[0] for r in (0, 1, 2)] == [167, 500, 1500]
    assert se.max()[0] == 0 and se.min()[1] > 0 and se.max()[2] == 0
    per_rung = json.loads((run_dir / "run.json").read_text())["silhouette"]["per_rung"]
    assert per_rung["0"] == per_rung["2"] == "exact" and per_rung["1"].startswith("query estimator, first 100 rows")
    assert json.loads((run_dir / "rungs" / "settings.json").read_text())["promotion_exact_max_n"] == 300


def test_a_negative_exact_limit_is_refused():
    with pytest.raises(ValueError, match="promotion_exact_max_n must be >= 0"):
        SweepSettings("x.parquet", promotion_exact_max_n=-1).checked()


@pytest.mark.slow
def test_one_shared_build_per_structure_and_rung(sweep):
    counts = sweep.run["shared_builds"]["counts"]
    alive = sweep.leaderboard.groupby("rung")["model"].unique().map(set)
    for structure, model in (("ward_tree", "agglomerative"), ("birch_cf_tree", "birch")):
        rungs_with_model = {str(r) for r, models in alive.items() if model in models}
        assert counts.get(structure, {}) == {r: 1 for r in rungs_with_model}
        # Every trial of the model at a rung used the same build, whatever the number of k's.
        rows = sweep.leaderboard[sweep.leaderboard["model"] == model]
        assert rows.groupby("rung")["shared_build"].nunique().eq(1).all()
        assert rows["shared_build"].nunique() == len(rungs_with_model)


@pytest.mark.slow
def test_a_rung_of_many_exact_configs_shares_one_distance_matrix(sweep):
    configs = sweep.leaderboard.groupby("rung").size()
    with_matrix = {str(r) for r, count in configs.items() if count >= DISTANCE_MATRIX_MIN_LABELINGS}
    assert with_matrix == {"0"}  # 24 configs at rung 0, 8 and 3 above
    assert sweep.run["shared_builds"]["counts"]["distance_matrix"] == {"0": 1}
    builds = sweep.leaderboard.groupby("rung")["distance_build"].unique()
    assert len(builds[0]) == 1 and builds[0][0] != ""
    assert [list(builds[r]) for r in (1, 2)] == [[""], [""]]


def test_no_distance_matrix_where_it_would_not_pay_or_fit(ray_local):
    from raysweep._shared_builds import SharedBuilds

    builds = SharedBuilds(ray_local.put(np.zeros((10, 2), dtype=np.float32)), seed=0, ward_max_n=20_000)
    assert builds.launch_distance_matrix(10, DISTANCE_MATRIX_MIN_LABELINGS - 1) == ({}, None)
    assert builds.launch_distance_matrix(100_000, 396) == ({}, None)  # 80 GB: more than any node's object store


def test_a_reused_capped_ward_tree_labels_like_a_fresh_build():
    X, _ = make_blobs(n_samples=1500, centers=6, n_features=4, random_state=0)
    first_rung = (ward_tree(X[:500], max_n=300), {"build_id": "rung-1"})
    reused, info = WARD.reuse_shared(first_rung, 1500)
    fresh = ward_tree(X, max_n=300)
    for k in (2, 6, 40):
        np.testing.assert_array_equal(ward_labels(reused, k, X=X), ward_labels(fresh, k, X=X))
    assert info["reused"] and info["build_id"] == "rung-1" and info["agglomerative_method"]["n_rows"] == 1500


def test_only_a_capped_ward_tree_is_reused():
    X, _ = make_blobs(n_samples=500, centers=3, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="only a capped ward tree"):
        WARD.reuse_shared((ward_tree(X, max_n=1000), {}), 1500)


@pytest.mark.slow
def test_a_shared_build_leaves_every_cpu_to_the_trials(ray_local):
    # Tune reuses its trial actors: a build holding one of the 2 CPUs when a rung starts would leave the whole
    # rung on one actor. A task asking for every free CPU must therefore not wait for a build to finish.
    from raysweep._shared_builds import SharedBuilds

    free = int(ray_local.available_resources().get("CPU", 0))  # what earlier tests' Ray work left free
    assert free >= 1, "no free CPU in the shared Ray instance: a test before this one holds them"
    every_free_cpu = ray_local.remote(num_cpus=free)(lambda: time.time())  # by value: workers cannot import tests
    ray_local.get(every_free_cpu.remote(), timeout=120)  # a warm worker, so the check does not wait for a start
    X, _ = make_blobs(n_samples=20_000, centers=6, n_features=4, random_state=0)  # a ward tree of seconds
    builds = SharedBuilds(ray_local.put(X.astype(np.float32)), seed=0, ward_max_n=20_000)
    ref = builds.launch(["ward_tree"], 20_000)["ward_tree"]
    ran_at = ray_local.get(every_free_cpu.remote(), timeout=120)
    info = ray_local.get(ref, timeout=120)[1]
    assert ran_at < info["started_at"] + info["seconds"]


@pytest.mark.slow
def test_capped_ward_tree_is_built_once_for_every_rung_above_the_cap(ray_local, tmp_path):
    features = _blobs(tmp_path / "blobs.parquet", 1500)
    run_dir = run_sweep(SweepSettings(features, fraction=1.0, models=["agglomerative"], k_min=2, k_max=28,
                                      results=tmp_path, name="capped", min_rung_size=150, agglomerative_max_n=300,
                                      progress=False))
    run = json.loads((run_dir / "run.json").read_text())
    assert [r["n"] for r in run["rungs"]] == [167, 500, 1500]
    assert run["shared_builds"]["counts"]["ward_tree"] == {"0": 1, "1": 1}  # none at rung 2
    ward_builds = [b for b in run["shared_builds"]["builds"] if b["structure"] == "ward_tree"]
    assert [b.get("reused", False) for b in ward_builds] == [False, False, True]
    assert [run["agglomerative_method"][r]["capped"] for r in ("0", "1", "2")] == [False, True, True]
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    build_of_rung = board.groupby("rung")["shared_build"].unique()
    assert list(build_of_rung.map(len)) == [1, 1, 1]
    assert build_of_rung[1][0] == build_of_rung[2][0] != build_of_rung[0][0]
    assert (board["status"] == "ok").all()


@pytest.mark.slow
def test_run_json_holds_the_finalizer_contract(sweep):
    expected = {"name", "features", "feature_columns", "scaling", "seed", "fraction", "n_total", "rungs", "models",
                "k_min", "k_max", "exhaustive", "agglomerative_method", "birch_threshold", "silhouette",
                "shared_builds", "versions", "storage", "wall_seconds"}
    assert expected <= set(sweep.run)
    assert sweep.run["feature_columns"] == ["f0", "f1", "f2", "f3"]
    assert sweep.run["scaling"]["kind"] == "standard"
    assert sweep.run["birch_threshold"]["0"] > 0
    assert sweep.run["birch_method"]["0"].startswith("Birch CF-tree on all 167 rows")
    assert "GaussianMixture fitted on at most the first 200,000 rows" in sweep.run["gmm_method"]
    assert "inits on at most the first 100,000 rows" in sweep.run["kmeans_method"]


@pytest.mark.slow
def test_winner_json_states_the_rule_and_the_promotion(sweep):
    assert "pairwise majority" in sweep.winner["rule"].lower()
    assert "successive halving" in sweep.winner["promotion"]["rule"]
    assert sweep.winner["rung"] == 2


@pytest.mark.slow
def test_tensorboard_curves_have_k_on_the_x_axis(sweep):
    (event_file,) = (sweep.run_dir / "tensorboard" / "kmeans").glob("events.out.tfevents*")
    scalars = _events(event_file)
    top = sweep.leaderboard.query("model == 'kmeans' and rung == 2")
    curve = {step: value for step, tag, value in scalars if tag == "top_rung/silhouette"}
    assert curve == pytest.approx(dict(zip(top["k"], top["silhouette"])), rel=1e-6)
    assert any(tag == "rung_0/davies_bouldin" for _, tag, _ in scalars)


@pytest.mark.slow
def test_tune_trial_events_group_scores_under_score(sweep):
    trial_dirs = sorted((sweep.run_dir / "ray" / "rung_2").glob("*_k*_*"))
    assert len(trial_dirs) == 3
    tags = {tag for _, tag, _ in _events(next(trial_dirs[0].glob("events.out.tfevents*")))}
    assert {"ray/tune/score/silhouette", "ray/tune/score/davies_bouldin"} <= tags


@pytest.mark.slow
def test_plots_are_written(sweep):
    assert sorted(p.name for p in (sweep.run_dir / "plots").iterdir()) == ["scores_vs_k.png",
                                                                           "survivors_per_rung.png"]


@pytest.mark.slow
def test_run_recorded_before_the_ward_cap_setting_still_resumes(sweep, capsys):
    settings_path = sweep.run_dir / "rungs" / "settings.json"
    settings = json.loads(settings_path.read_text())
    del settings["agglomerative_max_n"]  # as the versions before this setting wrote it
    settings_path.write_text(json.dumps(settings))
    run_sweep(SweepSettings(sweep.run["features"], fraction=1.0, k_min=2, k_max=7, results=sweep.run_dir.parent,
                            name="blobs", min_rung_size=150))
    assert "[raysweep] rung" not in capsys.readouterr().err  # read back, no trial ran
    assert json.loads(settings_path.read_text())["agglomerative_max_n"] == 20_000


@pytest.mark.slow
def test_rerun_of_a_finished_run_reads_it_back(sweep, capsys):
    before = sweep.leaderboard
    run_sweep(SweepSettings(sweep.run["features"], fraction=1.0, k_min=2, k_max=7, results=sweep.run_dir.parent,
                            name="blobs", min_rung_size=150))
    pd.testing.assert_frame_equal(pd.read_parquet(sweep.run_dir / "leaderboard.parquet"), before)
    assert "[raysweep] rung" not in capsys.readouterr().err  # no trial ran


# --------------------------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_a_run_folder_written_before_formats_resumes(ray_local, tmp_path):
    """The fixture (no "format" in any record) is read back whole: no trial runs, the same leaderboard and winner."""
    features = _blobs(tmp_path / "blobs.parquet", 600, centers=3)  # the fixture's matrix, at this test's path
    run_dir = shutil.copytree(FORMAT_1, tmp_path / "results" / "format1")
    settings = json.loads((run_dir / "rungs" / "settings.json").read_text())
    (run_dir / "rungs" / "settings.json").write_text(json.dumps({**settings, "features": str(features)}))
    ledger = (run_dir / "rungs" / "rung_0.trials.jsonl").read_bytes()
    run_sweep(SweepSettings(features, fraction=1.0, models=["kmeans", "birch"], k_min=2, k_max=4,
                            results=tmp_path / "results", name="format1", min_rung_size=200, progress=False))
    assert not (run_dir / "ray").exists() and (run_dir / "rungs" / "rung_0.trials.jsonl").read_bytes() == ledger
    board, before = pd.read_parquet(run_dir / "leaderboard.parquet"), pd.read_parquet(FORMAT_1 / "leaderboard.parquet")
    pd.testing.assert_frame_equal(board[before.columns], before)
    assert (board["distance_build"] == "").all()  # a column added since: empty for rows that predate it
    winner = json.loads((run_dir / "winner.json").read_text())  # the rule's null model came after the fixture
    assert winner["format"] == 2 and winner["null_model"]["path"] == "rungs/null_scores.parquet"
    assert json.loads((run_dir / "run.json").read_text())["format"] == 2



@pytest.mark.slow
def test_resume_after_sigkill_does_not_recompute_finished_trials(ray_local, tmp_path):
    features = _blobs(tmp_path / "blobs.parquet", 3000)
    args = ["--features", str(features), "--fraction", "1", "--models", "gmm,kmeans", "--k-min", "2", "--k-max",
            "16", "--exhaustive", "--results", str(tmp_path / "results"), "--name", "resume"]
    ledger = Ledger(tmp_path / "results" / "resume" / "rungs" / "rung_0.trials.jsonl")
    # The first run joins the session's Ray (as on a cluster) so the test pays no second Ray start-up.
    address = ["--address", ray_local.get_runtime_context().gcs_address]
    process = subprocess.Popen([sys.executable, "-m", "raysweep.tune", *args, *address], cwd=REPO,
                               start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while len(ledger.read()[0]) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver, as when its machine dies or it is killed
        process.wait()
    first = set(ledger.read()[0])
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert 3 <= len(first) < 30, "the first run should be killed mid-rung"

    assert main(args) == 0

    lines = [json.loads(line) for line in ledger.path.read_text().splitlines() if line.strip()]
    executions = [(r["model"], r["k"]) for r in lines if r["event"] == "result"]
    assert len(executions) == len(set(executions)) == 30  # each config ran exactly once over both runs
    assert {f"{m}:{k}" for m, k in executions if m} - first == {
        f"{r['model']}:{r['k']}" for r in lines if r["event"] == "result" and r["attempt"] == 1}
    board = pd.read_parquet(tmp_path / "results" / "resume" / "leaderboard.parquet")
    assert len(board) == 30 and (board["status"] == "ok").all()


@pytest.mark.slow
def test_ctrl_c_ends_the_command_with_a_resume_message(ray_local, tmp_path):
    features = _blobs(tmp_path / "blobs.parquet", 3000)
    args = ["--features", str(features), "--fraction", "1", "--models", "gmm,kmeans", "--k-min", "2", "--k-max",
            "16", "--exhaustive", "--results", str(tmp_path / "results"), "--name", "ctrl-c",
            "--address", ray_local.get_runtime_context().gcs_address]
    ledger = Ledger(tmp_path / "results" / "ctrl-c" / "rungs" / "rung_0.trials.jsonl")
    process = subprocess.Popen([sys.executable, "-m", "raysweep.tune", *args], cwd=REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while len(ledger.read()[0]) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr = process.stderr.read().decode()
    assert process.returncode == 130, stderr[-2000:]
    assert "run the same command again to resume" in stderr
    assert len(ledger.read()[0]) < 30, "Ctrl-C must not let the rung run on to its end"


# --------------------------------------------------------------------------------------------- optional matplotlib


@pytest.fixture(scope="module")
def duplicates_run(ray_local, tmp_path_factory):
    """A sweep without matplotlib on 600 rows that are only 3 distinct points: KMeans k = 2..5."""
    root = tmp_path_factory.mktemp("duplicates")
    values = np.repeat([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], 200, axis=0)
    write_feature_matrix(root / "dup.parquet", np.arange(600), values, ["a", "b"], {})
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        # A None entry in sys.modules makes the import fail, as if matplotlib were not installed.
        patch.setitem(sys.modules, "matplotlib", None)
        patch.setitem(sys.modules, "matplotlib.figure", None)
        patch.setattr(sys, "stderr", stderr)
        run_dir = run_sweep(SweepSettings(root / "dup.parquet", fraction=1.0, models=["kmeans"], k_min=2, k_max=5,
                                          exhaustive=True, results=root, name="dup"))
    return SimpleNamespace(run_dir=run_dir, stderr=stderr.getvalue(),
                           leaderboard=pd.read_parquet(run_dir / "leaderboard.parquet"))


@pytest.mark.slow
def test_sweep_works_without_matplotlib(duplicates_run):
    assert json.loads((duplicates_run.run_dir / "winner.json").read_text())["k"] == 3
    assert not (duplicates_run.run_dir / "plots").exists()
    assert "plots skipped" in duplicates_run.stderr


@pytest.mark.slow
def test_fewer_clusters_than_k_reports_effective_k_and_the_warning(duplicates_run):
    board = duplicates_run.leaderboard.set_index("k")
    assert board.loc[[4, 5], "effective_k"].tolist() == [3, 3]
    assert board.loc[5, "warnings"].startswith("ConvergenceWarning: Number of distinct clusters (3)")
    assert board.loc[2, "warnings"] == ""


# --------------------------------------------------------------------------------------------- S3 storage


@pytest.mark.slow
def test_storage_uri_puts_experiments_and_results_in_the_bucket(ray_local, s3_endpoint, tmp_path):
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    client.create_bucket(Bucket="sweeps")
    features = _blobs(tmp_path / "blobs.parquet", 600, centers=3)
    run_sweep(SweepSettings(features, fraction=1.0, models=["kmeans"], k_min=2, k_max=3, exhaustive=True,
                            results=tmp_path, name="s3run",
                            storage=f"s3://sweeps/runs?endpoint_override={s3_endpoint}&scheme=http"))
    keys = {item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="sweeps")
            for item in page.get("Contents", [])}
    assert {"runs/s3run/leaderboard.parquet", "runs/s3run/winner.json", "runs/s3run/run.json",
            "runs/s3run/rungs/rung_0.parquet"} <= keys
    assert any(key.startswith("runs/s3run/rung_0/kmeans_k2_") for key in keys)  # Ray Tune's own trial folder
    assert not (tmp_path / "s3run" / "ray").exists()


# --------------------------------------------------------------------------------------------- bad input, no Ray


def _cli_error(args, capsys):
    assert main(args) == 2
    return capsys.readouterr().err


def test_cli_names_the_feature_columns_when_all_are_constant(tmp_path, capsys):
    """One constant column is left out with a warning (test_feature_matrix); only all of them is an error."""
    values = np.column_stack([np.full(50, 120.0), np.full(50, 3.0)])
    write_feature_matrix(tmp_path / "f.parquet", np.arange(50), values, ["tempo", "mode"], {})
    err = _cli_error(["--features", str(tmp_path / "f.parquet"), "--results", str(tmp_path)], capsys)
    assert "every feature column is constant" in err and "tempo, mode" in err


def test_cli_names_nan_feature_columns(tmp_path, capsys):
    values = np.random.default_rng(0).normal(size=(50, 2))
    values[7, 1] = np.nan
    write_feature_matrix(tmp_path / "f.parquet", np.arange(50), values, ["tempo", "energy"], {})
    err = _cli_error(["--features", str(tmp_path / "f.parquet"), "--results", str(tmp_path)], capsys)
    assert "NaN or infinite" in err and "energy" in err


def test_cli_rejects_k_not_below_the_smallest_sample(tmp_path, capsys):
    features = _blobs(tmp_path / "blobs.parquet", 200)
    err = _cli_error(["--features", str(features), "--fraction", "0.5", "--k-max", "100", "--results",
                      str(tmp_path)], capsys)
    assert "--k-max=100 needs more rows than the smallest sample has: 100 rows" in err


@pytest.mark.parametrize("args, message", [
    (["--models", "kmeans,dbscan"], "unknown model"),
    (["--k-min", "1"], "--k-min must be >= 2"),
    (["--k-min", "5", "--k-max", "4"], r"--k-max \(4\) must be >= --k-min \(5\)"),
    (["--fraction", "0"], r"--fraction must be in \(0, 1\]"),
])
def test_cli_rejects_bad_options(tmp_path, capsys, args, message):
    import re

    features = _blobs(tmp_path / "blobs.parquet", 200)
    err = _cli_error(["--features", str(features), "--results", str(tmp_path), *args], capsys)
    assert re.search(message, err)


def test_existing_run_with_other_settings_is_refused(tmp_path):
    features = _blobs(tmp_path / "blobs.parquet", 200)
    settings = tmp_path / "run" / "rungs" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"k_max": 9}))
    with pytest.raises(ValueError, match="already exists with other settings.*k_max"):
        run_sweep(SweepSettings(features, fraction=1.0, k_max=5, results=tmp_path, name="run"))


def test_missing_feature_matrix_is_named(tmp_path, capsys):
    err = _cli_error(["--features", str(tmp_path / "absent.parquet"), "--results", str(tmp_path)], capsys)
    assert "absent.parquet" in err


def test_run_sweep_needs_a_feature_matrix():
    with pytest.raises(ValueError, match="no feature matrix given"):
        run_sweep(SweepSettings(None))


def test_the_command_resolves_the_default_data_only_after_checking_its_options(tmp_path, monkeypatch, capsys):
    import raysweep.default_data
    from raysweep import tune

    built = []
    monkeypatch.setattr(raysweep.default_data, "default_features", lambda: built.append(1) or tmp_path / "f.parquet")
    assert _cli_error(["--k-min", "1", "--results", str(tmp_path)], capsys)
    assert built == []  # a bad option stops before the default data set is built
    settings = tune._settings(tune._parser().parse_args(["--results", str(tmp_path)]))
    assert settings.features == tmp_path / "f.parquet" and built == [1]


# --------------------------------------------------------------------------------------------- notebook API


def test_import_raysweep_stays_light_and_exports_the_sweep_lazily():
    code = ("import sys, raysweep; light = not {'pandas', 'sklearn', 'ray'} & set(sys.modules); "
            "from raysweep import SweepResult, SweepSettings, sweep; print(light, sweep.__module__, "
            "SweepSettings.__module__, SweepResult.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "raysweep.tune", "raysweep.sweep_settings", "raysweep.run_folder"]


def test_an_unknown_raysweep_attribute_is_an_attribute_error():
    import raysweep

    with pytest.raises(AttributeError, match="has no attribute 'finalise'"):
        raysweep.finalise  # noqa: B018
