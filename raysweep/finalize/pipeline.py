"""The whole finalize step, :func:`finalize`: read, refit, assign, check stability, describe, write ``final/``.

:class:`FinalizeSettings` holds what to refit and what to write (the command's options).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysweep import run_folder as rf
from raysweep.feature_matrix import apply_scaling
from raysweep.finalize.artifact import MODEL_FORMAT, MODEL_LIBRARIES, save_model
from raysweep.finalize.describe import check_dataset, describe_from_dataset
from raysweep.finalize.inputs import load_features, read_run, resolve_choice
from raysweep.finalize.refit import (STABILITY_FRACTIONS, assign, cluster_profiles, fit_options, stability,
                                     standardized_means)
from raysweep.finalize.report import render_report
from raysweep.plots import write_final_plots
from raysweep.run_folder import RunFolder, library_versions, write_json
from raysweep.storage import atomic_dir

PLOT_SAMPLE = 20_000  # points in the 2-D projection plot


@dataclass(frozen=True)
class FinalizeSettings:
    """What :func:`finalize` refits and what it writes; the defaults are the command's.

    Attributes
    ----------
    model, k : refit this configuration instead of the sweep's winner (both or neither)
    features : feature matrix to use instead of the one named in run.json (same playlists and columns)
    dataset : ingest output folder; adds the top playlist names, artists and tracks per cluster
    fractions : sample fractions for the stability check
    plot_sample : points in the 2-D projection plot
    plots : draw the plots (they need matplotlib; without it they are skipped with a message)
    quiet : no progress lines on stderr
    """

    model: str | None = None
    k: int | None = None
    features: str | os.PathLike | None = None
    dataset: str | os.PathLike | None = None
    fractions: tuple[float, ...] = STABILITY_FRACTIONS
    plot_sample: int = PLOT_SAMPLE
    plots: bool = True
    quiet: bool = False


def finalize(run: str | os.PathLike, settings: FinalizeSettings | None = None, **options) -> dict:
    """Refit the winner (or ``model`` and ``k``) on every playlist and write ``RUN/final/``.

    Parameters
    ----------
    run : sweep run folder (``RESULTS/RUN``) holding run.json and winner.json
    settings : FinalizeSettings, default=None
        None: the command's defaults.
    **options
        Fields of :class:`FinalizeSettings` to set, e.g. ``finalize(run, model="gmm", k=20, plots=False)``.

    Returns
    -------
    summary : dict, the contents of final/final.json; ``summary["report"]`` is the report's path
    """
    settings = replace(settings or FinalizeSettings(), **options)
    model, k, features, dataset = settings.model, settings.k, settings.features, settings.dataset
    fractions, plot_sample, plots, quiet = settings.fractions, settings.plot_sample, settings.plots, settings.quiet
    from raysweep.models import fit_final
    from raysweep.samples import permutation

    started = time.perf_counter()
    seconds = {}

    def step(name: str, begun: float) -> None:
        seconds[name] = round(time.perf_counter() - begun, 3)
        if not quiet:
            print(f"finalize: {name} {seconds[name]:.1f} s", file=sys.stderr, flush=True)

    folder = RunFolder(run)
    run_record, winner = read_run(folder.path)
    model, k, source = resolve_choice(folder.path, winner, model, k)
    run_name = run_record.name or folder.name

    begun = time.perf_counter()
    matrix = load_features(run_record, features)
    if dataset is not None:
        check_dataset(dataset, matrix.pid)  # before the refit: a bad dataset fails in seconds, not after it
    X = apply_scaling(matrix.values, run_record.scaling)
    if k >= len(X):
        raise ValueError(f"k={k} needs more than {len(X)} playlists")
    step("read", begun)

    begun = time.perf_counter()
    seed = int(run_record.seed)
    # Rows in the sweep's permutation order: the sweep's samples are its prefixes, a capped agglomerative fit
    # builds its tree on a prefix (a uniform subset), and the stability samples are prefixes of this same order.
    order = permutation(len(X), seed)
    X = X[order]
    options = fit_options(model, run_record, len(X))
    estimator = fit_final(model, k, X, seed, **options)
    step("refit", begun)

    begun = time.perf_counter()
    labels, distance, probability = assign(estimator, X)
    profiles = cluster_profiles(labels, matrix.values[order], matrix.columns)
    z = standardized_means(profiles, matrix.values, matrix.columns)
    step("assign and profile", begun)

    begun = time.perf_counter()
    checks = stability(model, k, X, labels, fractions, options, seed)
    step("stability", begun)

    # The plot sample is a prefix too; then back to the feature matrix's row order for everything written.
    sample, sample_labels = X[:plot_sample], labels[:plot_sample]
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))
    labels, distance = labels[restore], distance[restore]
    probability = None if probability is None else probability[restore]

    if dataset is not None:
        begun = time.perf_counter()
        described = describe_from_dataset(dataset, matrix.pid, labels)
        profiles = profiles.merge(described, on="cluster", how="left")
        step("describe from dataset", begun)

    method = {**estimator.method, **{key: estimator.info[key] for key in ("n_iter", "converged", "warnings")
                                     if key in estimator.info}}
    final_dir = folder / rf.FINAL
    with atomic_dir(final_dir) as tmp:
        begun = time.perf_counter()
        columns = {"pid": pa.array(matrix.pid), "cluster": pa.array(labels), "distance": pa.array(distance)}
        if probability is not None:
            columns["probability"] = pa.array(probability)
        pq.write_table(pa.table(columns), tmp / rf.ASSIGNMENTS, compression="zstd")
        pq.write_table(pa.Table.from_pandas(profiles, preserve_index=False), tmp / rf.CLUSTER_PROFILES)
        model_record = save_model(tmp, estimator, {
            "format": MODEL_FORMAT, "model": model, "k": k, "effective_k": int(len(profiles)),
            "feature_columns": matrix.columns, "scaling": run_record.scaling, "seed": seed,
            "method": method, "run": run_name, "versions": library_versions(MODEL_LIBRARIES),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        step("write tables and model", begun)

        drawn = {}
        if plots:
            begun = time.perf_counter()
            drawn = write_final_plots(tmp / rf.PLOTS, sample, sample_labels, profiles, z, matrix.columns, seed)
            step("plots", begun)

        summary = {
            "run": run_name, "model": model, "k": k, "source": source,
            "effective_k": int(len(profiles)), "n": int(len(X)), "features": str(matrix.path),
            "feature_columns": matrix.columns, "dataset": None if dataset is None else str(dataset),
            "method": method, "winner": None if winner is None else winner.to_json(), "stability": checks,
            "plots": drawn, "sha256": model_record["sha256"], "seconds": {**seconds, "total": 0.0},
        }
        summary["seconds"]["total"] = round(time.perf_counter() - started, 3)
        write_json(tmp / rf.FINAL_RECORD, summary)
        (tmp / rf.FINAL_REPORT).write_text(render_report(summary, run_record, profiles, z, matrix.columns))
    summary["report"] = str(final_dir / rf.FINAL_REPORT)
    return summary

