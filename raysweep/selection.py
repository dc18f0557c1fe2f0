"""Pick one winner from three scores that may disagree, and rank configs the same way for promotion.

The rule (``RULE``): among the configs with status ``ok`` at the top rung, each config gets, per metric, the
rank ``1 + the number of configs that are clearly better`` on it (silhouette higher, Davies-Bouldin lower,
Calinski-Harabasz higher). On silhouette "clearly better" means better by more than the combined standard
error ``sqrt(se_i^2 + se_j^2)``, so configs within one SE of each other tie (with exact silhouette, SE = 0, this
is the usual competition rank). The winner has the lowest mean rank over the three metrics; remaining ties go to
the smaller k, then to the model order of ``MODEL_NAMES``.

:func:`rank_configs` is that ranking; the sweep promotes the top of it from rung to rung, so promotion and
selection agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raysweep.models import MODEL_NAMES

METRICS = {"silhouette": "max", "davies_bouldin": "min", "calinski_harabasz": "max"}

RULE = ("Lowest mean rank over silhouette (higher is better), Davies-Bouldin (lower) and Calinski-Harabasz (higher) "
        "among the configs with status ok at the top rung; a config's rank on a metric is 1 + the number of configs "
        "clearly better on it, where silhouettes within one combined standard error count as tied; remaining ties "
        "go to the smaller k, then to the model order kmeans, birch, agglomerative, gmm.")

REASONING = (
    "The three scores encode different ideas of a good clustering (silhouette: each point closer to its own cluster "
    "than to the next; Davies-Bouldin: the worst overlap of each cluster with another; Calinski-Harabasz: between- "
    "over within-cluster variance, unbounded and strongly dependent on k), so they disagree and no single one is "
    "trusted: ranks put them on one scale without letting CH's magnitude dominate, and the mean rank rewards a config "
    "that is good on all three. Silhouette differences smaller than their standard error are sampling noise of the "
    "estimator and must not decide. Among equals the smaller k is preferred: simpler, more stable, and easier to use "
    "as recommender segments.")

REQUIRED_COLUMNS = ("model", "k", "silhouette", "davies_bouldin", "calinski_harabasz", "status")


def _check_leaderboard(df):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame leaderboard, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"leaderboard is missing column(s) {', '.join(missing)}")


def _clearly_better_counts(values, better, se=None):
    """For each i: the number of j with values[j] better than values[i] by more than the combined SE."""
    values = np.asarray(values, dtype=np.float64)
    diff = values[None, :] - values[:, None]  # diff[i, j] = v_j - v_i
    if better == "min":
        diff = -diff
    margin = 0.0 if se is None else np.sqrt(se[:, None] ** 2 + se[None, :] ** 2)
    return (diff > margin).sum(axis=1)


def _model_order(models):
    order = {name: i for i, name in enumerate(MODEL_NAMES)}
    return models.map(lambda m: order.get(m, len(order)))


def rank_configs(df):
    """Rank configs by the winner rule (``RULE``): best first.

    Parameters
    ----------
    df : pandas.DataFrame
        Leaderboard rows of ONE rung (one row per config): ``model``, ``k``, ``silhouette``, ``davies_bouldin``,
        ``calinski_harabasz``, ``status`` and optionally ``silhouette_se`` (missing or NaN = 0).

    Returns
    -------
    ranking : pandas.DataFrame
        The input rows with ``rank_silhouette``, ``rank_davies_bouldin``, ``rank_calinski_harabasz``,
        ``mean_rank`` and ``position`` (1 = best) added, sorted by position. Rows whose status is not ``ok`` or
        with a NaN score come last with NaN ranks, ordered by k then model.
    """
    _check_leaderboard(df)
    ok = df["status"].eq("ok") & df[list(METRICS)].notna().all(axis=1)
    good = df[ok].copy()
    se = (good["silhouette_se"].fillna(0.0).to_numpy(dtype=np.float64) if "silhouette_se" in good
          else np.zeros(len(good)))
    for metric, better in METRICS.items():
        good[f"rank_{metric}"] = 1 + _clearly_better_counts(good[metric], better,
                                                            se if metric == "silhouette" else None)
    good["mean_rank"] = good[[f"rank_{m}" for m in METRICS]].mean(axis=1)
    good["_model_order"] = _model_order(good["model"])
    good = good.sort_values(["mean_rank", "k", "_model_order"], kind="stable")
    bad = df[~ok].copy()
    for column in [f"rank_{m}" for m in METRICS] + ["mean_rank"]:
        bad[column] = np.nan
    bad["_model_order"] = _model_order(bad["model"])
    bad = bad.sort_values(["k", "_model_order"], kind="stable")
    ranking = pd.concat([good, bad]) if len(bad) else good
    ranking = ranking.drop(columns="_model_order")
    ranking["position"] = np.arange(1, len(ranking) + 1)
    return ranking.reset_index(drop=True)


def pareto_front(df):
    """Configs not dominated on the three metrics (silhouette max, Davies-Bouldin min, Calinski-Harabasz max).

    Parameters
    ----------
    df : pandas.DataFrame
        Leaderboard rows; rows whose status is not ``ok`` or with NaN scores are ignored.

    Returns
    -------
    front : pandas.DataFrame
        The non-dominated rows, sorted by model order then k.
    """
    _check_leaderboard(df)
    good = df[df["status"].eq("ok") & df[list(METRICS)].notna().all(axis=1)]
    # Orient every metric as "higher is better".
    values = np.column_stack([good[m].to_numpy(np.float64) * (1 if b == "max" else -1) for m, b in METRICS.items()])
    at_least = (values[None, :, :] >= values[:, None, :]).all(axis=2)  # [i, j]: j >= i on all metrics
    strictly = (values[None, :, :] > values[:, None, :]).any(axis=2)
    dominated = (at_least & strictly).any(axis=1)
    front = good[~dominated].copy()
    front["_model_order"] = _model_order(front["model"])
    return front.sort_values(["_model_order", "k"], kind="stable").drop(columns="_model_order")


def _config(row, columns):
    out = {"model": str(row["model"]), "k": int(row["k"])}
    for c in columns:
        if c in row and pd.notna(row[c]):
            value = row[c]
            out[c] = int(value) if c in ("effective_k", "n", "rung") else float(value)
    return out


def select_winner(leaderboard):
    """The winner of a sweep by ``RULE``, with each metric's own best and the Pareto front.

    Parameters
    ----------
    leaderboard : pandas.DataFrame
        One row per (config, rung): ``model``, ``k``, ``silhouette``, ``davies_bouldin``,
        ``calinski_harabasz``, ``status``, and optionally ``rung`` (the top one is used), ``n``,
        ``silhouette_se``, ``effective_k``.

    Returns
    -------
    winner : dict
        ``model``, ``k``, ``rule``, ``reasoning``, ``scores``, ``per_metric_best`` ({metric: {model, k, value}}),
        ``pareto_front`` (list of {model, k, scores...}), ``n``, ``rung``, ``n_candidates``.
    """
    _check_leaderboard(leaderboard)
    df = leaderboard
    rung = None
    if "rung" in df.columns and len(df):
        rung = int(df["rung"].max())
        df = df[df["rung"] == rung]
    ranking = rank_configs(df)
    candidates = ranking[ranking["mean_rank"].notna()]
    if candidates.empty:
        where = f" at the top rung ({rung})" if rung is not None else ""
        raise ValueError(f"no config with status ok and finite scores{where}: nothing to select")
    best = candidates.iloc[0]
    score_columns = ["silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz", "effective_k",
                     "mean_rank", "rank_silhouette", "rank_davies_bouldin", "rank_calinski_harabasz"]
    per_metric_best = {}
    for metric, better in METRICS.items():
        row = candidates.loc[candidates[metric].idxmax() if better == "max" else candidates[metric].idxmin()]
        per_metric_best[metric] = {"model": str(row["model"]), "k": int(row["k"]), "value": float(row[metric])}
    front = pareto_front(candidates)
    return {
        "model": str(best["model"]),
        "k": int(best["k"]),
        "rule": RULE,
        "reasoning": REASONING,
        "scores": {key: value for key, value in _config(best, score_columns).items() if key not in ("model", "k")},
        "per_metric_best": per_metric_best,
        "pareto_front": [_config(row, ["silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz",
                                       "mean_rank"]) for _, row in front.iterrows()],
        "n": int(best["n"]) if "n" in best and pd.notna(best["n"]) else None,
        "rung": rung,
        "n_candidates": int(len(candidates)),
    }
