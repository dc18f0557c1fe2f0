"""Charts of a sweep: scores against k (the original study's chart) and the survivors of each rung.

matplotlib is an optional extra (``pip install raysweep[plots]``): it is imported only here, only when plots are
drawn, and without it :func:`write_plots` says so and returns without drawing. Figures are built with
``matplotlib.figure.Figure`` directly (no pyplot), so no global backend state is touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from raysweep.storage import atomic_dir

METRICS = (
    ("silhouette", "silhouette (higher is better)"),
    ("davies_bouldin", "Davies-Bouldin (lower is better)"),
    ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
)


def _import_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _draw_scores(Figure, leaderboard: pd.DataFrame, path: Path) -> None:
    top = int(leaderboard["rung"].max())
    models = sorted(leaderboard["model"].unique())
    fig = Figure(figsize=(5 * len(METRICS), 4.2), layout="constrained")
    axes = fig.subplots(1, len(METRICS))
    for ax, (metric, title) in zip(axes, METRICS):
        for i, model in enumerate(models):
            color = f"C{i}"
            rows = leaderboard[leaderboard["model"] == model]
            for rung, at_rung in rows.groupby("rung"):
                at_rung = at_rung.sort_values("k")
                if rung == top:
                    ax.plot(at_rung["k"], at_rung[metric], "o-", color=color, ms=3, lw=1.5, label=model)
                else:
                    # Lower rungs (smaller samples) drawn faint: where the stopped configs stood.
                    ax.plot(at_rung["k"], at_rung[metric], "-", color=color, lw=1, alpha=0.25)
        ax.set_title(title)
        ax.set_xlabel("k (number of clusters)")
        ax.grid(alpha=0.3)
    n_top = int(leaderboard.loc[leaderboard["rung"] == top, "n"].iloc[0])
    axes[0].legend(title=f"top rung (n={n_top:,}); faint: lower rungs", fontsize="small")
    fig.savefig(path, dpi=110)


def _draw_survivors(Figure, rungs: list[dict], path: Path) -> None:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    labels = [f"rung {r['rung']}\nn={r['n']:,}" for r in rungs]
    bars = ax.bar(labels, [r["configs"] for r in rungs], color="C0")
    ax.bar_label(bars)
    ax.set_ylabel("configs run at this rung")
    ax.set_title("configs surviving each rung")
    fig.savefig(path, dpi=110)


def write_plots(leaderboard: pd.DataFrame, rungs: list[dict], out_dir: str | Path) -> list[Path]:
    """Write ``scores_vs_k.png`` and ``survivors_per_rung.png`` into ``out_dir`` (replaced atomically).

    Parameters
    ----------
    leaderboard : DataFrame
        One row per trial with columns ``model``, ``k``, ``rung``, ``n`` and the three scores.
    rungs : list of dict
        One record per rung with ``rung``, ``n``, ``configs``.
    out_dir : str or Path

    Returns
    -------
    paths : list of Path
        The PNGs written; empty (and a message on stderr) when matplotlib is not installed.
    """
    Figure = _import_figure()
    if Figure is None:
        print("[raysweep] matplotlib is not installed: plots skipped (pip install 'raysweep[plots]')",
              file=sys.stderr)
        return []
    names = ["scores_vs_k.png", "survivors_per_rung.png"]
    with atomic_dir(out_dir) as tmp:
        _draw_scores(Figure, leaderboard, tmp / names[0])
        _draw_survivors(Figure, rungs, tmp / names[1])
    return [Path(out_dir) / name for name in names]
