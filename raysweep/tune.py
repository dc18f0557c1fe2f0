"""The sweep: Ray Tune over model families x k with early stopping on nested samples.

``python -m raysweep.tune [--features F] [--fraction 0.1] [--models kmeans,birch,agglomerative,gmm] [--k-min 2]
[--k-max 100] [--exhaustive] [--results results] [--name RUN] [--address ADDR] [--storage URI] [--seed 0]``

Exit status: 0 done; 2 bad input, or the run is in use by another command (the message names the lock file);
3 stopped by the environment (storage unreachable, disk full: the message names the URI or file), everything
finished kept; 130 interrupted. After 3 or 130, the same command resumes.

:func:`run_sweep` reads like this: check the :class:`SweepSettings`, read and scale the feature matrix, plan the
rungs (:func:`raysweep.halving.plan_rungs`), put the permuted matrix in Ray's object store once, then rung by rung
read a finished rung back from the run folder or run it as Ray Tune experiments
(:class:`raysweep._ray_rung.RungExperiments`) and promote the best third (:func:`raysweep.halving.promote`); at the
end write the leaderboard, ``winner.json``, ``run.json``, plots and TensorBoard curves into the run folder
(:mod:`raysweep.run_folder`). Without ``--features`` the command uses the embedded default data
(:mod:`raysweep.default_data`); :func:`run_sweep` itself always gets a feature matrix.

Resume: every trial result reaching the driver is appended at once (fsync'd) to
``RESULTS/RUN/rungs/rung_<r>.trials.jsonl`` (the ledger); a finished rung is written to ``rung_<r>.parquet``. A rerun
with the same settings reads finished rungs back and, for an interrupted rung, starts a new Ray Tune experiment over
the configs the ledger lacks. (``Tuner.restore`` is not used: Tune snapshots its experiment state on a throttle of
>= 10 s, so trials that ended after the last snapshot would be computed again; the ledger records each one as it
ends.) With a storage URI the ledger is mirrored to ``<storage>/<RUN>/rungs/`` at most
``raysweep._ray_rung.MIRROR_SECONDS`` after a result, so a new head (an empty ``--results``) resumes a cut rung from
the bucket. One command at a time writes a run folder (``RESULTS/RUN/run.lock``). RELIABILITY.md lists the faults
this survives and how each is tested.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep import run_folder as rf
from raysweep import samples, selection
from raysweep._ray_rung import RungExperiments, SweepInterrupted, TrialSettings, connect, quiet_ray_output
from raysweep._shared_builds import SharedBuilds
from raysweep.families import MODEL_NAMES, REGISTRY
from raysweep.feature_matrix import read_feature_matrix
from raysweep.halving import ETA, Rung, config_grid, plan_rungs, promote, promotion_record
from raysweep.models import GMM_MAX_N, KMEANS_INITS, KMEANS_SAMPLE_N, birch_method
from raysweep.null_model import METHOD as NULL_METHOD
from raysweep.null_model import null_scores
from raysweep.run_folder import Ledger, RunFolder, RunRecord, RunStorage, StorageUnavailable, SweepResult, Winner
from raysweep.storage import LockHeld, exclusive_lock
from raysweep.sweep_settings import SweepSettings, check_same_run

EXIT_RESUMABLE = 3  # stopped by the environment (storage unreachable, disk full), everything finished kept


# --------------------------------------------------------------------------------------------- the sweep


def run_sweep(settings: SweepSettings) -> Path:
    """Run (or resume) a sweep and write its results to ``RESULTS/RUN/``.

    Returns
    -------
    run_dir : Path
        ``RESULTS/RUN``, holding leaderboard.parquet/.csv, winner.json, run.json, plots/, tensorboard/, rungs/.
    """
    started = time.perf_counter()
    settings = settings.checked()
    if settings.features is None:
        raise ValueError("no feature matrix given (python -m raysweep.tune uses the default data without --features)")
    matrix = read_feature_matrix(settings.features)
    configs = config_grid(settings.models, settings.k_grid)
    sizes = plan_rungs(len(matrix.pid), settings.fraction, len(configs), settings.k_max, settings.exhaustive,
                       settings.eta, settings.min_rung_size)
    record = settings.record(matrix, sizes)
    name = settings.run_name(record)
    folder = RunFolder(Path(settings.results) / name)
    # One writer per run folder: a second command on the same run name refuses instead of sharing the ledger.
    with exclusive_lock(folder / rf.LOCK, f"run {name!r}") as stale:
        if stale is not None:
            print(f"[raysweep] {folder / rf.LOCK}: taking over the lock of pid {stale['pid']} on host "
                  f"{stale['host']}, which ended without releasing it", file=sys.stderr)
        check_same_run(folder / rf.SETTINGS, record, name)
        store = RunStorage(settings.storage, folder.path, name)
        rf.write_settings(folder / rf.SETTINGS, record)
        store.mirror([rf.SETTINGS])
        if not (folder / rf.BUILDS).exists():
            store.fetch(rf.BUILDS)  # a new head: the builds of the rungs the first head ran
        Ledger(folder / rf.BUILDS).repair()  # a line cut by a kill: that build's record is lost, not its rung

        order = samples.permutation(len(matrix.pid), settings.seed)
        X = np.ascontiguousarray(matrix.scaled()[order[: sizes[-1]]])
        null = _null_scores(folder, store, X, [config["k"] for config in configs], settings.seed)
        quiet_ray_output()
        started_ray = connect(settings.address, settings.num_cpus)
        import ray

        try:
            x_ref = ray.put(X)  # once per run: every rung's trials and builds read their prefix of it
            experiments = RungExperiments(folder, store, SharedBuilds(x_ref, settings.seed,
                                                                      settings.agglomerative_max_n),
                                          TrialSettings(settings.seed, settings.query_points, settings.exact_max_n,
                                                        settings.promotion_exact_max_n),
                                          settings.progress)
            frames, rung_records = _run_rungs(sizes, configs, experiments, settings, null)
        finally:
            if started_ray:
                ray.shutdown()
        _write_outputs(folder, store, pd.concat(frames, ignore_index=True), rung_records, record,
                       matrix.scaling(), null, time.perf_counter() - started)
    return folder.path


def _run_rungs(sizes, configs, experiments, settings, null):
    """Successive halving over the rungs: the leaderboard frame of each rung and each rung's record."""
    alive, stopped, frames, rung_records = configs, 0, [], []
    for index, n in enumerate(sizes):
        rung = Rung(index, n, len(sizes), alive, stopped)
        frame = rf.leaderboard_frame(_run_or_read_rung(rung, experiments))
        frames.append(frame)
        promoted = [] if rung.top else promote(frame, settings.eta, null)
        rung_records.append({"rung": index, "n": n, "configs": len(alive), "promoted": len(promoted),
                             "silhouette": "exact" if n <= experiments.trial.exact_limit(rung) else
                             f"query estimator, first {min(settings.query_points, n):,} rows of the sample"})
        if not rung.top:
            stopped += len(alive) - len(promoted)
            alive = promoted
    return frames, rung_records


def _null_scores(folder, store, X, k_values, seed):
    """The null's scores per k (:mod:`raysweep.null_model`): read from the run folder, else computed once."""
    path = folder / rf.NULL_SCORES
    if not path.exists():
        store.fetch(rf.NULL_SCORES)
    if path.exists():
        return pd.read_parquet(path).set_index("k")
    # One thread: on 3,000 rows OpenMP's start-up and synchronisation outweigh the work (measured: 6.4 s for k = 2..100
    # on one thread, 11.9 s wall and 23 CPU-s on two; the scores are identical).
    null = null_scores(X, k_values, seed, n_threads=1)
    rf.write_table(null.reset_index(), path)
    store.mirror([rf.NULL_SCORES])
    return null


def _run_or_read_rung(rung, experiments):
    """The leaderboard rows of one rung: read back when finished earlier, else computed (resuming a ledger)."""
    folder, store = experiments.folder, experiments.store
    relative = rf.rung_rows(rung.index)
    path = folder / relative
    if path.exists() or store.fetch(relative):
        rows = pd.read_parquet(path)
        found = {rf.config_key(m, k) for m, k in zip(rows["model"], rows["k"])}
        if found != {rf.config_key(c["model"], c["k"]) for c in rung.configs}:
            raise ValueError(f"{path}: holds other configs than this run promotes to it; the run folder is "
                             "inconsistent: delete it or use another --name")
        return rows.to_dict("records")
    frame = rf.leaderboard_frame(experiments.run(rung))
    rf.write_table(frame, path)
    store.mirror([relative])
    return frame.to_dict("records")


# --------------------------------------------------------------------------------------------- outputs


def _write_outputs(folder, store, leaderboard, rung_records, record, scaling, null, seconds):
    from raysweep.plots import write_plots

    rf.write_table(leaderboard, folder / rf.LEADERBOARD, folder / rf.LEADERBOARD_CSV)
    top = leaderboard[leaderboard["rung"] == leaderboard["rung"].max()]
    k_values = record["k_values"] or [record["k_min"], record["k_max"]]
    selected = selection.select_winner(top, k_range=(min(k_values), max(k_values)), null=null)
    selected["null_model"] = {"method": NULL_METHOD, "n": int(null["n"].iloc[0]), "path": rf.NULL_SCORES}
    Winner.from_selection(selected, {**promotion_record(record["eta"]), "exhaustive": record["exhaustive"]}).write(
        folder / rf.WINNER)
    plots = write_plots(leaderboard, rung_records, folder / rf.PLOTS)
    _write_tensorboard(leaderboard, folder / rf.TENSORBOARD)
    _run_record(folder, store, record, scaling, rung_records, plots, seconds).write(folder / rf.RUN_RECORD)
    store.mirror(rf.RESULTS)


def _run_record(folder, store, record, scaling, rung_records, plots, seconds):
    # Every build of every attempt (a rung resumed after a crash builds again, once); counts leave out a capped
    # ward tree reused from an earlier rung (listed in builds with "reused": true).
    all_builds = rf.read_lines(folder / rf.BUILDS)
    counts = {}
    for build in all_builds:
        if not build.get("reused"):
            by_rung = counts.setdefault(build["structure"], {})
            by_rung[str(build["rung"])] = by_rung.get(str(build["rung"]), 0) + 1
    ward = [b for b in all_builds if b["structure"] == "ward_tree"]
    birch = [b for b in all_builds if b["structure"] == "birch_cf_tree"]
    return RunRecord(
        name=folder.name, features=record["features"], feature_columns=record["feature_columns"],
        dropped_feature_columns=record.get("dropped_feature_columns", {}), scaling=scaling, seed=record["seed"],
        fraction=record["fraction"], n_total=record["n_total"], rungs=rung_records,
        promotion={**promotion_record(record["eta"]), "eta": record["eta"]}, models=record["models"],
        k_min=record["k_min"], k_max=record["k_max"],
        k_values=record["k_values"] or list(range(record["k_min"], record["k_max"] + 1)),
        exhaustive=record["exhaustive"],
        agglomerative_method={str(b["rung"]): b["agglomerative_method"] for b in ward},
        birch_threshold={str(b["rung"]): b["birch_threshold"] for b in birch},
        birch_method={str(b["rung"]): birch_method(b["n"])["description"] for b in birch},
        kmeans_method=(f"KMeans: {KMEANS_INITS} k-means++ inits on at most the first {KMEANS_SAMPLE_N:,} rows of the "
                       "sample (a uniform random subset), the best polished by Lloyd's algorithm on all rows"),
        gmm_method=(f"GaussianMixture fitted on at most the first {GMM_MAX_N:,} rows of the sample (a uniform "
                    "random subset); every row labelled by predict"),
        silhouette={"exact_max_n": record["exact_max_n"], "query_points": record["query_points"],
                    "estimator": "above the rung's limit (exact_max_n on the top rung, promotion_exact_max_n "
                                 "below it): the first query_points rows of the rung's sample "
                                 "(a uniform random subset, the same playlists for every config and rung), "
                                 "each scored exactly against all n rows; SE with finite-population correction",
                    "per_rung": {str(r["rung"]): r["silhouette"] for r in rung_records}},
        shared_builds={"counts": counts, "builds": all_builds},
        permutation="numpy.random.default_rng(seed).permutation(n_total); rung r = its first n_r rows",
        plots=[str(p.relative_to(folder.path)) for p in plots], versions=rf.library_versions(),
        storage=store.describe(), wall_seconds=seconds)


def _write_tensorboard(leaderboard, out_dir):
    """Per-model curves with k on the x axis.

    One writer per model in ``<out_dir>/<model>/``, with tags ``top_rung/<metric>`` and ``rung_<r>/<metric>``.
    """
    from tensorboardX import SummaryWriter

    from raysweep.storage import atomic_dir

    top = int(leaderboard["rung"].max())
    metrics = ("silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz")
    with atomic_dir(out_dir) as tmp:
        for model, rows in leaderboard.groupby("model"):
            writer = SummaryWriter(logdir=str(tmp / model))
            for _, row in rows.sort_values(["rung", "k"]).iterrows():
                prefix = "top_rung" if row["rung"] == top else f"rung_{int(row['rung'])}"
                for metric in metrics:
                    if pd.notna(row[metric]):
                        writer.add_scalar(f"{prefix}/{metric}", float(row[metric]), global_step=int(row["k"]))
            writer.close()


# --------------------------------------------------------------------------------------------- notebook API


def sweep(features, **options) -> SweepResult:
    """Run (or resume) a sweep from Python and return its leaderboard and winner.

    Parameters
    ----------
    features : str or Path, a feature matrix (:func:`raysweep.feature_matrix.write_feature_matrix`)
    **options : the other fields of :class:`SweepSettings` (``fraction``, ``models``, ``k_max``, ...)

    Returns
    -------
    result : SweepResult, with ``leaderboard`` (DataFrame, one row per trial), ``winner`` (Winner) and ``run_dir``
    """
    return SweepResult.read(run_sweep(SweepSettings(features, **options)))


# --------------------------------------------------------------------------------------------- CLI


def _parser():
    parser = argparse.ArgumentParser(prog="python -m raysweep.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", help="feature matrix (Parquet path or URI); default: the embedded demo data")
    parser.add_argument("--fraction", type=float, default=0.1, help="top sample as a fraction of the playlists")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help=f"comma-separated model families, of {', '.join(REGISTRY)}")
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=100)
    parser.add_argument("--k-values", help="comma-separated k to search instead of --k-min..--k-max")
    parser.add_argument("--exhaustive", action="store_true", help="no early stopping: every config at the top rung")
    parser.add_argument("--results", default="results", help="results folder (RESULTS)")
    parser.add_argument("--name", help="run name (RUN); default derived from the settings, so reruns resume")
    parser.add_argument("--address", help="Ray cluster to join ('auto' inside one); default: start a local Ray")
    parser.add_argument("--storage", help="Ray Tune storage: path or URI (s3://...); default RESULTS/RUN/ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eta", type=int, default=ETA, help="successive halving factor")
    parser.add_argument("--min-rung-size", type=int, help="smallest sample (default max(20 * k_max, 2000))")
    return parser


def _int_list(text):
    if text is None:
        return None
    try:
        return [int(value) for value in text.split(",") if value.strip()]
    except ValueError:
        raise ValueError(f"--k-values: expected comma-separated integers, got {text!r}") from None


def _settings(args):
    """The command's settings; bad options stop here, before the default data is built."""
    settings = SweepSettings(
        args.features, fraction=args.fraction, models=[m for m in args.models.split(",") if m], k_min=args.k_min,
        k_max=args.k_max, k_values=_int_list(args.k_values), exhaustive=args.exhaustive, results=args.results,
        name=args.name, address=args.address, storage=args.storage, seed=args.seed, eta=args.eta,
        min_rung_size=args.min_rung_size).checked()
    if settings.features is None:
        from raysweep.default_data import default_features

        settings = replace(settings, features=default_features())
    return settings


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        run_dir = run_sweep(_settings(args))
    except (ValueError, FileNotFoundError, LockHeld) as exc:
        print(f"raysweep.tune: error: {exc}", file=sys.stderr)
        return 2
    except (StorageUnavailable, OSError) as exc:  # a full disk or an unreachable bucket: the message names it
        print(f"raysweep.tune: error: {exc}", file=sys.stderr)
        return EXIT_RESUMABLE
    except SweepInterrupted as exc:
        print(f"raysweep.tune: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("raysweep.tune: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    winner = Winner.read(RunFolder(run_dir) / rf.WINNER)
    print(f"winner: {winner.model} k={winner.k} ({json.dumps(winner.scores)})")
    eligibility = winner.eligibility
    if eligibility["n_excluded"]:
        print(f"{eligibility['n_excluded']} config(s) at the top rung split a few points off (a cluster of fewer "
              f"than {eligibility['min_cluster_size']} rows or {eligibility['min_relative_size']:g} x n/k) and ranked "
              "below every sound config")
    if eligibility["winner_excluded"]:
        print("warning: every config splits a few points off; the winner is the best of them, not a sound clustering")
    if winner.edge_advice:
        print(f"warning: {winner.edge_advice}")
    print(f"results in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
