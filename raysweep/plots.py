"""Every chart raysweep draws: the sweep's (scores against k, the original study's chart, and the survivors of each
rung: :func:`write_plots`), the finalized clusters' (:func:`write_final_plots`) and the recommender's metrics.

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


# --------------------------------------------------------------------------------------------- finalize plots
# write_final_plots checks that matplotlib is importable, then draws the four charts below.

def write_final_plots(folder: Path, sample: np.ndarray, sample_labels: np.ndarray, profiles: pd.DataFrame,
                      z: np.ndarray, columns: list[str], seed: int) -> dict:
    """Draw the finalize plots into ``folder``; returns {plot: relative path}, empty when matplotlib is missing.

    ``sample`` (n_points, n_features) are scaled rows for the 2-D projection, ``sample_labels`` their clusters.
    """
    try:
        import matplotlib  # noqa: F401  (optional extra: the tables and the model do not need it)
    except ImportError:
        print("finalize: matplotlib is not installed, plots skipped (pip install 'raysweep[plots]')",
              file=sys.stderr)
        return {}
    from sklearn.decomposition import PCA

    folder.mkdir(parents=True, exist_ok=True)
    drawn = {"sizes": plot_cluster_sizes(profiles["cluster"], profiles["size"], folder / "cluster_sizes.png"),
             "profiles": plot_cluster_profiles(z, profiles["cluster"], columns, folder / "cluster_profiles.png")}
    pca = PCA(n_components=2, random_state=seed).fit(sample)
    drawn["projection"] = plot_cluster_projection(pca.transform(sample), sample_labels, pca.explained_variance_ratio_,
                                                  folder / "cluster_projection.png")
    if "top_names" in profiles:
        names = {int(c): [(item["name"], item["count"]) for item in items]
                 for c, items in zip(profiles["cluster"], profiles["top_names"])}
        drawn["names"] = plot_cluster_names(names, folder / "cluster_names.png")
    return {name: f"plots/{Path(path).name}" for name, path in drawn.items()}


def plot_cluster_sizes(clusters, sizes, path):
    """Bar chart of playlists per cluster, largest first. Returns ``path``.

    Parameters
    ----------
    clusters : array-like of shape (n_clusters,), cluster ids
    sizes : array-like of shape (n_clusters,), playlists per cluster
    path : where to write the PNG
    """
    import numpy as np
    from matplotlib.figure import Figure

    clusters, sizes = np.asarray(clusters), np.asarray(sizes)
    order = np.argsort(-sizes, kind="stable")
    fig = Figure(figsize=(max(6.0, 0.3 * len(clusters)), 4.0), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(order)), sizes[order], color="tab:blue")
    ax.set_xticks(np.arange(len(order)), [str(c) for c in clusters[order]],
                  fontsize=8 if len(order) <= 40 else 5, rotation=90 if len(order) > 40 else 0)
    ax.set_xlabel("cluster")
    ax.set_ylabel("playlists")
    ax.set_title(f"Cluster sizes ({int(sizes.sum()):,} playlists, {len(clusters)} clusters)")
    fig.savefig(path, dpi=110)
    return path


def plot_cluster_profiles(z, clusters, columns, path):
    """Heatmap of cluster feature means in overall standard deviations from the overall mean. Returns ``path``.

    Parameters
    ----------
    z : ndarray of shape (n_clusters, n_features)
    clusters : array-like of shape (n_clusters,), row labels
    columns : list of str, length n_features, column labels
    path : where to write the PNG
    """
    import numpy as np
    from matplotlib.figure import Figure

    z = np.asarray(z, dtype=float)
    limit = max(float(np.nanmax(np.abs(z))), 1e-9) if z.size else 1.0
    fig = Figure(figsize=(max(6.0, 0.45 * len(columns) + 2), max(3.0, 0.22 * len(z) + 1.5)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(z, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(z)), [str(c) for c in clusters], fontsize=7 if len(z) <= 40 else 4)
    ax.set_ylabel("cluster")
    ax.set_title("Cluster feature profiles (standard deviations from the overall mean)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=110)
    return path


def plot_cluster_projection(points, labels, explained, path):
    """Scatter of a sample projected on its first two principal components, coloured by cluster. Returns ``path``.

    Parameters
    ----------
    points : ndarray of shape (n_points, 2)
    labels : ndarray of shape (n_points,), cluster of each point
    explained : sequence of 2 floats, explained variance ratio of the two components
    path : where to write the PNG
    """
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    points, labels = np.asarray(points), np.asarray(labels)
    clusters = np.unique(labels)
    # Qualitative maps keep up to 20 clusters distinguishable; beyond that a continuous map is the honest choice.
    if len(clusters) <= 10:
        colours = colormaps["tab10"]
    elif len(clusters) <= 20:
        colours = colormaps["tab20"]
    else:
        colours = colormaps["turbo"].resampled(len(clusters))
    index = np.searchsorted(clusters, labels)
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], c=colours(index % colours.N), s=3, alpha=0.6, linewidths=0)
    for cluster in clusters:
        centre = np.median(points[labels == cluster], axis=0)
        ax.annotate(str(cluster), centre, fontsize=8, ha="center", va="center", weight="bold")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.set_title(f"PCA of {len(points):,} playlists, coloured by cluster")
    fig.savefig(path, dpi=110)
    return path


def plot_cluster_names(names, path, per_cluster=8):
    """The most common playlist names of each cluster as a word list, font size by count. Returns ``path``.

    Parameters
    ----------
    names : dict {cluster: [(name, count), ...]}, most common first
    path : where to write the PNG
    per_cluster : int, names shown per cluster
    """
    import math
    import warnings

    from matplotlib.figure import Figure

    clusters = sorted(names)
    columns = max(1, min(len(clusters), 10, math.ceil(math.sqrt(1.5 * len(clusters)))))
    rows = -(-len(clusters) // columns)
    # Text placed in figure coordinates on a grid of cells: a hundred Axes would cost tens of seconds to lay out.
    header = 0.5  # inches for the title
    height = 2.4 * rows + header
    fig = Figure(figsize=(3.0 * columns, height))
    cell_height = (1 - header / height) / rows
    for position, cluster in enumerate(clusters):
        left = (position % columns + 0.5) / columns
        top = 1 - header / height - (position // columns) * cell_height
        fig.text(left, top - 0.06 * cell_height, f"cluster {cluster}", ha="center", va="center", fontsize=9,
                 weight="bold")
        shown = names[cluster][:per_cluster]
        largest = max((count for _, count in shown), default=1)
        for line, (name, count) in enumerate(shown):
            fig.text(left, top - (line + 1.5) / (per_cluster + 2) * cell_height, f"{name} ({count})", ha="center",
                     va="center", fontsize=6 + round(7 * count / largest))  # few sizes: glyphs are cached per size
    fig.suptitle("Most common playlist names per cluster", y=1 - 0.25 / height, va="center")
    with warnings.catch_warnings():
        # Names keep their emoji; the default font draws a box for them, which is all a word list needs.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(path, dpi=110)
    return path


def plot_recommend_metrics(table: pd.DataFrame, path):
    """The recommender's metrics per challenge category, one bar per method (and clustering). Returns ``path``.

    Parameters
    ----------
    table : DataFrame with columns category, method (the label of a bar), r_precision, ndcg, clicks; one row per
        category and method, categories in the order to draw
    path : where to write the PNG
    """
    import numpy as np
    from matplotlib.figure import Figure

    categories = list(dict.fromkeys(table["category"]))
    methods = list(dict.fromkeys(table["method"]))
    panels = (("r_precision", "R-precision (artist credit)"), ("ndcg", "NDCG"),
              ("clicks", "recommended songs clicks (lower is better)"))
    fig = Figure(figsize=(min(16.0, max(9.0, 0.12 * len(categories) * len(methods))), 3.2 * len(panels)),
                 layout="constrained")
    from matplotlib import colormaps

    # tab20 keeps up to 20 bars apart (the default cycle repeats after 10); more wrap around
    colours = [colormaps["tab20"](j % 20) for j in range(len(methods))]
    axes = fig.subplots(len(panels), 1, sharex=True)
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(categories))
    for ax, (column, label) in zip(axes, panels):
        for j, method in enumerate(methods):
            rows = table[table["method"] == method].set_index("category").reindex(categories)
            ax.bar(x + (j - (len(methods) - 1) / 2) * width, rows[column].to_numpy(dtype=float), width,
                   label=method, color=colours[j])
        ax.set_ylabel(label, fontsize=8)
    axes[-1].set_xticks(x, categories, rotation=30, ha="right", fontsize=8)
    axes[0].legend(fontsize=7, ncol=min(4, len(methods)), loc="upper left")
    fig.suptitle("Playlist continuation, RecSys Challenge 2018 metrics over 500 recommendations")
    fig.savefig(path, dpi=110)
    return path
