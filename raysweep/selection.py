"""Pick one winner from three scores that may disagree, and rank configs the same way for promotion.

The rule (``RULE``) is a pairwise majority vote of the three metrics: config A beats config B when A is clearly
better than B on more of the metrics than B is than A (silhouette higher, Davies-Bouldin lower, Calinski-Harabasz
higher). On silhouette "clearly better" means better by more than the combined standard error
``sqrt(se_i^2 + se_j^2)``, so configs within one SE of each other are equal on it (with exact silhouette, SE = 0).
Configs are ranked by wins minus losses (Copeland's method); a config that beats every other one (a Condorcet
winner) is therefore first. Remaining ties go to the smaller k, then to the model order of ``MODEL_NAMES``.
Condorcet winner and Copeland score: https://en.wikipedia.org/wiki/Copeland%27s_method

Why not the mean rank over the metrics (a Borda count): it depends on which other configs are on the board. On
the 20,000-row demo data KMeans k=5 and k=10 tied on mean rank among all 396 configs and the tie broke the other
way among the 44 configs early stopping kept, with the same scores. Whether A beats B depends on A and B
alone, so a config that beats every other one wins on any board that holds it: early stopping picks the
exhaustive run's winner whenever that winner exists and is promoted.

:func:`rank_configs` is that ranking; the sweep promotes the top of it from rung to rung, so promotion and
selection agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raysweep.models import MODEL_NAMES

METRICS = {"silhouette": "max", "davies_bouldin": "min", "calinski_harabasz": "max"}

RULE = ("Pairwise majority over silhouette (higher is better), Davies-Bouldin (lower) and Calinski-Harabasz (higher) "
        "among the configs with status ok at the top rung: config A beats config B when A is clearly better on more "
        "of the three metrics than B is, where silhouettes within one combined standard error count as equal; the "
        "winner has the most wins minus losses (Copeland's method), so a config that beats every other one "
        "(a Condorcet winner) wins; remaining ties go to the smaller k, then to the model order kmeans, birch, "
        "agglomerative, gmm.")

REASONING = (
    "The three scores encode different ideas of a good clustering (silhouette: each point closer to its own cluster "
    "than to the next; Davies-Bouldin: the worst overlap of each cluster with another; Calinski-Harabasz: between- "
    "over within-cluster variance, unbounded and strongly dependent on k), so they disagree and no single one is "
    "trusted: each decides one vote in every head-to-head comparison, so CH's magnitude cannot dominate. A "
    "head-to-head result depends only on the two configs compared, so the winner does not change when configs that "
    "lose to it are added or removed: early stopping, which keeps a subset of the configs, picks the same winner as "
    "the exhaustive run whenever that winner beats every other config and is promoted (a mean rank over the metrics "
    "does not have this property). Silhouette differences smaller than their standard error are sampling noise of "
    "the estimator and do not vote. Among equals the smaller k is preferred: simpler, more stable, and easier to "
    "use as recommender segments.")

REQUIRED_COLUMNS = ("model", "k", "silhouette", "davies_bouldin", "calinski_harabasz", "status")
INTEGER_COLUMNS = ("effective_k", "n", "rung", "wins", "losses", "copeland", "rank_silhouette", "rank_davies_bouldin",
                   "rank_calinski_harabasz")


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


def _silhouette_se(good):
    """The rows' silhouette standard errors (missing column or NaN = 0: exact silhouette)."""
    if "silhouette_se" not in good:
        return np.zeros(len(good))
    return good["silhouette_se"].fillna(0.0).to_numpy(dtype=np.float64)


def _pairwise_votes(good):
    """votes[i, j] = metrics on which config i is clearly better than j minus those on which j is better than i."""
    se = _silhouette_se(good)
    votes = np.zeros((len(good), len(good)), dtype=np.int64)
    for metric, better in METRICS.items():
        values = good[metric].to_numpy(dtype=np.float64)
        lead = values[:, None] - values[None, :]  # lead[i, j] = v_i - v_j
        if better == "min":
            lead = -lead
        margin = np.sqrt(se[:, None] ** 2 + se[None, :] ** 2) if metric == "silhouette" else 0.0
        votes += (lead > margin).astype(np.int64) - (lead < -margin)
    return votes


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
        The input rows sorted by position (1 = best) with added columns: ``wins`` and ``losses`` (head-to-head
        majorities over the other ranked configs), ``copeland`` (wins - losses), ``beats_all`` (a Condorcet
        winner), and for information each metric's competition rank ``rank_<metric>`` (1 + the configs clearly
        better on it) and ``position``. Rows whose status is not ``ok`` or with a NaN score come last with NaN
        in the added columns, ordered by k then model.
    """
    _check_leaderboard(df)
    ok = df["status"].eq("ok") & df[list(METRICS)].notna().all(axis=1)
    good = df[ok].copy()
    votes = _pairwise_votes(good)
    good["wins"] = (votes > 0).sum(axis=1)
    good["losses"] = (votes < 0).sum(axis=1)
    good["copeland"] = good["wins"] - good["losses"]
    good["beats_all"] = good["wins"] == len(good) - 1
    se = _silhouette_se(good)
    for metric, better in METRICS.items():
        good[f"rank_{metric}"] = 1 + _clearly_better_counts(good[metric], better,
                                                            se if metric == "silhouette" else None)
    good["_model_order"] = _model_order(good["model"])
    good = good.sort_values(["copeland", "k", "_model_order"], ascending=[False, True, True], kind="stable")
    bad = df[~ok].copy()
    for column in ["wins", "losses", "copeland", "beats_all"] + [f"rank_{m}" for m in METRICS]:
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
            out[c] = int(value) if c in INTEGER_COLUMNS else float(value)
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
        ``model``, ``k``, ``rule``, ``reasoning``, ``scores`` (with ``wins``, ``losses``, ``copeland``),
        ``beats_all`` (True when the winner beats every other candidate head to head: a Condorcet winner, the case
        in which early stopping provably picks what the exhaustive run picks, if it promotes the winner),
        ``per_metric_best`` ({metric: {model, k, value}}),
        ``pareto_front`` (list of {model, k, scores...}), ``n``, ``rung``, ``n_candidates``.
    """
    _check_leaderboard(leaderboard)
    df = leaderboard
    rung = None
    if "rung" in df.columns and len(df):
        rung = int(df["rung"].max())
        df = df[df["rung"] == rung]
    ranking = rank_configs(df)
    candidates = ranking[ranking["copeland"].notna()]
    if candidates.empty:
        where = f" at the top rung ({rung})" if rung is not None else ""
        raise ValueError(f"no config with status ok and finite scores{where}: nothing to select")
    best = candidates.iloc[0]
    score_columns = ["silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz", "effective_k",
                     "wins", "losses", "copeland", "rank_silhouette", "rank_davies_bouldin", "rank_calinski_harabasz"]
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
        "beats_all": bool(best["beats_all"]),
        "pareto_front": [_config(row, ["silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz",
                                       "copeland"]) for _, row in front.iterrows()],
        "n": int(best["n"]) if "n" in best and pd.notna(best["n"]) else None,
        "rung": rung,
        "n_candidates": int(len(candidates)),
    }
