"""Pick one winner from three scores that may disagree, and rank configs the same way for promotion.

The rule (``RULE``) is a pairwise majority vote of the three metrics: config A beats config B when A is clearly
better than B on more of the metrics than B is than A (silhouette higher, Davies-Bouldin lower, Calinski-Harabasz
higher). On silhouette "clearly better" means better by more than the combined standard error
``sqrt(se_i^2 + se_j^2)``, so configs within one SE of each other are equal on it (with exact silhouette, SE = 0).
Configs are ranked by wins minus losses (Copeland's method); a config that beats every other one (a Condorcet
winner) is therefore first. Remaining ties go to the smaller k, then to the model order of
``raysweep.families.REGISTRY`` (its registration order).
Condorcet winner and Copeland score: https://en.wikipedia.org/wiki/Copeland%27s_method

Eligibility comes first (:func:`split_off_reasons`): a clustering with a cluster of fewer than
``MIN_CLUSTER_SIZE`` (5) rows, or of fewer than ``MIN_RELATIVE_SIZE`` (1%) of an even share ``n / k`` of the rows,
has split a few points off, and is ranked below every clustering that has not, whatever its scores. Silhouette
and Davies-Bouldin both reward cutting a few far-away points into their own cluster (on scikit-learn's digits the
unguarded rule chose clusters of 1,765 / 28 / 2 / 2 rows; on 468 real playlists 465 / 3), and with the pairwise
majority they outvote Calinski-Harabasz. The absolute floor is HDBSCAN's minimum cluster size (its default, 5;
Campello, Moulavi and Sander 2013): a group that small is noise, not a cluster. The relative floor catches the
same split at scale (20 playlists cut off 1M at k = 2). A small cluster that is a real group (the 0.2% of
generated playlists that are live recordings) is not excluded. Eligibility is a property of one config, so the
Condorcet argument holds among the eligible configs.

Silhouette is compared above its null (:mod:`raysweep.null_model`) when the sweep gives one: each config's
silhouette minus what k-means scores at the same k on one Gaussian with the data's mean and covariance. Silhouette
favours a small k even on data without clusters (an elongated blob cut in two scores high), so without the null a
strong top-level split (k = 2: two groups of taste profiles) outvotes the clustering of the profiles themselves (on
the generated playlists of seed 1: ARI 0.06 against the profiles, where KMeans at k = 17-18 reaches 0.74).
Davies-Bouldin and Calinski-Harabasz stay as they are: above the same null they reward a large k for skewed,
non-Gaussian shapes (:func:`compared_scores`). The null depends only on k, so comparisons at equal k, and the
Condorcet argument, are unchanged.

Over 400 lines because it is one rule: eligibility, the pairwise vote, the ranking, the Pareto front and the
winner's record apply the same metrics, floors and null comparison, and about 60 of its lines are that rule's own
words (this docstring, ``RULE``, ``REASONING``), kept beside the code they describe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raysweep.families import REGISTRY

METRICS = {"silhouette": "max", "davies_bouldin": "min", "calinski_harabasz": "max"}

# A cluster must hold at least MIN_CLUSTER_SIZE rows and MIN_RELATIVE_SIZE of an even share n / k. Measured on
# scikit-learn's four labelled sets and the generated playlists (benchmarks/bench_validity.py): the split-offs of
# real data are 2-3 rows; the generated outlier groups (live, spoken, sounds) are real clusters of 0.1-0.25% of
# the playlists, 1.5-2.6% of an even share at k = 7-25. A relative floor of 10% of an even share excluded those and
# the winner fell to k = 2; shares alone cannot separate them (3 rows of 468 is a larger share than 21 of 20,000).
MIN_CLUSTER_SIZE = 5
MIN_RELATIVE_SIZE = 0.01

_RULE_TEMPLATE = (
    "Eligible first: a config with a cluster of fewer than {min_cluster_size} rows or of fewer than "
    "{min_relative_size:g} x n / k rows has split a few points off and ranks below every config that has not. Then "
    "a pairwise majority over silhouette (higher is better), Davies-Bouldin (lower) and Calinski-Harabasz (higher) "
    "among the configs with status ok at the top rung: config A beats config B when A is clearly better on more of "
    "the three metrics than B is, where silhouettes within one combined standard error count as equal; the winner "
    "has the most wins minus losses (Copeland's method), so a config that beats every other one (a Condorcet "
    "winner) wins; remaining ties go to the smaller k, then to the model order {model_order}.")


_NULL_SENTENCE = (
    " Silhouette is compared above its null: minus the silhouette of k-means at the same k on one Gaussian with "
    "the data's mean and covariance, so that a small k gets no credit for what data without clusters would also "
    "score.")


def rule_text(min_cluster_size=MIN_CLUSTER_SIZE, min_relative_size=MIN_RELATIVE_SIZE, null=False):
    """The winner rule in one paragraph, for given eligibility floors, with or without the null comparison."""
    text = _RULE_TEMPLATE.format(min_cluster_size=min_cluster_size, min_relative_size=min_relative_size,
                                 model_order=", ".join(REGISTRY))
    return text + _NULL_SENTENCE if null else text


RULE = rule_text()

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
                   "rank_calinski_harabasz", "min_cluster_size")


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
    order = {name: i for i, name in enumerate(REGISTRY)}
    return models.map(lambda m: order.get(m, len(order)))


def _silhouette_se(good):
    """The rows' silhouette standard errors (missing column or NaN = 0: exact silhouette)."""
    if "silhouette_se" not in good:
        return np.zeros(len(good))
    return good["silhouette_se"].fillna(0.0).to_numpy(dtype=np.float64)


def _null_at(null, metric, k):
    """The null's ``metric`` at each k (linear between the k it was computed at)."""
    return np.interp(np.asarray(k, dtype=np.float64), null.index.to_numpy(dtype=np.float64),
                     null[metric].to_numpy(dtype=np.float64))


def compared_scores(df, null=None):
    """The values the rule compares: the three scores, with silhouette above its null when one is given.

    Parameters
    ----------
    df : pandas.DataFrame
        Leaderboard rows with the three metrics, ``k`` and optionally ``effective_k``.
    null : pandas.DataFrame, default=None
        :func:`raysweep.null_model.null_scores`: the scores per k of data without clusters.

    Returns
    -------
    compared : pandas.DataFrame
        Aligned with ``df``, one column per metric of ``METRICS`` (same orientation). With a null, silhouette
        minus the null's silhouette at the config's number of clusters; Davies-Bouldin and Calinski-Harabasz as
        they are (measured above a Gaussian null they reward a large k for skewed, non-Gaussian shapes: on
        scikit-learn's breast cancer set CH's log ratio to the null rose from 0.13 at k = 2 to 0.28 at k = 20, and
        the winner moved from k = 2, ARI 0.67, to k = 9, ARI 0.21).
    """
    values = df[list(METRICS)].astype(np.float64)
    if null is None:
        return values
    clusters = (df["effective_k"].where(df["effective_k"] > 0, df["k"]) if "effective_k" in df.columns
                else df["k"]).to_numpy(dtype=np.float64)
    return values.assign(silhouette=values["silhouette"] - _null_at(null, "silhouette", clusters))


def _pairwise_votes(good, compared):
    """votes[i, j] = metrics on which config i is clearly better than j minus those on which j is better than i."""
    se = _silhouette_se(good)
    votes = np.zeros((len(good), len(good)), dtype=np.int64)
    for metric, better in METRICS.items():
        values = compared[metric].to_numpy(dtype=np.float64)
        lead = values[:, None] - values[None, :]  # lead[i, j] = v_i - v_j
        if better == "min":
            lead = -lead
        margin = np.sqrt(se[:, None] ** 2 + se[None, :] ** 2) if metric == "silhouette" else 0.0
        votes += (lead > margin).astype(np.int64) - (lead < -margin)
    return votes


def split_off_reasons(df, min_cluster_size=MIN_CLUSTER_SIZE, min_relative_size=MIN_RELATIVE_SIZE):
    """Why each config is not eligible ("" when it is): its smallest cluster is below a floor.

    Parameters
    ----------
    df : pandas.DataFrame
        Leaderboard rows with ``min_cluster_size`` (rows of the smallest cluster), ``min_cluster_share`` (that
        over the rung's rows) and ``effective_k`` (or ``k``). Rows without them (NaN, or leaderboards written
        before they were recorded) are eligible.
    min_cluster_size : int, default=MIN_CLUSTER_SIZE
    min_relative_size : float, default=MIN_RELATIVE_SIZE
        Fraction of an even share ``n / k``.

    Returns
    -------
    reasons : pandas.Series of str, aligned with ``df``
    """
    if not 0.0 <= min_relative_size < 1.0:
        raise ValueError(f"min_relative_size={min_relative_size}: must be within [0, 1)")
    if min_cluster_size < 1:
        raise ValueError(f"min_cluster_size={min_cluster_size}: must be >= 1")
    reasons = pd.Series("", index=df.index, dtype=object)
    if df.empty:
        return reasons
    nan = pd.Series(np.nan, index=df.index)
    size = pd.to_numeric(df.get("min_cluster_size", nan), errors="coerce")
    share = pd.to_numeric(df.get("min_cluster_share", nan), errors="coerce")
    clusters = pd.to_numeric(df["effective_k"] if "effective_k" in df.columns else df["k"], errors="coerce")
    relative = share * clusters.fillna(df["k"]).astype(float)
    too_few = size < min_cluster_size
    too_small = relative < min_relative_size
    reasons[too_few] = [f"a cluster of {int(s)} rows (< {min_cluster_size}): a few points split off"
                        for s in size[too_few]]
    only_small = too_small & ~too_few
    reasons[only_small] = [f"smallest cluster holds {r:.4f} of an even share n/k (< {min_relative_size:g}): a few "
                           "points split off" for r in relative[only_small]]
    return reasons


def _rank_group(group, null):
    """Copeland ranking of one group of comparable configs (all ok), best first."""
    compared = compared_scores(group, null)
    if null is not None:
        group["silhouette_over_null"] = compared["silhouette"]
    votes = _pairwise_votes(group, compared)
    group["wins"] = (votes > 0).sum(axis=1)
    group["losses"] = (votes < 0).sum(axis=1)
    group["copeland"] = group["wins"] - group["losses"]
    group["beats_all"] = group["wins"] == len(group) - 1
    se = _silhouette_se(group)
    for metric, better in METRICS.items():
        group[f"rank_{metric}"] = 1 + _clearly_better_counts(compared[metric], better,
                                                             se if metric == "silhouette" else None)
    group["_model_order"] = _model_order(group["model"])
    return group.sort_values(["copeland", "k", "_model_order"], ascending=[False, True, True], kind="stable")


def rank_configs(df, min_cluster_size=MIN_CLUSTER_SIZE, min_relative_size=MIN_RELATIVE_SIZE, null=None):
    """Rank configs by the winner rule (``RULE``): best first.

    Parameters
    ----------
    df : pandas.DataFrame
        Leaderboard rows of ONE rung (one row per config): ``model``, ``k``, ``silhouette``, ``davies_bouldin``,
        ``calinski_harabasz``, ``status`` and optionally ``silhouette_se`` (missing or NaN = 0),
        ``min_cluster_size``, ``min_cluster_share`` and ``effective_k`` (for eligibility,
        :func:`split_off_reasons`).
    min_cluster_size : int, default=MIN_CLUSTER_SIZE
    min_relative_size : float, default=MIN_RELATIVE_SIZE
    null : pandas.DataFrame, default=None
        The scores of data without clusters per k (:func:`raysweep.null_model.null_scores`); given, the rule
        compares silhouette above its null (:func:`compared_scores`) and the ranking has the compared value as
        ``silhouette_over_null``.

    Returns
    -------
    ranking : pandas.DataFrame
        The input rows sorted by position (1 = best) with added columns: ``eligible`` and ``excluded`` (the
        reason, "" when eligible), ``wins`` and ``losses`` (head-to-head majorities over the other configs of
        its group: the eligible ones, or the excluded ones), ``copeland`` (wins - losses), ``beats_all`` (a
        Condorcet winner of its group), and for information each metric's competition rank ``rank_<metric>``
        (1 + the configs of its group clearly better on it) and ``position``. Eligible configs come first, then
        the excluded ones; rows whose status is not ``ok`` or with a NaN score come last with NaN in the added
        columns, ordered by k then model.
    """
    _check_leaderboard(df)
    ok = df["status"].eq("ok") & df[list(METRICS)].notna().all(axis=1)
    good = df[ok].copy()
    good["excluded"] = split_off_reasons(good, min_cluster_size, min_relative_size)
    good["eligible"] = good["excluded"].eq("")
    groups = [_rank_group(good[good["eligible"]].copy(), null), _rank_group(good[~good["eligible"]].copy(), null)]
    bad = df[~ok].copy()
    for column in ["wins", "losses", "copeland", "beats_all", "eligible"] + [f"rank_{m}" for m in METRICS]:
        bad[column] = np.nan
    bad["excluded"] = ""
    bad["_model_order"] = _model_order(bad["model"])
    bad = bad.sort_values(["k", "_model_order"], kind="stable")
    ranking = pd.concat([group for group in [*groups, bad] if len(group)] or [bad])
    ranking = ranking.drop(columns="_model_order")
    ranking["position"] = np.arange(1, len(ranking) + 1)
    return ranking.reset_index(drop=True)


def pareto_front(df, null=None):
    """Configs not dominated on the three metrics (silhouette max, Davies-Bouldin min, Calinski-Harabasz max).

    Parameters
    ----------
    df : pandas.DataFrame
        Leaderboard rows; rows whose status is not ``ok`` or with NaN scores are ignored.
    null : pandas.DataFrame, default=None
        Given, dominance is judged on the scores above their null (:func:`compared_scores`), as the rule does.

    Returns
    -------
    front : pandas.DataFrame
        The non-dominated rows, sorted by model order then k.
    """
    _check_leaderboard(df)
    good = df[df["status"].eq("ok") & df[list(METRICS)].notna().all(axis=1)]
    # Orient every metric as "higher is better".
    compared = compared_scores(good, null)
    values = np.column_stack([compared[m].to_numpy(np.float64) * (1 if b == "max" else -1)
                              for m, b in METRICS.items()])
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


def range_edge(k, k_range):
    """Which edge of the searched k range a winner's k sits on, and what to do about it.

    Parameters
    ----------
    k : int
    k_range : tuple of (int, int) or None
        The searched ``(k_min, k_max)``; None means unknown (nothing is flagged).

    Returns
    -------
    edge : {"k_max", "k_min"} or None
        ``k_min`` only when ``k_min > 2``: k = 2 is the smallest clustering there is.
    advice : str or None
    """
    if k_range is None:
        return None, None
    k_min, k_max = (int(v) for v in k_range)
    if k == k_max and k_max > k_min:
        return "k_max", (f"the winner has k={k}, the largest k searched: the scores were still improving at the edge "
                         f"of the range; widen it (--k-max above {k_max})")
    if k == k_min and k_min > 2:
        return "k_min", (f"the winner has k={k}, the smallest k searched: widen the range (--k-min below {k_min})")
    return None, None


def select_winner(leaderboard, k_range=None, min_cluster_size=MIN_CLUSTER_SIZE,
                  min_relative_size=MIN_RELATIVE_SIZE, null=None):
    """The winner of a sweep by ``RULE``, with each metric's own best and the Pareto front.

    Parameters
    ----------
    leaderboard : pandas.DataFrame
        One row per (config, rung): ``model``, ``k``, ``silhouette``, ``davies_bouldin``,
        ``calinski_harabasz``, ``status``, and optionally ``rung`` (the top one is used), ``n``,
        ``silhouette_se``, ``effective_k``, ``min_cluster_share``.
    k_range : tuple of (int, int), default=None
        The searched ``(k_min, k_max)``, to flag a winner at its edge (:func:`range_edge`).
    min_cluster_size : int, default=MIN_CLUSTER_SIZE
    min_relative_size : float, default=MIN_RELATIVE_SIZE
    null : pandas.DataFrame, default=None
        Scores of data without clusters per k (:func:`raysweep.null_model.null_scores`): compare above it.

    Returns
    -------
    winner : dict
        ``model``, ``k``, ``rule``, ``reasoning``, ``scores`` (with ``wins``, ``losses``, ``copeland``,
        ``min_cluster_share``), ``beats_all`` (True when the winner beats every other eligible candidate head to
        head: a Condorcet winner, the case in which early stopping provably picks what the exhaustive run picks,
        if it promotes the winner), ``eligibility`` ({``min_cluster_size`` and ``min_relative_size`` (the two
        floors), ``n_excluded``, ``excluded``: the excluded configs with their reasons, ``winner_excluded``: True
        only when no config was eligible}),
        ``at_edge`` and ``edge_advice`` (:func:`range_edge`), ``per_metric_best`` ({metric: {model, k, value}},
        among the eligible configs), ``pareto_front`` (list of {model, k, scores...}, eligible configs),
        ``n``, ``rung``, ``n_candidates``.
    """
    _check_leaderboard(leaderboard)
    df = leaderboard
    rung = None
    if "rung" in df.columns and len(df):
        rung = int(df["rung"].max())
        df = df[df["rung"] == rung]
    ranking = rank_configs(df, min_cluster_size, min_relative_size, null)
    scored = ranking[ranking["copeland"].notna()]
    if scored.empty:
        where = f" at the top rung ({rung})" if rung is not None else ""
        raise ValueError(f"no config with status ok and finite scores{where}: nothing to select")
    eligible = scored["eligible"].astype(bool)
    # With no eligible config the best excluded one is still reported, and flagged, rather than nothing.
    candidates = scored[eligible] if eligible.any() else scored
    excluded = scored[~eligible]
    best = candidates.iloc[0]
    edge, advice = range_edge(int(best["k"]), k_range)
    score_columns = ["silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz", "effective_k",
                     "min_cluster_size", "min_cluster_share", "max_cluster_share",
                     "wins", "losses", "copeland", "rank_silhouette", "rank_davies_bouldin", "rank_calinski_harabasz",
                     "silhouette_over_null"]
    per_metric_best = {}
    for metric, better in METRICS.items():
        row = candidates.loc[candidates[metric].idxmax() if better == "max" else candidates[metric].idxmin()]
        per_metric_best[metric] = {"model": str(row["model"]), "k": int(row["k"]), "value": float(row[metric])}
    front = pareto_front(candidates, null)
    return {
        "model": str(best["model"]),
        "k": int(best["k"]),
        "rule": rule_text(min_cluster_size, min_relative_size, null is not None),
        "reasoning": REASONING,
        "scores": {key: value for key, value in _config(best, score_columns).items() if key not in ("model", "k")},
        "per_metric_best": per_metric_best,
        "beats_all": bool(best["beats_all"]),
        "eligibility": {
            "min_cluster_size": int(min_cluster_size),
            "min_relative_size": float(min_relative_size),
            "n_excluded": int(len(excluded)),
            "winner_excluded": not bool(eligible.any()),
            "excluded": [{**_config(row, ["effective_k", "min_cluster_size", "min_cluster_share"]),
                          "reason": str(row["excluded"])} for _, row in excluded.iterrows()],
        },
        "at_edge": edge,
        "edge_advice": advice,
        "pareto_front": [_config(row, ["silhouette", "silhouette_se", "davies_bouldin", "calinski_harabasz",
                                       "copeland"]) for _, row in front.iterrows()],
        "n": int(best["n"]) if "n" in best and pd.notna(best["n"]) else None,
        "rung": rung,
        "n_candidates": int(len(candidates)),
    }
