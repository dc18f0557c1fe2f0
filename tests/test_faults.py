"""Faults injected on purpose in every phase of a sweep: each test breaks one thing, checks what the user sees (one
clear line, no traceback), reruns, and compares the leaderboard with an undisturbed run's (same configs, scores equal
to 1e-12, each config computed once). RELIABILITY.md lists them.

The faults are injected in a driver subprocess by ``tests/fault_driver.py`` (SIGKILL at an exact point, Tune's
retries off, trial and build markers) or in-process by a write wrapper (a full disk). Drivers join the session's
Ray (``ray_local``), as on a cluster, so no test pays a second Ray start-up. The multi-node faults (lost workers)
are in ``test_multinode.py``.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import write_feature_matrix
from raysweep.run_folder import Ledger
from raysweep.storage import LockHeld, exclusive_lock
from raysweep.tune import main

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "fault_driver.py"
SCORES = ["silhouette", "davies_bouldin", "calinski_harabasz"]
# 10 configs on 200 rows, the top 4 on 600: two rungs, a Birch CF-tree built per rung.
SWEEP = ["--fraction", "1", "--models", "kmeans,birch", "--k-min", "2", "--k-max", "6", "--min-rung-size", "150",
         "--name", "run"]
N_RUNG_0, N_RUNG_1 = 10, 4
N_TRIALS = N_RUNG_0 + N_RUNG_1
ANSI_OR_TRACEBACK = re.compile(r"\x1b\[|Traceback")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    X, _ = make_blobs(n_samples=600, centers=4, n_features=4, cluster_std=0.8, random_state=0)
    path = tmp_path_factory.mktemp("features") / "blobs.parquet"
    write_feature_matrix(path, np.arange(len(X)), X, ["f0", "f1", "f2", "f3"], {"source": "test"})
    return path


@pytest.fixture(scope="module")
def reference(ray_local, features, tmp_path_factory):
    """The undisturbed run: its folder, leaderboard and winner."""
    results = tmp_path_factory.mktemp("reference")
    assert main(["--features", str(features), *SWEEP, "--results", str(results)]) == 0
    run_dir = results / "run"
    return run_dir, pd.read_parquet(run_dir / "leaderboard.parquet"), json.loads((run_dir / "winner.json").read_text())


def _command(features, results, *extra):
    return ["--features", str(features), *SWEEP, "--results", str(results), *extra]


def _drive(ray_local, args, *faults, command="tune"):
    """Run ``fault_driver.py`` joined to the session's Ray; returns the finished process (stderr as text)."""
    address = ["--address", ray_local.get_runtime_context().gcs_address] if command == "tune" else []
    return subprocess.run([sys.executable, str(DRIVER), command, *[f"--fault={f}" for f in faults], "--",
                           *args, *address], cwd=REPO, capture_output=True, text=True, timeout=300)


def _assert_same_leaderboard(run_dir, reference):
    _, expected, winner = reference
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    keys = ["rung", "model", "k", "n", "status"]
    pd.testing.assert_frame_equal(board[keys], expected[keys])
    for column in SCORES:
        np.testing.assert_allclose(board[column], expected[column], rtol=0, atol=1e-12, err_msg=column)
    assert json.loads((run_dir / "winner.json").read_text())["scores"] == winner["scores"]


def _recorded(run_dir):
    """(rung, model, k) of every result line of every ledger: one per computation that reached the driver."""
    lines = []
    for path in sorted((run_dir / "rungs").glob("rung_*.trials.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["rung"], r["model"], r["k"]) for r in lines if r["event"] == "result"]


def _one_clear_line(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith("raysweep.tune:")]
    assert len(lines) == 1, stderr[-3000:]
    assert not ANSI_OR_TRACEBACK.search(lines[0])
    return lines[0]


# --------------------------------------------------------------------------------------------- the driver killed


def test_cut_ledger_line_is_ignored_with_a_message_and_the_rerun_completes(ray_local, features, reference,
                                                                         tmp_path, capsys):
    killed = _drive(ray_local, _command(features, tmp_path), "cut-result=4")
    ledger = tmp_path / "run" / "rungs" / "rung_0.trials.jsonl"
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not ledger.read_bytes().endswith(b"\n")  # the kill left half a line

    assert main(_command(features, tmp_path)) == 0

    assert "ignored its last line" in capsys.readouterr().err
    _assert_same_leaderboard(tmp_path / "run", reference)
    assert sorted(_recorded(tmp_path / "run")) == sorted(set(_recorded(tmp_path / "run")))  # each config once
    assert len(_recorded(tmp_path / "run")) == N_TRIALS


def test_driver_killed_while_a_rung_parquet_is_written_never_reads_it_back(ray_local, features, reference,
                                                                          tmp_path, capsys):
    killed = _drive(ray_local, _command(features, tmp_path), "kill-writing=rung_0.parquet")
    rungs = tmp_path / "run" / "rungs"
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (rungs / "rung_0.parquet").exists()
    assert list(rungs.glob(".rung_0.parquet.*.tmp"))  # the half-written file, aside under another name

    assert main(_command(features, tmp_path)) == 0

    assert "[raysweep] rung 1/2" not in capsys.readouterr().err  # every rung-0 trial was in the ledger
    _assert_same_leaderboard(tmp_path / "run", reference)
    assert len(_recorded(tmp_path / "run")) == len(set(_recorded(tmp_path / "run"))) == N_TRIALS


@pytest.mark.parametrize("output", ["winner.json", "tensorboard"])
def test_driver_killed_while_final_outputs_are_written_leaves_no_half_file(ray_local, features, reference,
                                                                            tmp_path, output):
    killed = _drive(ray_local, _command(features, tmp_path), f"kill-writing={output}")
    run_dir = tmp_path / "run"
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / output).exists() and not (run_dir / "run.json").exists()

    assert main(_command(features, tmp_path)) == 0

    _assert_same_leaderboard(run_dir, reference)
    assert len(_recorded(run_dir)) == N_TRIALS  # the rerun read both rungs back
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == ["birch", "kmeans"]
    assert json.loads((run_dir / "run.json").read_text())["name"] == "run"


# --------------------------------------------------------------------------------------------- two commands


def test_second_command_on_a_running_run_refuses_naming_the_lock(features, tmp_path, capsys):
    lock = tmp_path / "run" / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from raysweep.storage import exclusive_lock\n"
                               f"with exclusive_lock({str(lock)!r}, 'run'):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(_command(features, tmp_path)) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert re.fullmatch(rf"raysweep.tune: error: run 'run' is in use by pid {holder.pid} on host \S+ since \S+ "
                        rf"\(lock file {re.escape(str(lock))}\); wait for it to end, or stop it first\n", err), err
    assert not (tmp_path / "run" / "rungs").exists()  # it wrote nothing


def test_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    lock = tmp_path / "run.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "since": "earlier"}))
    with exclusive_lock(lock, "run 'run'") as stale:
        assert stale["pid"] == int(dead.stdout)
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(LockHeld, match=rf"run 'run' is in use by pid {os.getpid()} on host"):
            with exclusive_lock(lock, "run 'run'"):
                pass
    with exclusive_lock(lock, "run 'run'") as stale:
        assert stale is None  # released normally last time


# --------------------------------------------------------------------------------------------- a full disk


class _FullDisk:
    """``open`` for raysweep.run_folder whose files raise ENOSPC on the ``after``-th write of the ledgers."""

    def __init__(self, after):
        self.writes, self.after = 0, after

    def __call__(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if "a" not in mode or not str(path).endswith(".trials.jsonl"):
            return handle
        write, disk = handle.write, self

        def full(text):
            disk.writes += 1
            if disk.writes >= disk.after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(text)

        handle.write = full
        return handle


def test_disk_full_during_trials_stops_with_one_line_and_the_rerun_completes(ray_local, features, reference,
                                                                            tmp_path, capsys, monkeypatch):
    import raysweep.run_folder

    monkeypatch.setattr(raysweep.run_folder, "open", _FullDisk(after=5), raising=False)
    assert main(_command(features, tmp_path)) == 3
    line = _one_clear_line(capsys.readouterr().err)
    ledger = tmp_path / "run" / "rungs" / "rung_0.trials.jsonl"
    assert line == f"raysweep.tune: error: [Errno 28] could not append to {ledger}: No space left on device"
    assert len(Ledger(ledger).read()[0]) == 3  # the attempt line and 3 results were written before the disk filled
    monkeypatch.undo()

    assert main(_command(features, tmp_path)) == 0

    _assert_same_leaderboard(tmp_path / "run", reference)
    assert len(_recorded(tmp_path / "run")) == len(set(_recorded(tmp_path / "run"))) == N_TRIALS


def test_disk_full_while_results_are_written_keeps_the_previous_outputs(ray_local, features, reference, tmp_path,
                                                                       capsys, monkeypatch):
    run_dir = shutil.copytree(reference[0], tmp_path / "run")
    before = {name: (run_dir / name).read_bytes() for name in ("leaderboard.csv", "winner.json", "run.json")}

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    assert main(_command(features, tmp_path)) == 3
    line = _one_clear_line(capsys.readouterr().err)
    assert line == (f"raysweep.tune: error: [Errno 28] could not write {run_dir / 'leaderboard.csv'}: No space "
                    "left on device; its previous content is kept")
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    assert not list(run_dir.glob(".*.tmp"))
    monkeypatch.undo()

    assert main(_command(features, tmp_path)) == 0
    _assert_same_leaderboard(run_dir, reference)


# --------------------------------------------------------------------------------------------- storage


def _uri(endpoint, bucket, key):
    return f"s3://{bucket}/{key}?endpoint_override={endpoint}&scheme=http"


def _bucket(endpoint):
    name = f"faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1").create_bucket(Bucket=name)
    return name


def test_new_head_resumes_a_cut_rung_from_the_bucket(ray_local, s3_endpoint, features, reference, tmp_path):
    bucket = _bucket(s3_endpoint)
    storage = ["--storage", _uri(s3_endpoint, bucket, "runs")]
    # Killed after rung 0 and 2 of rung 1's 4 results; the ledger is mirrored at every step of Tune's loop.
    killed = _drive(ray_local, _command(features, tmp_path / "head_1", *storage),
                    f"kill-after-results={N_RUNG_0 + 2}",
                    "mirror-seconds=0")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    client = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    mirrored = client.get_object(Bucket=bucket, Key="runs/run/rungs/rung_1.trials.jsonl")["Body"].read().decode()
    in_bucket = {f"{r['model']}:{r['k']}" for r in map(json.loads, mirrored.splitlines()) if r["event"] == "result"}
    # Bounded staleness: at most the result that arrived in the step of the kill is missing from the bucket.
    assert 1 <= len(in_bucket) <= 2

    # A new head: an empty results folder, the same command.
    assert main(_command(features, tmp_path / "head_2", *storage)) == 0

    run_dir = tmp_path / "head_2" / "run"
    _assert_same_leaderboard(run_dir, reference)
    assert not (run_dir / "rungs" / "rung_0.trials.jsonl").exists()  # rung 0 was read back whole
    lines = [json.loads(line) for line in (run_dir / "rungs" / "rung_1.trials.jsonl").read_text().splitlines()]
    rerun = {f"{r['model']}:{r['k']}" for r in lines if r["event"] == "result" and r["attempt"] == 1}
    promoted = set(reference[1].query("rung == 1").apply(lambda r: f"{r['model']}:{r['k']}", axis=1))
    assert rerun == promoted - in_bucket
    # The builds of rung 0 come from head 1's record in the bucket: the counts equal the undisturbed run's.
    counts = json.loads((run_dir / "run.json").read_text())["shared_builds"]["counts"]
    assert counts == json.loads((reference[0] / "run.json").read_text())["shared_builds"]["counts"]


def test_storage_unreachable_mid_run_stops_naming_the_uri_and_the_rerun_resumes(ray_local, features, reference,
                                                                                tmp_path):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    bucket = _bucket(endpoint)
    args = _command(features, tmp_path, "--storage", _uri(endpoint, bucket, "runs"),
                    "--address", ray_local.get_runtime_context().gcs_address)
    (tmp_path / "marks").mkdir()
    driver = subprocess.Popen([sys.executable, str(DRIVER), "tune", "--fault=mirror-seconds=0", "--fault=marks="
                               f"{tmp_path / 'marks'}", "--fault=trial-delay=0.5", "--", *args],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = Ledger(tmp_path / "run" / "rungs" / "rung_0.trials.jsonl")
    try:
        deadline = time.monotonic() + 120
        while len(ledger.read()[0]) < 3 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop()  # the storage goes away mid-rung
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # back, with the bucket (moto keeps its state in this process)
    try:
        assert driver.returncode == 3, stderr[-3000:]
        line = _one_clear_line(stderr)
        assert line.startswith(f"raysweep.tune: error: storage unreachable at s3://{bucket}/runs/run/rungs/")
        assert line.endswith(f"every finished trial is kept in {tmp_path / 'run' / 'rungs'}: run the same command "
                             "again once it is reachable")
        assert "Traceback" not in stderr
        kept = len(ledger.read()[0])
        assert 3 <= kept < N_RUNG_0

        assert main(args) == 0
    finally:
        server.stop()
    _assert_same_leaderboard(tmp_path / "run", reference)
    assert len(_recorded(tmp_path / "run")) == len(set(_recorded(tmp_path / "run"))) == N_TRIALS


# --------------------------------------------------------------------------------------------- finalize


def test_finalize_killed_mid_write_leaves_no_final_folder_and_the_rerun_matches(ray_local, reference, tmp_path):
    from raysweep.finalize import main as finalize_main

    undisturbed = shutil.copytree(reference[0], tmp_path / "undisturbed")
    assert finalize_main(["--run", str(undisturbed), "--no-plots", "--quiet"]) == 0
    run_dir = shutil.copytree(reference[0], tmp_path / "run")

    killed = _drive(ray_local, ["--run", str(run_dir), "--no-plots", "--quiet"], "kill-writing=final",
                    command="finalize")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / "final").exists()

    assert finalize_main(["--run", str(run_dir), "--no-plots", "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "final" / "assignments.parquet"),
                                  pd.read_parquet(undisturbed / "final" / "assignments.parquet"))
