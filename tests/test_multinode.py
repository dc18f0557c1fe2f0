"""A sweep on a multi-node Ray cluster survives losing a worker mid-run, as on a spot reclaim.

``ray.cluster_utils.Cluster`` runs several Ray nodes on this machine: a head with 0 CPUs (it runs no trials, as in
cluster.yaml) and two 1-CPU workers. The sweep's driver is ``python -m raysweep.tune --address`` in a subprocess
and the cluster is not connected to this process, so the test needs no Ray of its own here (the session
``ray_local`` may be running beside it). Never run it under pytest-xdist: its nodes would compete with the other
workers' Ray instances. Trials report their Ray node id, which tells the nodes apart on one host.
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

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(os.environ.get("PYTEST_XDIST_WORKER")),
                                 reason="a multi-node Ray cluster on this machine: never under pytest-xdist")]

MODELS = ("kmeans", "gmm")
K_MAX = 15
N_CONFIGS = len(MODELS) * (K_MAX - 1)


@pytest.fixture
def features(tmp_path):
    X, _ = make_blobs(n_samples=8_000, n_features=5, centers=6, random_state=0)
    path = tmp_path / "features.parquet"
    write_feature_matrix(path, np.arange(len(X)), X, [f"f{j}" for j in range(5)], {"source": "test"})
    return path


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        yield cluster
    finally:
        cluster.shutdown()


def _finished_trials(ledger):
    """{config: node id} of the trial results the driver has recorded so far (its ledger, written per result)."""
    finished = {}
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # being written right now
                continue
            if record["event"] == "result":
                finished[f"{record['model']}:{record['k']}"] = record["node_id"]
    return finished


def _wait_for_a_finished_trial(ledger, driver, timeout):
    deadline = time.monotonic() + timeout
    while not _finished_trials(ledger):
        if driver.poll() is not None:
            pytest.fail(f"the sweep ended (exit {driver.returncode}) before any trial result was recorded")
        if time.monotonic() > deadline:
            pytest.fail(f"no trial had finished after {timeout} s")
        time.sleep(0.05)
    return _finished_trials(ledger)


def test_sweep_survives_a_lost_worker(tmp_path, features, cluster):
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    results, storage = tmp_path / "results", tmp_path / "storage"
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "raysweep.tune", "--features", str(features), "--models", ",".join(MODELS),
         "--k-min", "2", "--k-max", str(K_MAX), "--exhaustive", "--fraction", "1", "--results", str(results),
         "--name", "lost", "--address", cluster.address, "--storage", str(storage)],
        stdout=log, stderr=subprocess.STDOUT)
    ledger = results / "lost" / "rungs" / "rung_0.trials.jsonl"
    try:
        before = _wait_for_a_finished_trial(ledger, driver, timeout=180)
        # Lose the worker known to be running trials, without grace: its processes die at once, as when AWS
        # reclaims a spot instance (with reuse_actors it has already started its next trial).
        lost = next(w for w in workers if w.node_id in before.values())
        cluster.remove_node(lost, allow_graceful=False)
        replacement = cluster.add_node(num_cpus=1)
        returncode = driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    output = (tmp_path / "driver.log").read_text()
    assert returncode == 0, output[-3000:]
    assert len(before) < N_CONFIGS, "the sweep had finished before the worker was lost"

    leaderboard = pd.read_parquet(results / "lost" / "leaderboard.parquet")
    assert len(leaderboard) == N_CONFIGS
    assert not leaderboard.duplicated(["model", "k"]).any()
    assert (leaderboard["status"] == "ok").all(), leaderboard["status"].tolist()
    assert np.isfinite(leaderboard["silhouette"]).all()
    # Every config has exactly one result on the leaderboard. At most one ran twice: the one in flight on the
    # lost 1-CPU worker, whose result can reach the driver just before the node dies and Tune retries it.
    lines = ledger.read_text().splitlines()
    recorded = [(r["model"], r["k"]) for r in map(json.loads, lines) if r["event"] == "result"]
    assert set(recorded) == set(zip(leaderboard["model"], leaderboard["k"]))
    assert len(recorded) - len(set(recorded)) <= 1, sorted(recorded)

    assert len(_finished_trials(ledger)) == N_CONFIGS
    ran_on = {r["node_id"] for r in map(json.loads, lines) if r["event"] == "result"}
    assert ran_on <= {workers[0].node_id, workers[1].node_id, replacement.node_id}
    # The lost worker finished trials before it went, the others finished the rest.
    assert lost.node_id in ran_on and len(ran_on) >= 2
