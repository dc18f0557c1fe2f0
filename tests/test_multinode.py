"""A sweep on a multi-node Ray cluster survives losing a worker mid-run, as on a spot reclaim.

``ray.cluster_utils.Cluster`` runs several Ray nodes on this machine: a head with 0 CPUs (it runs no trials, as in
cluster.yaml) and two 1-CPU workers. The sweep's driver is ``tests/fault_driver.py tune --address`` in a subprocess
and the cluster is not connected to this process. Never run it under pytest-xdist: its nodes would compete with the
other workers' Ray instances. The driver's trials and shared builds write markers (what runs on which Ray node) when
they start, so a test kills the node that is running one, and checks afterwards that it was.

Each test ends by comparing the leaderboard with an undisturbed run's (the session's local Ray).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import write_feature_matrix
from raysweep.tune import main

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(os.environ.get("PYTEST_XDIST_WORKER")),
                                 reason="a multi-node Ray cluster on this machine: never under pytest-xdist")]

REPO = Path(__file__).resolve().parents[1]
K_MAX = 9
N_CONFIGS = 2 * (K_MAX - 1)
SWEEP = ["--models", "kmeans,agglomerative", "--k-min", "2", "--k-max", str(K_MAX), "--exhaustive", "--fraction",
         "1", "--name", "lost"]
SCORES = ["silhouette", "davies_bouldin", "calinski_harabasz"]


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    X, _ = make_blobs(n_samples=2_000, n_features=5, centers=6, random_state=0)
    path = tmp_path_factory.mktemp("features") / "features.parquet"
    write_feature_matrix(path, np.arange(len(X)), X, [f"f{j}" for j in range(5)], {"source": "test"})
    return path


@pytest.fixture(scope="module")
def reference(ray_local, features, tmp_path_factory):
    """The undisturbed run's leaderboard."""
    results = tmp_path_factory.mktemp("reference")
    assert main(["--features", str(features), *SWEEP, "--results", str(results)]) == 0
    return pd.read_parquet(results / "lost" / "leaderboard.parquet")


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        yield cluster
    finally:
        cluster.shutdown()


class Sweep:
    """The driver subprocess, its ledger and the markers its trials and builds leave."""

    def __init__(self, tmp_path, features, cluster, *faults):
        self.results, self.marks = tmp_path / "results", tmp_path / "marks"
        self.marks.mkdir()
        self.ledger = self.results / "lost" / "rungs" / "rung_0.trials.jsonl"
        self.log_path = tmp_path / "driver.log"
        self._log = self.log_path.open("w")
        faults = [f"--fault={f}" for f in (f"marks={self.marks}", *faults)]
        self.driver = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fault_driver.py"), "tune", *faults, "--",
             "--features", str(features), *SWEEP, "--results", str(self.results), "--address", cluster.address,
             "--storage", str(tmp_path / "storage")], cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def records(self):
        """The ledger's lines (a line being written right now is left out)."""
        records = []
        if self.ledger.exists():
            for line in self.ledger.read_text().splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def results_by_config(self):
        return {(r["model"], r["k"]): r for r in self.records() if r["event"] == "result"}

    def started(self, kind):
        found = []
        for path in self.marks.glob(f"{kind}-*.json"):
            try:
                found.append(json.loads(path.read_text()))
            except json.JSONDecodeError:  # being written right now
                continue
        return sorted(found, key=lambda mark: mark["at"])

    def wait_for(self, condition, what, timeout=180):
        deadline = time.monotonic() + timeout
        while (found := condition()) is None:
            if self.driver.poll() is not None:
                pytest.fail(f"the sweep ended (exit {self.driver.returncode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout} s")
            time.sleep(0.05)
        return found

    def running_trial(self):
        """A trial started over 0.2 s ago on some node that has no result yet (with trial-delay it still runs)."""
        done = self.results_by_config()
        for mark in self.started("trial"):
            if (mark["model"], mark["k"]) not in done and time.time() - mark["at"] > 0.2:
                return mark
        return None

    def finish(self, timeout=300):
        try:
            return self.driver.wait(timeout=timeout)
        finally:
            if self.driver.poll() is None:
                self.driver.kill()
            self._log.close()

    def output(self):
        self._log.flush()
        return self.log_path.read_text()[-3000:]


def _node(workers, node_id):
    return next(w for w in workers if w.node_id == node_id)


def _assert_same_leaderboard(results, reference):
    board = pd.read_parquet(results / "lost" / "leaderboard.parquet")
    keys = ["model", "k", "n", "status"]
    pd.testing.assert_frame_equal(board[keys], reference[keys])
    for column in SCORES:
        # A config rerun alone in the ledger's next attempt is scored without its rung's shared float32 distance
        # matrix (fewer than DISTANCE_MATRIX_MIN_LABELINGS configs), on the float64 path: both exact, their
        # silhouettes a float32 rounding (< 1e-7) apart. Every other score is computed the same way in both runs.
        atol = 1e-7 if column == "silhouette" else 1e-12
        np.testing.assert_allclose(board[column], reference[column], rtol=0, atol=atol, err_msg=column)


def _lose_the_node_of_a_running_trial(sweep, cluster, workers):
    trial = sweep.wait_for(sweep.running_trial, "trial running")
    cluster.remove_node(_node(workers, trial["node_id"]), allow_graceful=False)  # as when AWS reclaims a spot node
    return trial, cluster.add_node(num_cpus=1)


def test_sweep_survives_a_lost_worker(tmp_path, features, reference, cluster):
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    sweep = Sweep(tmp_path, features, cluster, "trial-delay=1")
    trial, replacement = _lose_the_node_of_a_running_trial(sweep, cluster, workers)
    assert sweep.finish() == 0, sweep.output()

    _assert_same_leaderboard(sweep.results, reference)
    results = sweep.results_by_config()
    assert len(results) == N_CONFIGS
    # The trial in flight on the lost node ran again on another node (retried by Tune, or by the ledger's next
    # attempt when Tune handed it a reused actor of the dead node).
    assert results[(trial["model"], trial["k"])]["node_id"] != trial["node_id"]
    # Each config ran once, or twice where a trial was in flight on the lost node (its actor, reused, had started
    # its next trial already).
    recorded = [(r["model"], r["k"]) for r in sweep.records() if r["event"] == "result"]
    assert len(recorded) - len(set(recorded)) <= 1
    ran_on = {r["node_id"] for r in sweep.records() if r["event"] == "result"}
    assert ran_on <= {w.node_id for w in workers} | {replacement.node_id}


def test_lost_trial_runs_in_the_ledgers_second_attempt_when_tune_does_not_retry(tmp_path, features, reference,
                                                                                 cluster):
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    sweep = Sweep(tmp_path, features, cluster, "trial-delay=1", "trial-retries=0")
    trial, _ = _lose_the_node_of_a_running_trial(sweep, cluster, workers)
    assert sweep.finish() == 0, sweep.output()

    _assert_same_leaderboard(sweep.results, reference)
    assert [r["attempt"] for r in sweep.records() if r["event"] == "attempt"] == [0, 1]
    rerun = sweep.results_by_config()[(trial["model"], trial["k"])]
    assert rerun["attempt"] == 1 and rerun["node_id"] != trial["node_id"]
    # Only the configs without a result after the first attempt ran again: those lost with the node.
    second = [(r["model"], r["k"]) for r in sweep.records() if r["event"] == "result" and r["attempt"] == 1]
    first = {(r["model"], r["k"]) for r in sweep.records() if r["event"] == "result" and r["attempt"] == 0}
    assert second and not set(second) & first


def test_sweep_survives_a_worker_lost_during_a_shared_build(tmp_path, features, reference, cluster):
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    sweep = Sweep(tmp_path, features, cluster, "build-delay=4")
    build = sweep.wait_for(lambda: next(iter(sweep.started("build")), None), "shared build started")
    cluster.remove_node(_node(workers, build["node_id"]), allow_graceful=False)
    cluster.add_node(num_cpus=1)
    assert sweep.finish() == 0, sweep.output()

    _assert_same_leaderboard(sweep.results, reference)
    builds = sweep.started("build")
    # Ray ran the ward tree's task again on a live node: two starts, the first on the lost node.
    assert [b["structure"] for b in builds] == ["ward_tree", "ward_tree"]
    assert builds[0]["node_id"] == build["node_id"] != builds[1]["node_id"]
    agglomerative = pd.read_parquet(sweep.results / "lost" / "leaderboard.parquet").query("model == 'agglomerative'")
    assert agglomerative["shared_build"].nunique() == 1 and (agglomerative["status"] == "ok").all()
