"""Offline evaluation: ``python -m raysweep.recommend evaluate --run RUN --dataset OUT``.

1. A held-out split like the challenge set (:mod:`raysweep.recommend.split`), seeded.
2. The index of every other playlist of the feature matrix: held-out playlists add nothing to any count. It is
   saved in ``RUN/recommend/index-evaluation/`` and loaded from there while dataset, features and split are
   unchanged (:mod:`raysweep.recommend.index_store`).
3. The clusterings: the sweep's winner and every config on ``winner.json``'s Pareto front (plus ``configs``),
   each refitted once with :func:`raysweep.models.fit_final` the way finalize refits, but on the training
   playlists only, so the clusters evaluated never saw a held-out playlist. Refits are kept in
   ``RUN/recommend/refits/`` keyed by the split and reused by the next evaluation of the same split.
4. 500 recommendations per held-out playlist and method (clustering methods once per clustering), scored with
   the challenge's metrics (:mod:`raysweep.recommend.metrics`), per category and overall.

What still leaks: the sweep chose its winner and front on all playlists, held-out ones included (the choice of
model and k, not the clusters scored here), the feature scaling (mean, sd) was computed over all of them, and a
co-occurrence embedding's SVD saw their tracks.

Writes ``RUN/recommend/``: ``evaluation.json`` (everything), ``report.md`` (the tables), ``evaluation.csv`` (one
row per category, method and clustering) and ``plots/metrics.png``; a rerun replaces them (not ``refits/``).
:func:`evaluate` takes its options as an :class:`EvaluationSettings` or as keywords, like ``finalize``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep import run_folder as rf
from raysweep.feature_matrix import apply_scaling
from raysweep.recommend.index import Clustering, Index, build_index
from raysweep.recommend.index_store import cached_index
from raysweep.recommend.methods import METHODS, Method, Seed, get_method
from raysweep.recommend.metrics import METRICS, N_RECOMMENDATIONS, score
from raysweep.recommend.report import ALL, render_report
from raysweep.recommend.recommender import run_features
from raysweep.recommend.split import CATEGORIES, HeldOut, make_split
from raysweep.run_folder import RunFolder, RunRecord, Winner, write_json

EVALUATION_INDEX_FOLDER = "index-evaluation"  # RUN/recommend/index-evaluation/: the training playlists' index
REFITS_FOLDER = "refits"  # RUN/recommend/refits/: the clusterings refitted on the training playlists
CHALLENGE_WINNER = {"r_precision": 0.2241, "ndcg": 0.3946, "clicks": 1.784}  # vl6, main track (Zamani et al.)


@dataclass
class Refit:
    """One clustering evaluated: its config, the sweep's scores of it, and the refit on the training playlists."""

    model: str
    k: int
    sweep_scores: dict
    roles: list
    clustering: Clustering
    seconds: float
    reused: bool


@dataclass
class MethodRun:
    """One method (with one clustering, or none) over the held-out playlists.

    ``per_query`` has one row per held-out playlist: category and the metrics of ``METRICS``.
    """

    method: str
    clustering: str | None
    per_query: pd.DataFrame
    seconds: float

    @property
    def label(self) -> str:
        return self.method if self.clustering is None else f"{self.method} [{self.clustering}]"


def _configs(winner: Winner, pareto: bool, extra: list[tuple[str, int]]) -> list[tuple[str, int, dict, list]]:
    """(model, k, sweep scores, roles) of every clustering to evaluate, the winner first, each once."""
    found: dict[tuple[str, int], tuple[dict, list]] = {(winner.model, int(winner.k)): (
        dict(winner.scores or {}), ["winner"])}
    for entry in (winner.pareto_front or []) if pareto else []:
        key = (entry["model"], int(entry["k"]))
        scores = {name: value for name, value in entry.items() if name not in ("model", "k")}
        found.setdefault(key, (scores, []))[1].append("Pareto front")
    for model, k in extra:
        found.setdefault((model, int(k)), ({}, []))[1].append("requested")
    return [(model, k, scores, roles) for (model, k), (scores, roles) in found.items()]


def refit(run: Path, index: Index, record: RunRecord, model: str, k: int,
          split_key: str) -> tuple[Clustering, float, bool]:
    """The clustering ``model``, ``k`` fitted on the index rows (the training playlists), reused from disk when
    this split's refit exists. Returns the Clustering, the fit's seconds and whether it was reused."""
    import joblib

    from raysweep.finalize import fit_options
    from raysweep.models import fit_final
    from raysweep.samples import permutation

    path = RunFolder(run) / rf.RECOMMEND / REFITS_FOLDER / f"{model}-k{k}-{split_key}.joblib"
    scaling = record.scaling
    if path.exists():
        saved = joblib.load(path)  # written by this function for this run: a trusted pickle
        return index.clustering(f"{model} k={k}", model, k, saved["estimator"], scaling, saved["labels"]), \
            saved["seconds"], True
    started = time.perf_counter()
    X = apply_scaling(index.features, scaling)
    # The sweep's row order (a seeded permutation): a capped fit (ward, Birch, GMM) takes a uniform prefix of it.
    order = permutation(len(X), int(record.seed))
    estimator = fit_final(model, k, X[order], int(record.seed), **fit_options(model, record, len(X)))
    labels = np.empty(len(X), dtype=np.int32)
    labels[order] = np.asarray(estimator.labels_, dtype=np.int32)
    seconds = round(time.perf_counter() - started, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"estimator": estimator, "labels": labels, "seconds": seconds}, path)
    return index.clustering(f"{model} k={k}", model, k, estimator, scaling, labels), seconds, False


def score_method(index: Index, clustering: Clustering | None, method: Method, split: HeldOut) -> MethodRun:
    """Recommend 500 tracks for every held-out playlist with ``method`` and score each list."""
    started = time.perf_counter()
    rows = []
    for i in range(len(split.pid)):
        seed = Seed(split.seeds(i), split.title[i])
        ranked = method.rank(index, clustering, seed, N_RECOMMENDATIONS)
        rows.append(score(ranked, split.truth(i), index.catalog.artist))
    per_query = pd.DataFrame({"category": [CATEGORIES[c].name for c in split.category],
                              **{name: [getattr(r, name) for r in rows] for name in METRICS}})
    return MethodRun(method.name, None if clustering is None else clustering.name, per_query,
                     round(time.perf_counter() - started, 3))


def summarize(runs: list[MethodRun]) -> pd.DataFrame:
    """Mean metrics per category and overall (category ``all``) for every method run, with the playlist counts."""
    frames = []
    for run in runs:
        by_category = run.per_query.groupby("category", sort=False)[list(METRICS)].mean()
        by_category["playlists"] = run.per_query.groupby("category", sort=False).size()
        overall = run.per_query[list(METRICS)].mean().to_frame().T
        overall["playlists"] = len(run.per_query)
        overall.index = [ALL]
        table = pd.concat([by_category, overall]).rename_axis("category").reset_index()
        table.insert(1, "method", run.method)
        table.insert(2, "clustering", run.clustering or "")
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class EvaluationSettings:
    """What :func:`evaluate` holds out, evaluates and writes; the defaults are the command's.

    Attributes
    ----------
    per_category : held-out playlists per category (None: 1,000, or 2% of the playlists when fewer)
    seed : seed of the split
    methods : names in ``METHODS`` (None: all)
    pareto : evaluate the Pareto front's configs besides the winner
    configs : further (model, k) to evaluate
    track_features : track audio-feature table for the study method (see ``build_index``)
    plots : draw ``plots/metrics.png`` (needs matplotlib; skipped with a message without it)
    quiet : no progress lines
    index_cache : keep the training playlists' index in ``RUN/recommend/index-evaluation/`` and load it from
        there while the dataset, features and split are unchanged (:func:`raysweep.recommend.index_store.cached_index`)
    """

    per_category: int | None = None
    seed: int = 0
    methods: list[str] | None = None
    pareto: bool = True
    configs: list[tuple[str, int]] = ()
    track_features: str | os.PathLike | None = None
    plots: bool = True
    quiet: bool = False
    index_cache: bool = True


@dataclass
class Evaluation:
    """What one evaluation computed: the split, the training playlists' index, the clusterings refitted, every
    method run and their table (:func:`summarize`)."""

    split: HeldOut
    index: Index
    refits: list[Refit]
    runs: list[MethodRun]
    table: pd.DataFrame


def evaluate(run: str | os.PathLike, dataset: str | os.PathLike, settings: EvaluationSettings | None = None,
             **options) -> dict:
    """Run the offline evaluation of ``run`` on ``dataset`` and write ``RUN/recommend/`` (module docstring).

    Parameters
    ----------
    run : sweep run folder (run.json, winner.json)
    dataset : the ingest output the feature matrix came from
    settings : EvaluationSettings, default=None
        None: the command's defaults.
    **options
        Fields of :class:`EvaluationSettings` to set, e.g. ``evaluate(run, dataset, configs=[("kmeans", 5)])``.

    Returns
    -------
    summary : dict, the contents of evaluation.json plus ``report`` (the report's path)
    """
    settings = replace(settings or EvaluationSettings(), **options)
    started = time.perf_counter()
    folder = RunFolder(run)

    def say(message: str) -> None:
        if not settings.quiet:
            print(f"recommend evaluate: {message} ({time.perf_counter() - started:.1f} s)", file=sys.stderr,
                  flush=True)

    chosen = [get_method(name) for name in (settings.methods or list(METHODS))]
    record, matrix = run_features(folder.path)
    winner_path = folder / rf.WINNER
    if not winner_path.exists():
        raise FileNotFoundError(f"{winner_path}: no such file (the sweep chose no winner; the evaluation compares "
                                f"the winner and its Pareto front)")
    winner = Winner.read(winner_path)
    split = make_split(dataset, matrix.pid, settings.per_category, settings.seed)
    if len(split.pid) == 0:
        raise ValueError(f"dataset {dataset}: no playlist qualifies for any challenge category")
    say(f"split: {len(split.pid):,} held-out playlists")
    out = folder / rf.RECOMMEND
    if settings.index_cache:
        index = cached_index(out / EVALUATION_INDEX_FOLDER, dataset, matrix, exclude_pids=split.pid,
                             track_features=settings.track_features, say=say)
    else:
        index = build_index(dataset, matrix, exclude_pids=split.pid, track_features=settings.track_features)
    say(f"index: {len(index.pid):,} training playlists, {index.by_playlist.nnz:,} playlist-track pairs")

    refits = []
    if any(method.uses_clusters for method in chosen):
        for model, k, scores, roles in _configs(winner, settings.pareto, list(settings.configs)):
            clustering, seconds, reused = refit(folder.path, index, record, model, k, split.key())
            refits.append(Refit(model, k, scores, roles, clustering, seconds, reused))
            say(f"{'reused' if reused else 'refitted'} {clustering.name}")
    runs = []
    for method in chosen:
        for clustering in ([r.clustering for r in refits] if method.uses_clusters else [None]):
            runs.append(score_method(index, clustering, method, split))
            say(f"scored {runs[-1].label}")
    table = summarize(runs)
    summary = _summary(record.name or folder.name, dataset, record, Evaluation(split, index, refits, runs, table),
                       started)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "evaluation.csv", index=False)
    summary["plot"] = "plots/metrics.png" if settings.plots and _plot(table, out / "plots") else None
    write_json(out / "evaluation.json", summary)
    report = out / "report.md"
    report.write_text(render_report(summary, table, refits))
    summary["report"] = str(report)
    return summary


def _plot(table: pd.DataFrame, folder: Path) -> Path | None:
    try:
        import matplotlib  # noqa: F401  (optional extra)
    except ImportError:
        print("recommend evaluate: matplotlib is not installed, plot skipped (pip install 'raysweep[plots]')",
              file=sys.stderr)
        return None
    from raysweep.plots import plot_recommend_metrics

    folder.mkdir(parents=True, exist_ok=True)
    bars = table.assign(method=[m if not c else f"{m} [{c}]" for m, c in zip(table["method"], table["clustering"])])
    return plot_recommend_metrics(bars, folder / "metrics.png")


def best_clustering(table: pd.DataFrame, refits: list[Refit], method: str = "cluster-cooccurrence") -> dict:
    """Which clustering recommends best with ``method`` (by NDCG overall), against the no-cluster neighbour scoring.

    Returns a dict: best (clustering name or None), ndcg per clustering, the no-cluster ndcg (or None), whether
    clusters help (the best clustering beats the no-cluster scoring), and the silhouette-best clustering.
    """
    overall = table[(table["category"] == ALL) & (table["method"] == method)].set_index("clustering")
    if overall.empty:
        return {"method": method, "best": None}
    ndcg = overall["ndcg"].to_dict()
    best = max(ndcg, key=ndcg.get)
    plain = table[(table["category"] == ALL) & (table["method"] == "cooccurrence")]["ndcg"]
    no_clusters = float(plain.iloc[0]) if len(plain) else None
    scored = [r for r in refits if r.sweep_scores.get("silhouette") is not None]
    by_silhouette = max(scored, key=lambda r: r.sweep_scores["silhouette"]).clustering.name if scored else None
    return {"method": method, "best": best, "ndcg": ndcg, "no_clusters_ndcg": no_clusters,
            "clusters_help": None if no_clusters is None else bool(ndcg[best] > no_clusters),
            "silhouette_best": by_silhouette}


def _summary(run_name: str, dataset, record: RunRecord, evaluation: Evaluation, started: float) -> dict:
    """evaluation.json: the evaluation's settings, what it measured and what it leaves open."""
    split, index, refits, runs, table = (evaluation.split, evaluation.index, evaluation.refits, evaluation.runs,
                                         evaluation.table)
    counts = pd.Series([CATEGORIES[c].name for c in split.category]).value_counts()
    return {
        "run": run_name, "dataset": str(dataset), "features": record.features,
        "feature_source": index.feature_source, "track_features": index.track_feature_source,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": {"seed": split.seed, "per_category": split.per_category, "held_out": int(len(split.pid)),
                  "key": split.key(), "categories": {c.name: int(counts.get(c.name, 0)) for c in CATEGORIES},
                  "training_playlists": int(len(index.pid)),
                  "held_out_in_sweep": True,
                  "leak": "the sweep (its samples, scaling, winner and Pareto front) ran on the whole feature matrix, "
                          "held-out playlists included; every clustering evaluated here is refitted on the "
                          "training playlists only, and held-out playlists are excluded from every count of the "
                          "index" + ("; the co-occurrence embedding's SVD also saw their tracks"
                                     if index.feature_source == "cooccurrence" else "")},
        "recommendations": N_RECOMMENDATIONS,
        "metrics": {"r_precision": "(track hits in the first |G| + 0.25 x held-out artists among the first |G|'s "
                                   "non-hits) / |G| (Chen et al., RecSys 2018)",
                    "r_precision_tracks": "track hits in the first |G|, over |G|",
                    "ndcg": "DCG = rel_1 + sum_{i>=2} rel_i / log2(i); IDCG over the hits",
                    "clicks": "floor((first hit rank - 1) / 10), 51 without a hit"},
        "clusterings": [{"model": r.model, "k": r.k, "roles": r.roles, "sweep_scores": r.sweep_scores,
                         "refit_seconds": r.seconds, "reused": r.reused,
                         "clusters": int(len(r.clustering.starts) - 1)} for r in refits],
        "methods": {name: METHODS[name].description for name in dict.fromkeys(r.method for r in runs)},
        "seconds": {"methods": {r.label: r.seconds for r in runs},
                    "total": round(time.perf_counter() - started, 3)},
        "results": table.to_dict("records"),
        "which_clustering": best_clustering(table, refits),
        "anchors": {"challenge_winner": CHALLENGE_WINNER,
                    "note": "the real challenge set, not generated data: anchors, not targets"},
    }
