"""Soak figure of RELIABILITY.md: the demo sweep run again and again, a worker killed at a random moment each time.

A ``ray.cluster_utils.Cluster`` on this machine (a 0-CPU head, as in cluster.yaml, and ``--workers`` 1-CPU workers)
runs one undisturbed sweep, then ``--runs`` sweeps on the same data, each with one worker removed without grace (a
spot reclaim) at a uniformly random moment of the undisturbed run's wall time, and a replacement added. Every
disturbed leaderboard must equal the undisturbed one: the same configs at every rung, scores equal to 1e-12
(silhouette to 1e-7: a config rerun alone is scored without its rung's shared float32 distance matrix). It
counts, per run, the configs computed twice (a trial in flight on the lost node) and the ledger attempts.

    python benchmarks/soak_faults.py                                   # the demo size: 20,000 playlists, k=2..100
    python benchmarks/soak_faults.py --playlists 5000 --k-max 30       # a smaller sweep (say so when quoting it)

Writes ``benchmarks/records/soak_faults.json`` (``--out``) and prints one line per run. Exit status 1 when a
leaderboard differs or a sweep fails. Never run it beside the test suite: its nodes compete for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep import run_folder as rf

REPO = Path(__file__).resolve().parents[1]
SCORES = ["silhouette", "davies_bouldin", "calinski_harabasz"]
# A config rerun alone is scored on the float64 path, not its rung's float32 distance matrix: < 1e-7 apart.
TOLERANCE = {"silhouette": 1e-7, "davies_bouldin": 1e-12, "calinski_harabasz": 1e-12}
KEYS = ["rung", "model", "k", "n", "status"]


def _sweep(features, results, name, k_max, address):
    return subprocess.Popen([sys.executable, "-m", "raysweep.tune", "--features", str(features), "--fraction", "1",
                             "--k-max", str(k_max), "--results", str(results), "--name", name, "--address", address],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _differences(board, reference):
    """What differs between two leaderboards (empty: equal to ``TOLERANCE``)."""
    if not board[KEYS].reset_index(drop=True).equals(reference[KEYS].reset_index(drop=True)):
        return ["configs or statuses differ"]
    return [f"{column} differs by {np.nanmax(np.abs(board[column] - reference[column])):.3g}"
            for column in SCORES if not np.allclose(board[column], reference[column], rtol=0,
                                                    atol=TOLERANCE[column], equal_nan=True)]


def _ledger_counts(run_dir):
    """(configs computed twice, ledger attempts beyond the first) over every rung of a run."""
    twice, extra_attempts = 0, 0
    for path in run_dir.glob(rf.rung_ledger("*")):
        records = rf.read_lines(path)
        results = [(r["model"], r["k"]) for r in records if r["event"] == "result"]
        twice += len(results) - len(set(results))
        extra_attempts += sum(1 for r in records if r["event"] == "attempt") - 1
    return twice, extra_attempts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--playlists", type=int, default=20_000, help="generated playlists (the demo's 20,000)")
    parser.add_argument("--k-max", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="1-CPU worker nodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments and of the node chosen")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "records" / "soak_faults.json"))
    args = parser.parse_args(argv)

    from ray.cluster_utils import Cluster

    from raysweep.default_data import build_default_data

    features = build_default_data(args.playlists) / "features.parquet"
    rng = random.Random(args.seed)
    results = Path(tempfile.mkdtemp(prefix="soak_faults_"))
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    record = {"command": " ".join(["python", *sys.argv]), "commit": commit.stdout.strip(),
              "playlists": args.playlists, "k_max": args.k_max, "workers": args.workers, "seed": args.seed,
              "load_average_at_start": [round(v, 2) for v in os.getloadavg()], "runs": []}
    failed = False
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(args.workers)]
        cluster.wait_for_nodes()
        started = time.perf_counter()
        reference_run = _sweep(features, results, "undisturbed", args.k_max, cluster.address)
        if reference_run.wait() != 0:
            sys.exit(f"the undisturbed sweep failed: {reference_run.stderr.read()[-2000:]}")
        wall = time.perf_counter() - started
        reference = pd.read_parquet(results / "undisturbed" / rf.LEADERBOARD)
        record.update(undisturbed_seconds=round(wall, 1), configs=int((reference["rung"] == 0).sum()),
                      trials=len(reference))
        print(f"undisturbed: {wall:.0f} s, {len(reference)} trials", flush=True)
        for run in range(1, args.runs + 1):
            name = f"run{run}"
            kill_at = rng.uniform(0, wall)
            started = time.perf_counter()
            driver = _sweep(features, results, name, args.k_max, cluster.address)
            while driver.poll() is None and time.perf_counter() - started < kill_at:
                time.sleep(0.05)
            lost = rng.choice(workers)
            cluster.remove_node(lost, allow_graceful=False)
            workers = [w for w in workers if w is not lost] + [cluster.add_node(num_cpus=1)]
            returncode = driver.wait()
            seconds = time.perf_counter() - started
            entry = {"run": run, "kill_at_seconds": round(kill_at, 1), "killed_before_the_end": kill_at < seconds,
                     "exit": returncode, "seconds": round(seconds, 1)}
            if returncode == 0:
                board = pd.read_parquet(results / name / rf.LEADERBOARD)
                twice, extra_attempts = _ledger_counts(results / name)
                entry.update(differences=_differences(board, reference), computed_twice=twice,
                             extra_attempts=extra_attempts)
            else:
                entry["stderr"] = driver.stderr.read().strip().splitlines()[-1:]
            failed |= returncode != 0 or bool(entry.get("differences"))
            record["runs"].append(entry)
            print(json.dumps(entry), flush=True)
    finally:
        cluster.shutdown()
    record["all_equal"] = not failed
    record["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"all {args.runs} leaderboards equal to the undisturbed one: {not failed} (record: {args.out})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
