"""Benchmarks of the sweep (issue 4), beside the original study's sequential method, on the same standardized rows.

    python benchmarks/bench_sweep.py [--full] [--features F] [--seed-sweep PATH] [--n 20000] [--work DIR]

Routine (``make bench``):
  1. equal fidelity: a k-subset (k in 2, 10, 17, 25, 50, 100) x 4 models on n rows, ``--exhaustive``, exact
     silhouette: raysweep (``python -m raysweep.tune``) and ``seed_sweep.py`` end to end, and per config;
  3. early stopping against ``--exhaustive`` on the same k-subset: same winner? CPU time of the trials and builds;
  4. Ray Tune's own overhead per trial: a grid of trivial trials (marginal cost between 20 and 220 trials).
``--full`` runs 1 and 3 on all 396 configs (seed_sweep: ~1-2 h on 2 cores) and, with ``--features-1m``, benchmark 2
(the full grid on 1,000,000 playlists, ``--fraction 1.0``, early stopping on: wall time and peak RSS).

The baseline is found via ``--seed-sweep``, else ``$RAYSWEEP_SEED_SWEEP``, else ``../shared/bench/seed_sweep.py``
beside the repository; it is run as a subprocess and never copied into the repository.

seed_sweep.py's full grid takes hours on 2 cores, longer than one work session, so with ``--full`` it runs one call
per model and range of 25 k's (``seed_sweep.py ROWS --models M --k-min LO --k-max HI``: the same grid, split) and
keeps each call's table, wall and CPU time and load average in ``benchmarks/records/seed_sweep/<rows digest>/``.
A later ``--full`` run reuses the calls recorded for the same rows (``--baseline-models`` chooses the models to run
now, ``--baseline-stop-after`` when to stop starting calls, ``--rerun-baseline`` ignores the records); benchmark 1
on the full grid reports the end-to-end speedup once all four models are recorded over k = 2..100.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep import run_folder as rf

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "benchmarks" / "records" / "seed_sweep"
K_SUBSET = (2, 10, 17, 25, 50, 100)
MODELS = ("kmeans", "birch", "agglomerative", "gmm")


def _seed_sweep_path(argument):
    path = Path(argument or os.environ.get("RAYSWEEP_SEED_SWEEP") or REPO.parent / "shared" / "bench" / "seed_sweep.py")
    if not path.exists():
        raise SystemExit(f"seed_sweep.py not found at {path}: pass --seed-sweep or set RAYSWEEP_SEED_SWEEP")
    return path


def prepare_rows(features, n, work):
    """The first n rows of the sweep's permutation, standardized: as Parquet (for raysweep) and .npy (seed_sweep)."""
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


def _tree_rss(root_pid):
    """Resident memory of a process and all its descendants (the driver and the Ray it started), in bytes.

    Read from /proc (Linux): the parent of every process, then VmRSS of the tree under ``root_pid``.
    """
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    total = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def run_raysweep(parquet, work, name, k_values, exhaustive, fraction=1.0):
    """``python -m raysweep.tune`` in a subprocess; returns (wall seconds, run dir, command, peak tree RSS bytes)."""

    command = [sys.executable, "-m", "raysweep.tune", "--features", str(parquet), "--fraction", str(fraction),
               "--results", str(work / "results"), "--name", name]
    if k_values is not None:
        command += ["--k-values", ",".join(map(str, k_values))]
    if exhaustive:
        command.append("--exhaustive")
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(child.pid))
        time.sleep(1.0)
    if child.returncode != 0:
        raise SystemExit(f"raysweep failed ({child.returncode}): {' '.join(command)}")
    return time.perf_counter() - start, work / "results" / name, " ".join(command[1:]), peak


def _seed_sweep_call(seed_sweep, npy, arguments):
    """One seed_sweep.py subprocess; returns (table, wall seconds, CPU seconds of the child)."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(seed_sweep), str(npy), "--n", "0", *arguments],
                          check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return pd.read_csv(io.StringIO(done.stdout)), wall, cpu


def run_seed_sweep(seed_sweep, npy, k_values):
    """seed_sweep.py once per k of ``k_values`` (all four models each); returns (wall, table)."""
    tables, wall = [], 0.0
    for k in k_values:
        table, seconds, _ = _seed_sweep_call(seed_sweep, npy, ["--k-min", str(k), "--k-max", str(k)])
        tables.append(table)
        wall += seconds
    return wall, pd.concat(tables, ignore_index=True)


def rows_digest(npy):
    """First 16 hex digits of the SHA-256 of the rows both tools cluster: names the baseline records."""
    return hashlib.sha256(np.load(npy).tobytes()).hexdigest()[:16]


def k_chunks(size, k_min=2, k_max=100):
    """The k ranges (lo, hi) of seed_sweep.py calls that together cover k_min..k_max, ``size`` k's each."""
    return [(lo, min(lo + size - 1, k_max)) for lo in range(k_min, k_max + 1, size)]


def _record_stem(model, lo, hi):
    return f"{model}_k{lo:03d}-{hi:03d}"


def seed_sweep_full_grid(seed_sweep, npy, run_models, rerun=False, chunk=25, stop_after=None):
    """seed_sweep.py's full grid (k = 2..100) from recorded calls, one per model and k range; {model: record}.

    Runs the (model, k range) calls of ``run_models`` that have no record for these rows (all of them with
    ``rerun``), starting none after ``stop_after`` seconds, and reads the records of the others. A record holds
    the call's table, wall and CPU seconds, the load average before and after and the time it ran. A model's
    entry appears once its recorded calls cover k = 2..100; its wall and CPU are the sums over its calls.
    """
    folder = RECORDS / rows_digest(npy)
    started_all = time.perf_counter()
    for model in [m for m in MODELS if m in run_models]:
        for lo, hi in k_chunks(chunk):
            meta, table = (folder / f"{_record_stem(model, lo, hi)}.{ext}" for ext in ("json", "csv"))
            if meta.exists() and not rerun:
                continue
            if stop_after is not None and time.perf_counter() - started_all > stop_after:
                print(f"seed_sweep {model} k={lo}..{hi}: not started (--baseline-stop-after)", flush=True)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            load_before = os.getloadavg()
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            frame, wall, cpu = _seed_sweep_call(seed_sweep, npy,
                                                ["--models", model, "--k-min", str(lo), "--k-max", str(hi)])
            frame.to_csv(table, index=False)
            meta.write_text(json.dumps({
                "model": model, "k_min": lo, "k_max": hi, "configs": len(frame), "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1), "started_utc": started,
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                "command": f"seed_sweep.py ROWS --n 0 --models {model} --k-min {lo} --k-max {hi}"}, indent=2) + "\n")
            print(f"seed_sweep {model} k={lo}..{hi}: {len(frame)} configs, {wall:.0f} s wall, {cpu:.0f} CPU-s",
                  flush=True)
    records = {}
    for model in MODELS:
        calls = [json.loads(path.read_text()) for path in sorted(folder.glob(f"{model}_k*.json"))]
        covered = [k for call in calls for k in range(call["k_min"], call["k_max"] + 1)]
        if len(covered) != len(set(covered)):
            raise SystemExit(f"{folder}: the recorded {model} calls overlap in k; remove the extra records")
        if sorted(covered) != list(range(2, 101)):
            continue
        tables = [pd.read_csv(folder / f"{_record_stem(model, c['k_min'], c['k_max'])}.csv") for c in calls]
        records[model] = {"calls": len(calls), "wall_s": round(sum(c["wall_s"] for c in calls), 1),
                          "cpu_s": round(sum(c["cpu_s"] for c in calls), 1),
                          "started_utc": [c["started_utc"] for c in calls],
                          "load_average_before": [c["load_average_before"][0] for c in calls],
                          "load_average_after": [c["load_average_after"][0] for c in calls],
                          "table": pd.concat(tables, ignore_index=True)}
    return records


def trial_cpu_seconds(run_dir):
    """CPU time of a raysweep run's trials and shared builds (each trial and build holds one CPU)."""
    board = pd.read_parquet(run_dir / rf.LEADERBOARD)
    builds = rf.RunRecord.read(run_dir / rf.RUN_RECORD).shared_builds["builds"]
    return float((board["fit_seconds"] + board["score_seconds"]).sum() + sum(b["seconds"] for b in builds))


def equal_fidelity(parquet, npy, seed_sweep, work, k_values, n, baseline_models=MODELS, rerun_baseline=False,
                   stop_after=None):
    """Benchmark 1; ``k_values`` None means the full grid k = 2..100 (baseline from per-model records)."""
    name = "exhaustive-full" if k_values is None else f"exhaustive-{len(k_values)}k"
    wall_ray, run_dir, command, _ = run_raysweep(parquet, work, name, k_values, True)
    board = pd.read_parquet(run_dir / rf.LEADERBOARD)
    run = json.loads((run_dir / rf.RUN_RECORD).read_text())
    if k_values is None:
        records = seed_sweep_full_grid(seed_sweep, npy, baseline_models, rerun_baseline, stop_after=stop_after)
        seed = pd.concat([r["table"] for r in records.values()], ignore_index=True) if records else None
        complete = len(records) == len(MODELS)
        wall_seed = sum(r["wall_s"] for r in records.values()) if complete else None
        baseline = {model: {key: value for key, value in r.items() if key != "table"} for model, r in records.items()}
        seed_command = f"{seed_sweep} ROWS --n 0 --models M --k-min LO --k-max HI, M in {', '.join(records)}"
    else:
        wall_seed, seed = run_seed_sweep(seed_sweep, npy, k_values)
        baseline = None
        seed_command = f"{seed_sweep} ROWS --n 0 --k-min K --k-max K (K in {','.join(map(str, k_values))})"
    board["seconds"] = board["fit_seconds"] + board["score_seconds"]
    if seed is not None:
        seed["seconds"] = seed["fit_s"] + seed["score_s"]
    build_seconds = {b["structure"]: b["seconds"] for b in run["shared_builds"]["builds"]}
    per_model = []
    for model in MODELS:
        ours = board.loc[board["model"] == model, "seconds"].sum()
        ours += build_seconds.get({"agglomerative": "ward_tree", "birch": "birch_cf_tree"}.get(model, ""), 0.0)
        row = {"model": model, "raysweep_s": round(ours, 1)}
        if seed is not None and (seed["model"] == model).any():
            theirs = seed.loc[seed["model"] == model, "seconds"].sum()
            row.update(seed_s=round(theirs, 1), speedup=round(theirs / ours, 1))
        per_model.append(row)
    report = {
        "configs": len(board), "n": n, "raysweep_wall_s": round(wall_ray, 1),
        "seed_wall_s": None if wall_seed is None else round(wall_seed, 1),
        "speedup_end_to_end": None if wall_seed is None else round(wall_seed / wall_ray, 2),
        "raysweep_cpu_s": round(trial_cpu_seconds(run_dir), 1), "per_model": per_model,
        "raysweep_command": command, "seed_command": seed_command, "rows_digest": rows_digest(npy),
        "run_dir": str(run_dir),
    }
    if baseline is not None:
        report["seed_sweep_records"] = baseline
        report["seed_sweep_models_missing"] = [m for m in MODELS if m not in baseline]
    if seed is not None:
        report["seed_config_s"] = round(seed["seconds"].sum(), 1)
        # Same rows, but not always the same labels: Birch's threshold (adapted here, 0.5 there), KMeans inits
        # (4 here, 1 there) and GMM's code differ; agglomerative (ward, deterministic) should agree closely.
        merged = board.merge(seed, on=["model", "k"], suffixes=("", "_seed"))
        report["silhouette_max_abs_diff_per_model"] = {
            model: round(float(group["silhouette"].sub(group["silhouette_seed"]).abs().max()), 4)
            for model, group in merged.groupby("model")}
    return report


def early_stopping(parquet, work, k_values, exhaustive_dir):
    name = "halving-full" if k_values is None else f"halving-{len(k_values)}k"
    wall, run_dir, command, _ = run_raysweep(parquet, work, name, k_values, False)
    reference = json.loads((exhaustive_dir / rf.WINNER).read_text())
    winner = json.loads((run_dir / rf.WINNER).read_text())
    ours, theirs = trial_cpu_seconds(run_dir), trial_cpu_seconds(exhaustive_dir)
    run = json.loads((run_dir / rf.RUN_RECORD).read_text())
    return {"rungs": [(r["n"], r["configs"]) for r in run["rungs"]], "wall_s": round(wall, 1),
            "winner": f"{winner['model']} k={winner['k']}",
            "exhaustive_winner": f"{reference['model']} k={reference['k']}",
            "same_winner": (winner["model"], winner["k"]) == (reference["model"], reference["k"]),
            "cpu_s": round(ours, 1), "exhaustive_cpu_s": round(theirs, 1), "cpu_fraction": round(ours / theirs, 3),
            "command": command}


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


def full_million(features_1m, work):
    wall, run_dir, command, peak = run_raysweep(features_1m, work, "million", None, False, fraction=1.0)
    winner = json.loads((run_dir / rf.WINNER).read_text())
    return {"wall_min": round(wall / 60, 1), "peak_rss_process_tree_gib": round(peak / 2**30, 2),
            "winner": f"{winner['model']} k={winner['k']}", "command": command}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="all 396 configs (and benchmark 2 with --features-1m)")
    parser.add_argument("--features", help="feature matrix; default: the embedded default data set (20k playlists)")
    parser.add_argument("--features-1m", help="feature matrix of 1,000,000 playlists for benchmark 2 (--full)")
    parser.add_argument("--seed-sweep", help="path of seed_sweep.py")
    parser.add_argument("--n", type=int, default=20_000, help="rows of the equal-fidelity comparison")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--only", default="1,3,4",
                        help="benchmarks to run, comma-separated (default 1,3,4); 'baseline' only records "
                             "seed_sweep.py's full grid for --baseline-models")
    parser.add_argument("--baseline-models", default=",".join(MODELS),
                        help="with --full: models whose seed_sweep.py full-grid call runs now if not recorded")
    parser.add_argument("--rerun-baseline", action="store_true", help="with --full: ignore the seed_sweep records")
    parser.add_argument("--baseline-stop-after", type=float,
                        help="with --full: start no seed_sweep.py call after this many seconds (fits a session)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    seed_sweep = _seed_sweep_path(args.seed_sweep)
    work = Path(args.work or tempfile.mkdtemp(prefix="raysweep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    k_values = None if args.full else list(K_SUBSET)
    report = {"machine": f"{os.cpu_count()} CPUs", "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if {"1", "3", "baseline"} & only:
        if args.features is None:
            from raysweep.default_data import default_features

            features = default_features()
        else:
            features = args.features
        report["features"] = str(features)
        parquet, npy, n_total, d = prepare_rows(features, args.n, work)
        report["rows"] = f"{args.n:,} of {n_total:,} playlists x {d} features, standardized"
        if "baseline" in only:  # record seed_sweep.py's full grid for --baseline-models, nothing else
            records = seed_sweep_full_grid(seed_sweep, npy, args.baseline_models.split(","), args.rerun_baseline,
                                           stop_after=args.baseline_stop_after)
            report["seed_sweep_records"] = {m: {k: v for k, v in r.items() if k != "table"} for m, r in records.items()}
            only -= {"1", "3"}
    if {"1", "3"} & only:
        report["1_equal_fidelity"] = equal_fidelity(parquet, npy, seed_sweep, work, k_values, args.n,
                                                    args.baseline_models.split(","), args.rerun_baseline,
                                                    args.baseline_stop_after)
        print(json.dumps({"1_equal_fidelity": report["1_equal_fidelity"]}, indent=2), flush=True)
        if "3" in only:
            report["3_early_stopping"] = early_stopping(parquet, work, k_values,
                                                        Path(report["1_equal_fidelity"]["run_dir"]))
            print(json.dumps({"3_early_stopping": report["3_early_stopping"]}, indent=2), flush=True)
    if "4" in only:
        report["4_tune_overhead"] = tune_overhead(work)
        print(json.dumps({"4_tune_overhead": report["4_tune_overhead"]}, indent=2), flush=True)
    if args.full and args.features_1m:
        report["2_million"] = full_million(args.features_1m, work)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
