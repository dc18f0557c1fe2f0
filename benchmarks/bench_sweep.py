"""Benchmarks of the sweep (issues 4 and 15), beside two peers, on the same standardized rows.

    python benchmarks/bench_sweep.py [--quick | --full] [--features F] [--n 20000] [--models M,...] [--work DIR]
                                     [--seed-sweep PATH] [--naive-tune PATH] [--peers seed_sweep,naive_tune]

Peers, each run as a subprocess, never copied into the repository:
  - ``seed_sweep.py``: the original study's method, sequential scikit-learn loops, exact silhouette;
  - ``naive_tune.py``: what a Ray user writes instead, plain Ray Tune trials; exhaustive, or ``--asha``.
Each is found via its option, else ``$RAYSWEEP_SEED_SWEEP`` / ``$RAYSWEEP_NAIVE_TUNE``, else
``../shared/bench/<name>.py`` beside the repository.

Every command (``python -m raysweep.tune``, each peer call) runs under ``_measure.measure``: wall time, user +
system CPU of its whole process tree (driver, Ray's GCS, raylet and workers, the peers' processes) and the summed
peak RSS of the tree. Each figure is written as a JSON record under ``benchmarks/records/sweep/`` (``_records``).

Routine (``make bench``):
  1. equal fidelity: a k-subset (k in 2, 10, 17, 25, 50, 100) x 4 models on n rows, ``--exhaustive``, exact
     silhouette: raysweep against both peers (exhaustive), end to end and per model;
  3. early stopping against ``--exhaustive`` on the same configs: same winner? process CPU and wall; beside it
     ``naive_tune.py --asha`` (its winner and wall; needs a k range, so not on the k-subset);
  4. Ray Tune's own overhead per trial: a grid of trivial trials (marginal cost between 20 and 220 trials).
``--only 5 --features-1m F --work W [--attempt-hours H]``: one attempt at the exhaustive full grid on 1,000,000
playlists (``--exhaustive --fraction 1.0``), interrupted after H hours (SIGINT: finished trials are kept); the same
command resumes it, and every attempt is a record.
``--quick`` runs 1, 3 and 4 on k = 2..5 x 4 models and 6,000 rows (a smoke run, a few minutes). ``--full`` runs
1 and 3 on all 396 configs and, with ``--features-1m``, benchmark 2 (the full grid on 1,000,000 playlists,
``--fraction 1.0``, early stopping on).

The peers' exhaustive full grids take hours on 2 cores, longer than one work session, so with ``--full`` they run
one call per model and range of 25 k's (``PEER ROWS --n 0 --models M --k-min LO --k-max HI``: the same grid, split;
for naive_tune.py each call starts its own Ray) and keep each call's table and measurement in
``benchmarks/records/<peer>/<rows digest>/``. A later ``--full`` run reuses the calls recorded for the same rows
(``--baseline-models`` chooses the models to run now, ``--baseline-stop-after`` when to stop starting calls,
``--rerun-baseline`` ignores the records); benchmark 1 on the full grid reports a peer's end-to-end speedup once all
models are recorded over k = 2..100. ``naive_tune.py --asha`` is one experiment and always runs in one call.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from _measure import GIB, measure
from _records import RECORDS, write_record

from raysweep import run_folder as rf
from raysweep.run_folder import RunRecord, Winner

REPO = Path(__file__).resolve().parents[1]
K_SUBSET = (2, 10, 17, 25, 50, 100)
K_QUICK = (2, 3, 4, 5)
N_QUICK = 6_000
K_GRID = tuple(range(2, 101))
MODELS = ("kmeans", "birch", "agglomerative", "gmm")
DEFAULT_ONLY = "1,3,4"
# name: (script, option, environment variable)
PEER_SCRIPTS = {"seed_sweep": ("seed_sweep.py", "--seed-sweep", "RAYSWEEP_SEED_SWEEP"),
                "naive_tune": ("naive_tune.py", "--naive-tune", "RAYSWEEP_NAIVE_TUNE")}


@dataclass(frozen=True)
class Peer:
    """A peer script: ``python SCRIPT ROWS --n 0 --models M --k-min LO --k-max HI [options]``, a CSV on stdout."""

    name: str
    script: Path
    options: tuple = ()

    def command(self, npy, k_min, k_max, models):
        return [sys.executable, str(self.script), str(npy), "--n", "0", "--models", ",".join(models),
                "--k-min", str(k_min), "--k-max", str(k_max), *self.options]


@dataclass
class PeerRun:
    """A peer's results over some configs: its table and what its calls cost together.

    ``calls`` holds one measurement record (``Measurement.to_record``) per subprocess call; the calls ran one
    after another, so wall and CPU are their sums.
    """

    table: pd.DataFrame
    calls: list = field(default_factory=list)

    @property
    def wall_s(self):
        return sum(call["wall_s"] for call in self.calls)

    @property
    def cpu_s(self):
        return sum(call["cpu_s"] for call in self.calls)

    def summary(self):
        peaks = [call.get("peak_rss_gib") for call in self.calls]
        return {"calls": len(self.calls), "wall_s": round(self.wall_s, 1), "cpu_s": round(self.cpu_s, 1),
                "peak_rss_gib": max(peaks) if peaks and None not in peaks else None}


@dataclass
class RaysweepRun:
    """One ``python -m raysweep.tune`` run: its measurement, folder and command line."""

    measurement: object
    run_dir: Path
    command: str

    def winner(self):
        return winner_of(self.run_dir)


def winner_of(run_dir):
    """A finished raysweep run's winner as "model k=K"."""
    winner = Winner.read(Path(run_dir) / rf.WINNER)
    return f"{winner.model} k={winner.k}"


def peer_script(name, argument):
    """The path of peer ``name``: ``argument``, else its environment variable, else ../shared/bench/ beside the repo."""
    script, option, variable = PEER_SCRIPTS[name]
    path = Path(argument or os.environ.get(variable) or REPO.parent / "shared" / "bench" / script)
    if not path.is_file():
        raise SystemExit(f"{script} not found at {path}: pass {option} or set {variable}")
    return path


def prepare_rows(features, n, work):
    """The first n rows of the sweep's permutation, standardized: as Parquet (for raysweep) and .npy (the peers)."""
    from raysweep.feature_matrix import read_feature_matrix, write_feature_matrix
    from raysweep.samples import permutation

    matrix = read_feature_matrix(features)
    order = permutation(len(matrix.pid), 0)[:n]
    values = matrix.scaled()[order]
    parquet, npy = work / f"bench_{n}.parquet", work / f"bench_{n}.npy"
    write_feature_matrix(parquet, matrix.pid[order], values, matrix.columns,
                         {"source": "benchmark", "scaling": {"kind": "none"}})
    np.save(npy, values)
    return parquet, npy, len(matrix.pid), len(matrix.columns)


def run_raysweep(parquet, work, name, k_values, models, exhaustive, fraction=1.0, time_limit=None):
    """``python -m raysweep.tune`` in a subprocess, measured with its whole process tree.

    With ``time_limit`` (seconds) the run is interrupted then (SIGINT; the same command resumes it) and an
    interrupted run (exit status 130) is returned like a finished one: check ``measurement.returncode``.
    """
    command = [sys.executable, "-m", "raysweep.tune", "--features", str(parquet), "--fraction", str(fraction),
               "--results", str(work / "results"), "--name", name, "--models", ",".join(models)]
    if k_values is not None:
        command += ["--k-values", ",".join(map(str, k_values))]
    if exhaustive:
        command.append("--exhaustive")
    measured = measure(command, cwd=REPO, stdout=subprocess.DEVNULL, time_limit=time_limit, check=False)
    if measured.returncode not in ((0, 130) if time_limit else (0,)):
        raise SystemExit(f"raysweep failed (exit status {measured.returncode}): {' '.join(command)}")
    return RaysweepRun(measured, work / "results" / name, " ".join(command[1:]))


def _contiguous(k_values):
    return list(k_values) == list(range(min(k_values), max(k_values) + 1))


def _peer_call(peer, npy, k_min, k_max, models):
    """One measured peer call; returns (its table, its measurement)."""
    measured = measure(peer.command(npy, k_min, k_max, models), capture_output=True)
    lines = measured.stdout.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("model,k,")), None)
    if header is None:
        raise SystemExit(f"{peer.script.name} printed no result table: {' '.join(measured.command)}")
    return pd.read_csv(io.StringIO("\n".join(lines[header:]))), measured


def run_peer(peer, npy, k_values, models):
    """The peer over ``k_values`` x ``models``: one call for a k range, else one call per k (each its own start-up)."""
    ranges = [(min(k_values), max(k_values))] if _contiguous(k_values) else [(k, k) for k in k_values]
    run = PeerRun(pd.DataFrame())
    tables = []
    for lo, hi in ranges:
        table, measured = _peer_call(peer, npy, lo, hi, models)
        tables.append(table)
        run.calls.append(measured.to_record())
    run.table = pd.concat(tables, ignore_index=True)
    return run


def rows_digest(npy):
    """First 16 hex digits of the SHA-256 of the rows all tools cluster: names the peers' records."""
    return hashlib.sha256(np.load(npy).tobytes()).hexdigest()[:16]


def k_chunks(size, k_min=2, k_max=100):
    """The k ranges (lo, hi) of peer calls that together cover k_min..k_max, ``size`` k's each."""
    return [(lo, min(lo + size - 1, k_max)) for lo in range(k_min, k_max + 1, size)]


def _record_stem(model, lo, hi):
    return f"{model}_k{lo:03d}-{hi:03d}"


def peer_full_grid(peer, npy, models, run_models, rerun=False, chunk=25, stop_after=None):
    """A peer's exhaustive full grid (k = 2..100) from recorded calls, one per model and k range; {model: PeerRun}.

    Runs the (model, k range) calls of ``run_models`` that have no record for these rows (all of them with
    ``rerun``), starting none after ``stop_after`` seconds, and reads the records of the others. A record holds
    the call's table (CSV) and, in JSON, its wall and CPU seconds, load average before and after and start time
    (records written since issue 15 also hold the call's whole measurement, peak RSS included, and the commit). A
    model's entry appears once its recorded calls cover k = 2..100.
    """
    folder = RECORDS / peer.name / rows_digest(npy)
    started_all = time.perf_counter()
    for model in [m for m in models if m in run_models]:
        for lo, hi in k_chunks(chunk):
            meta, table = (folder / f"{_record_stem(model, lo, hi)}.{ext}" for ext in ("json", "csv"))
            if meta.exists() and not rerun:
                continue
            if stop_after is not None and time.perf_counter() - started_all > stop_after:
                print(f"{peer.name} {model} k={lo}..{hi}: not started (--baseline-stop-after)", flush=True)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            frame, measured = _peer_call(peer, npy, lo, hi, [model])
            frame.to_csv(table, index=False)
            figures = measured.to_record()
            meta.write_text(json.dumps({
                "model": model, "k_min": lo, "k_max": hi, "configs": len(frame), "wall_s": round(measured.wall_s, 1),
                "cpu_s": round(measured.cpu_s, 1), "started_utc": measured.started_utc,
                "load_average_before": figures["load_average_before"],
                "load_average_after": figures["load_average_after"], "cpus": os.cpu_count(),
                "command": f"{peer.script.name} ROWS --n 0 --models {model} --k-min {lo} --k-max {hi}",
                "commit": _commit(), "measurement": figures}, indent=2) + "\n")
            print(f"{peer.name} {model} k={lo}..{hi}: {len(frame)} configs, {measured.wall_s:.0f} s wall, "
                  f"{measured.cpu_s:.0f} CPU-s", flush=True)
    runs = {}
    for model in models:
        calls = [json.loads(path.read_text()) for path in sorted(folder.glob(f"{model}_k*.json"))]
        covered = [k for call in calls for k in range(call["k_min"], call["k_max"] + 1)]
        if len(covered) != len(set(covered)):
            raise SystemExit(f"{folder}: the recorded {model} calls overlap in k; remove the extra records")
        if sorted(covered) != list(K_GRID):
            continue
        tables = [pd.read_csv(folder / f"{_record_stem(model, c['k_min'], c['k_max'])}.csv") for c in calls]
        runs[model] = PeerRun(pd.concat(tables, ignore_index=True),
                              [c.get("measurement") or {key: c[key] for key in
                                                        ("wall_s", "cpu_s", "started_utc", "load_average_before",
                                                         "load_average_after", "command")} for c in calls])
    return runs


def _commit():
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or None


def trial_body_seconds(run_dir):
    """Wall seconds inside a raysweep run's trial bodies (fit + score) and shared builds: *not* process CPU.

    Leaves out Tune's per-trial overhead, the driver, Ray's start-up and processes, and cores idle at rung barriers;
    kept beside the measured process CPU to show the difference (issue 15).
    """
    board = pd.read_parquet(run_dir / rf.LEADERBOARD)
    builds = RunRecord.read(run_dir / rf.RUN_RECORD).shared_builds["builds"]
    return float((board["fit_seconds"] + board["score_seconds"]).sum() + sum(b["seconds"] for b in builds))


def best_by_silhouette(table):
    """A peer's winner as its table ranks it: the highest silhouette among the results on the most rows."""
    last = table.loc[table["n"] == table["n"].max()].dropna(subset=["silhouette"])
    best = last.loc[last["silhouette"].idxmax()]
    return f"{best['model']} k={int(best['k'])}"


def _ratio(theirs, ours):
    return None if theirs is None or not ours else round(theirs / ours, 2)


def _tool_figures(measured_or_run):
    if isinstance(measured_or_run, PeerRun):
        return measured_or_run.summary()
    return {"wall_s": round(measured_or_run.wall_s, 1), "cpu_s": round(measured_or_run.cpu_s, 1),
            "peak_rss_gib": round(measured_or_run.peak_rss_bytes / GIB, 2),
            "peak_pss_gib": round(measured_or_run.peak_pss_bytes / GIB, 2)}


def equal_fidelity(parquet, npy, peers, work, k_values, models, n, baseline_models=MODELS, rerun_baseline=False,
                   stop_after=None):
    """Benchmark 1; ``k_values`` None means the full grid k = 2..100 (peers from per-model records).

    Returns (values, {tool: measurement(s)}, raysweep's exhaustive run, the peers' runs).
    """
    name = ("exhaustive-full" if k_values is None else f"exhaustive-{len(k_values)}k") + f"-{len(models)}m"
    ours = run_raysweep(parquet, work, name, k_values, models, True)
    board = pd.read_parquet(ours.run_dir / rf.LEADERBOARD)
    build_seconds = {b["structure"]: b["seconds"]
                     for b in RunRecord.read(ours.run_dir / rf.RUN_RECORD).shared_builds["builds"]}
    values = {"configs": len(board), "n": n, "models": list(models),
              "k_values": "2..100" if k_values is None else list(k_values),
              "raysweep": {**_tool_figures(ours.measurement), "winner": ours.winner(),
                           "trial_body_wall_s": round(trial_body_seconds(ours.run_dir), 1),
                           "command": ours.command, "run_dir": str(ours.run_dir)},
              "rows_digest": rows_digest(npy), "peers": {}}
    measurements = {"raysweep": ours.measurement}
    runs = {}
    for peer in peers:
        if k_values is None:
            by_model = peer_full_grid(peer, npy, models, baseline_models, rerun_baseline, stop_after=stop_after)
            missing = [m for m in models if m not in by_model]
            run = PeerRun(pd.concat([r.table for r in by_model.values()], ignore_index=True),
                          [c for r in by_model.values() for c in r.calls]) if by_model else None
            how = f"{peer.script.name} ROWS --n 0 --models M --k-min LO --k-max HI, 25 k per call, from records"
        else:
            run, missing = run_peer(peer, npy, k_values, models), []
            how = (f"{peer.script.name} ROWS --n 0 --k-min {min(k_values)} --k-max {max(k_values)}"
                   if _contiguous(k_values) else
                   f"{peer.script.name} ROWS --n 0 --k-min K --k-max K, one call per K (each its own start-up)")
        runs[peer.name] = run
        figures = {"command": how, "models_missing": missing}
        if run is not None:
            figures.update(run.summary(), winner_by_silhouette=best_by_silhouette(run.table))
            measurements[peer.name] = run.calls
            complete = not missing
            figures["speedup_wall"] = _ratio(run.wall_s, ours.measurement.wall_s) if complete else None
            figures["speedup_cpu"] = _ratio(run.cpu_s, ours.measurement.cpu_s) if complete else None
            # Same rows, not always the same labels: Birch's threshold (adapted here, 0.5 there), KMeans inits
            # (4 here, 1 there) and GMM's settings differ; agglomerative (ward, deterministic) should agree closely.
            merged = board.merge(run.table, on=["model", "k"], suffixes=("", "_peer"))
            figures["silhouette_max_abs_diff_per_model"] = {
                model: round(float(group["silhouette"].sub(group["silhouette_peer"]).abs().max()), 4)
                for model, group in merged.groupby("model")}
        values["peers"][peer.name] = figures
    values["per_model_fit_score_s"] = _per_model(board, build_seconds, runs, models)
    return values, measurements, ours, runs


def _per_model(board, build_seconds, runs, models):
    """Seconds inside each model's fits and scores (raysweep: + its shared build), per tool: wall inside bodies."""
    rows = []
    for model in models:
        ours = float((board.loc[board["model"] == model, ["fit_seconds", "score_seconds"]]).to_numpy().sum())
        ours += build_seconds.get({"agglomerative": "ward_tree", "birch": "birch_cf_tree"}.get(model, ""), 0.0)
        row = {"model": model, "raysweep_s": round(ours, 1)}
        for name, run in runs.items():
            if run is not None and (run.table["model"] == model).any():
                theirs = float(run.table.loc[run.table["model"] == model, ["fit_s", "score_s"]].to_numpy().sum())
                row[f"{name}_s"], row[f"{name}_ratio"] = round(theirs, 1), round(theirs / ours, 1)
        rows.append(row)
    return rows


def early_stopping(parquet, npy, naive_tune, work, k_values, models, exhaustive):
    """Benchmark 3: raysweep's halving against its ``--exhaustive`` run, and ``naive_tune.py --asha`` beside it."""
    name = ("halving-full" if k_values is None else f"halving-{len(k_values)}k") + f"-{len(models)}m"
    ours = run_raysweep(parquet, work, name, k_values, models, False)
    run = RunRecord.read(ours.run_dir / rf.RUN_RECORD)
    reference = exhaustive.measurement
    body, reference_body = trial_body_seconds(ours.run_dir), trial_body_seconds(exhaustive.run_dir)
    values = {
        "rungs": [(r["n"], r["configs"]) for r in run.rungs], "winner": ours.winner(),
        "exhaustive_winner": exhaustive.winner(), "same_winner": ours.winner() == exhaustive.winner(),
        "halving": {**_tool_figures(ours.measurement), "command": ours.command},
        "exhaustive": {**_tool_figures(reference), "command": exhaustive.command},
        "cpu_fraction": round(ours.measurement.cpu_s / reference.cpu_s, 3),
        "wall_fraction": round(ours.measurement.wall_s / reference.wall_s, 3),
        "trial_body_wall_s": [round(body, 1), round(reference_body, 1)],
        "trial_body_wall_fraction": round(body / reference_body, 3),
    }
    measurements = {"raysweep_halving": ours.measurement, "raysweep_exhaustive": reference}
    if naive_tune is None:
        values["naive_tune_asha"] = {"not_run": "--peers leaves out naive_tune"}
    elif not _contiguous(k_values or K_GRID):
        values["naive_tune_asha"] = {"not_run": "naive_tune.py takes a k range (--k-min/--k-max), not the k-subset, "
                                                "and ASHA split into one call per k is another experiment: "
                                                "use --quick or --full"}
    else:
        asha = run_peer(Peer(naive_tune.name, naive_tune.script, ("--asha",)), npy, k_values or K_GRID, models)
        last_step = asha.table.groupby(["model", "k"])["step"].max()
        values["naive_tune_asha"] = {
            **asha.summary(), "command": f"{naive_tune.script.name} ROWS --n 0 --asha", "winner_by_silhouette":
            best_by_silhouette(asha.table),
            "configs_per_step": {step: int((last_step >= step).sum()) for step in range(1, int(last_step.max()) + 1)},
            "rows_per_step": sorted(int(n) for n in asha.table["n"].unique()),
            "wall_over_raysweep_halving": _ratio(asha.wall_s, ours.measurement.wall_s),
            "cpu_over_raysweep_halving": _ratio(asha.cpu_s, ours.measurement.cpu_s)}
        measurements["naive_tune_asha"] = asha.calls
    return values, measurements


def _trivial(config):
    from ray import tune

    tune.report({"value": config["i"]})


def tune_overhead(work, small=20, large=220):
    """Marginal wall time per trivial trial between ``small`` and ``large`` trials (reuse_actors=True, 2 CPUs)."""
    import ray
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    walls = {}
    try:
        for count in (small, large):
            tuner = tune.Tuner(_trivial, param_space={"i": tune.grid_search(list(range(count)))},
                               tune_config=tune.TuneConfig(reuse_actors=True),
                               run_config=tune.RunConfig(storage_path=str(work / "overhead"), name=f"n{count}",
                                                         verbose=0))
            start = time.perf_counter()
            tuner.fit()
            walls[count] = time.perf_counter() - start
    finally:
        ray.shutdown()
    return {"trials": [small, large], "wall_s": [round(walls[small], 2), round(walls[large], 2)],
            "ms_per_trial": round(1000 * (walls[large] - walls[small]) / (large - small), 1)}


def full_million(features_1m, work, models):
    """Benchmark 2: the full grid on 1M playlists, early stopping on; wall, process-tree CPU, peak RSS, winner."""
    ours = run_raysweep(features_1m, work, "million", None, models, False, fraction=1.0)
    run = RunRecord.read(ours.run_dir / rf.RUN_RECORD)
    values = {**_tool_figures(ours.measurement), "wall_min": round(ours.measurement.wall_s / 60, 1),
              "winner": ours.winner(), "rungs": [(r["n"], r["configs"]) for r in run.rungs],
              "trial_body_wall_s": round(trial_body_seconds(ours.run_dir), 1), "command": ours.command}
    return values, {"raysweep": ours.measurement}


ATTEMPTS = "bench_attempts.jsonl"  # benchmark 5's attempts at one run, in that run's folder


def exhaustive_million(features_1m, work, models, time_limit):
    """Benchmark 5: one attempt at the exhaustive full grid on 1M playlists; a rerun with the same ``--work`` resumes.

    Every attempt is a record of its own; the values also sum the walls and CPU of this run's earlier attempts
    (listed in ``ATTEMPTS`` inside the run folder, so a new run at the same path starts at attempt 1) and, once it
    finished, compare its winner with benchmark 2's early-stopped winner in the same work folder, when there is one.
    """
    ours = run_raysweep(features_1m, work, "exhaustive-million", None, models, True, fraction=1.0,
                        time_limit=time_limit)
    finished = ours.measurement.returncode == 0
    attempts = ours.run_dir / ATTEMPTS
    earlier = [json.loads(line) for line in attempts.read_text().splitlines()] if attempts.exists() else []
    values = {**_tool_figures(ours.measurement), "finished": finished, "run_dir": str(ours.run_dir),
              "attempt": len(earlier) + 1, "command": ours.command,
              "all_attempts_wall_s": round(sum(r["wall_s"] for r in earlier) + ours.measurement.wall_s, 1),
              "all_attempts_cpu_s": round(sum(r["cpu_s"] for r in earlier) + ours.measurement.cpu_s, 1),
              "all_attempts_peak_rss_gib": max([r["peak_rss_gib"] for r in earlier] + [
                  round(ours.measurement.peak_rss_bytes / GIB, 2)])}
    if finished:
        values["winner"] = ours.winner()
        early = work / "results" / "million" / rf.WINNER
        values["early_stopped_winner"] = (winner_of(early.parent) if early.exists() else
                                          "not in this work folder: run --only 2 with the same --work")
    with attempts.open("a") as listing:
        listing.write(json.dumps({key: values[key] for key in ("wall_s", "cpu_s", "peak_rss_gib")}) + "\n")
    return values, {"raysweep": ours.measurement}


def _print(label, values, record):
    print(json.dumps({label: values, "record": str(record.relative_to(REPO))}, indent=2, default=str), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=f"k = 2..5 on {N_QUICK:,} rows: a smoke run")
    size.add_argument("--full", action="store_true", help="all 396 configs (and benchmark 2 with --features-1m)")
    parser.add_argument("--features", help="feature matrix; default: the embedded default data set (20k playlists)")
    parser.add_argument("--features-1m", help="feature matrix of 1,000,000 playlists for benchmark 2 (--full)")
    parser.add_argument("--seed-sweep", help="path of seed_sweep.py")
    parser.add_argument("--naive-tune", help="path of naive_tune.py")
    parser.add_argument("--peers", default=",".join(PEER_SCRIPTS),
                        help="peers to compare with, comma-separated, or 'none' (default: seed_sweep,naive_tune)")
    parser.add_argument("--models", default=",".join(MODELS), help="model families of every sweep (default all 4)")
    parser.add_argument("--n", type=int, help=f"rows of benchmarks 1 and 3 (default 20,000; --quick {N_QUICK:,})")
    parser.add_argument("--work", help="scratch folder (default: a temporary one); keep it to resume benchmark 5")
    parser.add_argument("--attempt-hours", type=float,
                        help="benchmark 5: interrupt the attempt after this many hours (rerun to resume)")
    parser.add_argument("--only", default=DEFAULT_ONLY,
                        help=f"benchmarks to run, comma-separated (default {DEFAULT_ONLY}; 2 and 5 need "
                             "--features-1m); 'baseline' only records the peers' full grid for --baseline-models")
    parser.add_argument("--baseline-models", default=",".join(MODELS),
                        help="with --full: models whose peer full-grid calls run now if not recorded ('none')")
    parser.add_argument("--rerun-baseline", action="store_true", help="with --full: ignore the peers' records")
    parser.add_argument("--baseline-stop-after", type=float,
                        help="with --full: start no peer call after this many seconds (fits a session)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - {"1", "2", "3", "4", "5", "baseline"}
    if unknown:
        parser.error(f"--only: unknown benchmark {', '.join(sorted(unknown))} (choose from 1-5, baseline)")
    if {"2", "5"} & only and not args.features_1m:
        parser.error("--only 2 and 5 need --features-1m (the feature matrix of 1,000,000 playlists)")
    models = args.models.split(",")
    if set(models) - set(MODELS):
        parser.error(f"--models: unknown {', '.join(sorted(set(models) - set(MODELS)))} (of {', '.join(MODELS)})")
    names = [] if args.peers == "none" else args.peers.split(",")
    if set(names) - set(PEER_SCRIPTS):
        parser.error(f"--peers: unknown {', '.join(sorted(set(names) - set(PEER_SCRIPTS)))} "
                     f"(of {', '.join(PEER_SCRIPTS)}, or none)")
    peers = [Peer(name, peer_script(name, getattr(args, name))) for name in names] if {"1", "3", "baseline"} & only \
        else []
    naive_tune = next((peer for peer in peers if peer.name == "naive_tune"), None)
    mode = "full" if args.full else "quick" if args.quick else "subset"
    k_values = None if args.full else list(K_QUICK if args.quick else K_SUBSET)
    n = args.n or (N_QUICK if args.quick else 20_000)
    work = Path(args.work or tempfile.mkdtemp(prefix="raysweep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load_at_start = os.getloadavg()
    common = {"mode": mode}
    if {"1", "3", "baseline"} & only:
        if args.features is None:
            from raysweep.default_data import default_features

            features = default_features()
        else:
            features = args.features
        parquet, npy, n_total, d = prepare_rows(features, n, work)
        common.update(features=str(features), rows=f"{n:,} of {n_total:,} playlists x {d} features, standardized")
        if "baseline" in only:  # record the peers' full grid for --baseline-models, nothing else
            for peer in peers:
                peer_full_grid(peer, npy, models, args.baseline_models.split(","), args.rerun_baseline,
                               stop_after=args.baseline_stop_after)
            only -= {"1", "3"}
    model_suffix = "" if len(models) == len(MODELS) else "-" + "+".join(models)
    suffix = mode + model_suffix
    if {"1", "3"} & only:
        values, measured, exhaustive, _ = equal_fidelity(parquet, npy, peers, work, k_values, models, n,
                                                         args.baseline_models.split(","), args.rerun_baseline,
                                                         args.baseline_stop_after)
        record = write_record("sweep", f"equal_fidelity-{suffix}", {**common, **values}, measurements=measured,
                              load_average_before=load_at_start)
        _print("1_equal_fidelity", values, record)
        if "3" in only:
            started = os.getloadavg()
            values, measured = early_stopping(parquet, npy, naive_tune, work, k_values, models, exhaustive)
            record = write_record("sweep", f"early_stopping-{suffix}", {**common, **values}, measurements=measured,
                                  load_average_before=started)
            _print("3_early_stopping", values, record)
    if "4" in only:
        started = os.getloadavg()
        values = tune_overhead(work)
        _print("4_tune_overhead", values, write_record("sweep", f"tune_overhead-{mode}", values,
                                                       load_average_before=started))
    if args.features_1m and ("2" in only or (args.full and args.only == DEFAULT_ONLY)):
        values, measured = full_million(args.features_1m, work, models)
        _print("2_million", values, write_record("sweep", f"million{model_suffix}", {"features": args.features_1m, **values},
                                                 measurements=measured))
    if "5" in only:
        time_limit = None if args.attempt_hours is None else args.attempt_hours * 3600
        values, measured = exhaustive_million(args.features_1m, work, models, time_limit)
        _print("5_exhaustive_million", values, write_record("sweep", f"exhaustive_million{model_suffix}",
                                                            {"features": args.features_1m, **values},
                                                            measurements=measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
