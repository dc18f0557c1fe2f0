"""The Markdown report of a finalized run (``final/report.md``): :func:`render_report`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from raysweep import run_folder as rf
from raysweep.families import get_family
from raysweep.run_folder import RunRecord

SCORE_LABELS = (("silhouette", "silhouette"), ("davies_bouldin", "Davies-Bouldin"),
                ("calinski_harabasz", "Calinski-Harabasz"), ("copeland", "head-to-head wins - losses"))


def render_report(summary: dict, run_record: RunRecord, profiles: pd.DataFrame, z: np.ndarray,
                  columns: list[str]) -> str:
    """The Markdown report: the winner and why, stability, the cluster table, the plots, the files."""
    model, k = summary["model"], summary["k"]
    lines = [f"# Final clustering: {model}, k = {k}", "",
             f"Run `{summary['run']}`: {summary['n']:,} playlists, {len(columns)} features "
             f"(`{summary['features']}`), scaling `{run_record.scaling.get('kind')}`.", "",
             "## The winner and why", "",
             f"- Refitted: **{model}, k = {k}**, {summary['source']}; {summary['effective_k']} non-empty clusters."]
    winner = summary["winner"] or {}
    if winner.get("model") == model and winner.get("k") == k:
        if winner.get("rule"):
            lines.append(f"- Rule: {winner['rule']}")
        if winner.get("reasoning"):
            lines.append(f"- Why this rule: {winner['reasoning']}")
        scores = winner.get("scores") or {}
        shown = [f"{label} {_number(scores[name])}" for name, label in SCORE_LABELS if name in scores]
        if scores.get("silhouette_se"):
            shown[0] += f" ± {_number(scores['silhouette_se'])} (standard error)"
        if shown:
            where = f" (top rung, n = {_number(winner['n'])})" if winner.get("n") else ""
            lines.append(f"- Scores in the sweep{where}: " + ", ".join(shown))
        best = winner.get("per_metric_best") or {}
        if best:
            labels = dict(SCORE_LABELS)
            lines.append("- Each metric's own best: " + "; ".join(
                f"{labels.get(metric, metric)} {entry['model']} k = {entry['k']} ({_number(entry['value'])})"
                for metric, entry in best.items()))
        if winner.get("pareto_front"):
            lines.append(f"- Configs on the Pareto front of the three scores: {len(winner['pareto_front'])}")
        eligibility = winner.get("eligibility") or {}
        if eligibility:
            every = "; **every config was, so this winner is not a sound clustering either**"
            lines.append(f"- Excluded for splitting a few points off (a cluster of fewer than "
                         f"{eligibility.get('min_cluster_size', 1)} playlists or {eligibility['min_relative_size']:g}"
                         f" x n/k): {eligibility['n_excluded']} of the configs at the top rung"
                         + (every if eligibility["winner_excluded"] else ""))
        if winner.get("edge_advice"):
            lines.append(f"- **At the edge of the searched range**: {winner['edge_advice']}.")
    elif winner:
        lines.append(f"- The sweep's winner was {winner.get('model')}, k = {winner.get('k')}.")
    method = dict(summary["method"])
    warnings = method.pop("warnings", [])
    described = method.pop("description", None)
    lines.append("- Fitted as: " + (described or "; ".join(f"{key} {value}" for key, value in method.items())))
    if warnings:
        lines.append(f"- Warnings during the refit ({len(warnings)}): " + "; ".join(warnings[:3]))
    lines += ["", "## Stability", "",
              "Adjusted Rand index between the full refit and the same model fitted on the sweep's nested samples, "
              "compared on the sample's playlists (1 = the same partition).", "",
              "| sample | playlists | ARI | note |", "|---:|---:|---:|---|"]
    for check in summary["stability"]:
        lines.append(f"| {check['fraction']:.0%} | {check['n']:,} | {_number(check['ari'])} | {check['status']} |")
    lines += ["", "## Clusters", "", "Distinctive features: the cluster mean in overall standard deviations from the "
              "overall mean (largest three).", ""]
    header = ["cluster", "playlists", "share", "distinctive features"]
    if "top_names" in profiles:
        header += ["top playlist names", "top artists"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * 3 + "---|" * (len(header) - 3)]
    for row, (_, profile) in zip(z, profiles.iterrows()):
        strongest = np.argsort(-np.abs(row))[:3]
        cells = [str(profile["cluster"]), f"{profile['size']:,}", f"{profile['share']:.1%}",
                 ", ".join(f"{columns[j]} {row[j]:+.2f}" for j in strongest)]
        if "top_names" in profiles:
            cells.append(", ".join(f"{item['name']} ({item['count']})" for item in profile["top_names"][:3]))
            cells.append(", ".join(item["artist_name"] for item in profile["top_artists"][:3]))
        lines.append("| " + " | ".join(cells) + " |")
    if "top_names" not in profiles:
        lines += ["", "Playlist names, artists and tracks per cluster need the ingest dataset: rerun with "
                  "`--dataset OUT`."]
    lines += ["", "## Plots", ""]
    titles = {"sizes": "Cluster sizes", "profiles": "Feature profiles",
              "projection": "2-D projection (PCA) of a sample", "names": "Playlist names per cluster"}
    lines += [f"![{titles[name]}]({path})" for name, path in summary["plots"].items()] or [
        "(none drawn: plots were turned off, or matplotlib is not installed)"]
    lines += ["", "## Files", "",
              f"- `{rf.ASSIGNMENTS}`: pid, cluster, distance to the cluster centre (scaled space)"
              + (", probability of the assigned component" if get_family(model).gives_probabilities else ""),
              f"- `{rf.CLUSTER_PROFILES}`: size, share, feature means in original units"
              + (", top names, artists and tracks" if "top_names" in profiles else ""),
              f"- `{rf.MODEL_ARTIFACT}` + `{rf.MODEL_RECORD}` (sha256 `{summary['sha256'][:16]}...`): load with "
              "`raysweep.finalize.load_model`, which checks the hash and the feature columns",
              f"- `{rf.FINAL_RECORD}`: everything above, machine-readable",
              "", f"Finalized in {summary['seconds']['total']:.1f} s."]
    return "\n".join(lines) + "\n"


def _number(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)

