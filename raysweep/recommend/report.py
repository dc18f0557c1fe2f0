"""The Markdown report of an offline evaluation (``RUN/recommend/report.md``): :func:`render_report`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from raysweep.recommend.split import CATEGORIES

if TYPE_CHECKING:  # evaluate imports this module
    from raysweep.recommend.evaluate import Refit

ALL = "all"  # the overall row of the tables


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def render_report(summary: dict, table: pd.DataFrame, refits: list[Refit]) -> str:
    """The Markdown report of an evaluation."""
    split = summary["split"]
    lines = [f"# Recommender evaluation: run `{summary['run']}`", "",
             f"{split['held_out']:,} held-out playlists (seed {split['seed']}, up to {split['per_category']:,} per "
             f"challenge category), {split['training_playlists']:,} training playlists; "
             f"{summary['recommendations']} recommendations each, scored with the RecSys Challenge 2018 metrics "
             "(R-precision with the 0.25 artist credit, the track-only R-precision, NDCG, recommended songs "
             "clicks: lower is better, 51 without a hit).", "",
             f"Leakage: {split['leak']}.", "",
             f"Features: `{summary['features']}` (source `{summary['feature_source']}`); track features for "
             f"`study`: {summary['track_features']}.", "", "## Overall", "",
             "| method | clustering | R-precision | R-precision (tracks) | NDCG | clicks | seconds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    overall = table[table["category"] == ALL].sort_values("ndcg", ascending=False)
    seconds = summary["seconds"]["methods"]
    for row in overall.itertuples():
        label = row.method if not row.clustering else f"{row.method} [{row.clustering}]"
        lines.append(f"| {row.method} | {row.clustering or '-'} | {_fmt(row.r_precision)} | "
                     f"{_fmt(row.r_precision_tracks)} | {_fmt(row.ndcg)} | {_fmt(row.clicks, 2)} | "
                     f"{seconds.get(label, 0):.1f} |")
    anchor = summary["anchors"]["challenge_winner"]
    lines += ["", f"For reference only (the real challenge set, not this data): the challenge winner reached "
              f"R-precision {anchor['r_precision']}, NDCG {anchor['ndcg']}, clicks {anchor['clicks']}; published "
              "cluster-based student work reached NDCG 0.05-0.08 on its own splits.", "",
              "## Which clustering recommends best", ""]
    which = summary["which_clustering"]
    if which.get("best") is None:
        lines.append("No clustering method was evaluated.")
    else:
        lines += ["| clustering | role | silhouette | Davies-Bouldin | Calinski-Harabasz | NDCG cluster-cooccurrence "
                  "| NDCG study | NDCG popular-cluster |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in refits:
            cells = []
            for method in ("cluster-cooccurrence", "study", "popular-cluster"):
                found = overall[(overall["method"] == method) & (overall["clustering"] == r.clustering.name)]
                cells.append(_fmt(found["ndcg"].iloc[0]) if len(found) else "-")
            scores = r.sweep_scores
            lines.append(f"| {r.clustering.name} | {', '.join(r.roles)} | "
                         + " | ".join(_fmt(scores[m]) if scores.get(m) is not None else "-"
                                      for m in ("silhouette", "davies_bouldin", "calinski_harabasz"))
                         + " | " + " | ".join(cells) + " |")
        lines.append("")
        best = which["best"]
        lines.append(f"Best clustering for recommending (NDCG of cluster-cooccurrence): **{best}** "
                     f"({_fmt(which['ndcg'][best])}).")
        if which.get("silhouette_best") and which["silhouette_best"] != best:
            worse = which["silhouette_best"]
            lines.append(f"{worse} has the best silhouette in the sweep but recommends worse "
                         f"(NDCG {_fmt(which['ndcg'][worse])}).")
        if which.get("clusters_help") is False:
            lines.append(f"**Clusters do not help here**: neighbour scoring over all playlists without clusters "
                         f"reaches NDCG {_fmt(which['no_clusters_ndcg'])}, at least as good as every clustering.")
        elif which.get("clusters_help"):
            lines.append(f"Clusters help here: the best clustering beats neighbour scoring over all playlists "
                         f"(NDCG {_fmt(which['no_clusters_ndcg'])}).")
    lines += ["", "## NDCG per category", ""]
    pivot = table.assign(label=[m if not c else f"{m} [{c}]" for m, c in zip(table["method"], table["clustering"])]
                         ).pivot_table(index="category", columns="label", values="ndcg", sort=False)
    pivot = pivot.reindex([c.name for c in CATEGORIES if c.name in pivot.index] + [ALL])
    lines += ["| category | playlists | " + " | ".join(pivot.columns) + " |",
              "|---|---:|" + "---:|" * len(pivot.columns)]
    counts = table.drop_duplicates("category").set_index("category")["playlists"]
    for category, row in pivot.iterrows():
        lines.append(f"| {category} | {int(counts[category]):,} | " + " | ".join(_fmt(v) for v in row) + " |")
    lines += ["", "## Methods", ""]
    lines += [f"- `{name}`: {text}" for name, text in summary["methods"].items()]
    if summary.get("plot"):
        lines += ["", "## Plot", "", f"![metrics per category and method]({summary['plot']})"]
    lines += ["", "Files: `evaluation.json` (everything above), `evaluation.csv` (one row per category, "
              "method and clustering), `refits/` (the clusterings refitted on the training playlists, reused by "
              "the next evaluation of the same split), `index-evaluation/` (the training playlists' index, loaded by the "
              "next evaluation while dataset, features and split are unchanged).", "",
              f"Evaluated in {summary['seconds']['total']:.1f} s."]
    return "\n".join(lines) + "\n"
