import json

import numpy as np
import pandas as pd
import pytest

from raysweep.selection import RULE, pareto_front, rank_configs, select_winner

NAN = float("nan")


def _board(rows, rung=2, n=10_000):
    df = pd.DataFrame(rows, columns=["model", "k", "silhouette", "silhouette_se", "davies_bouldin",
                                     "calinski_harabasz"])
    df["status"] = "ok"
    df["rung"] = rung
    df["n"] = n
    df["effective_k"] = df["k"]
    return df


@pytest.fixture
def disagreeing():
    # Each metric has a different best: silhouette -> gmm 4, DB -> birch 8, CH -> kmeans 6.
    # Mean ranks: kmeans 6 (2+2+1)/3 = 1.67, gmm 4 (1+3+3) = 2.33, birch 8 (3+1+2) = 2, agglomerative 3 = 4.
    return _board([
        ("kmeans", 6, 0.50, 0.0, 0.80, 900.0),
        ("gmm", 4, 0.60, 0.0, 0.90, 500.0),
        ("birch", 8, 0.45, 0.0, 0.70, 800.0),
        ("agglomerative", 3, 0.30, 0.0, 1.50, 100.0),
    ])


def test_winner_is_the_lowest_mean_rank_when_metrics_disagree(disagreeing):
    winner = select_winner(disagreeing)
    assert (winner["model"], winner["k"]) == ("kmeans", 6)
    assert winner["scores"]["mean_rank"] == pytest.approx(5 / 3)
    assert winner["rule"] == RULE and winner["reasoning"]


def test_per_metric_best_and_pareto_front(disagreeing):
    winner = select_winner(disagreeing)
    assert winner["per_metric_best"]["silhouette"] == {"model": "gmm", "k": 4, "value": 0.60}
    assert winner["per_metric_best"]["davies_bouldin"] == {"model": "birch", "k": 8, "value": 0.70}
    assert winner["per_metric_best"]["calinski_harabasz"] == {"model": "kmeans", "k": 6, "value": 900.0}
    front = {(c["model"], c["k"]) for c in winner["pareto_front"]}
    assert front == {("kmeans", 6), ("gmm", 4), ("birch", 8)}


def test_equal_mean_rank_goes_to_the_smaller_k():
    # A Latin square of ranks (sil, DB, CH): k9 (1, 2, 3), k5 (2, 3, 1), k7 (3, 1, 2); every mean rank is 2.
    board = _board([
        ("kmeans", 9, 0.60, 0.0, 0.70, 500.0),
        ("kmeans", 5, 0.55, 0.0, 0.80, 900.0),
        ("kmeans", 7, 0.50, 0.0, 0.60, 800.0),
    ])
    ranking = rank_configs(board)
    assert ranking["mean_rank"].nunique() == 1
    assert select_winner(board)["k"] == 5


def test_equal_rank_and_k_goes_to_model_order():
    board = _board([("gmm", 5, 0.5, 0.0, 0.8, 900.0), ("birch", 5, 0.5, 0.0, 0.8, 900.0)])
    assert select_winner(board)["model"] == "birch"


def test_silhouettes_within_one_standard_error_tie():
    # kmeans 3 is better on silhouette by 0.005 < combined SE (0.014), so both get silhouette rank 1,
    # then both are equal on DB and CH, and the smaller k wins.
    board = _board([
        ("kmeans", 5, 0.500, 0.01, 0.8, 900.0),
        ("kmeans", 3, 0.505, 0.01, 0.8, 900.0),
        ("kmeans", 4, 0.400, 0.01, 0.8, 900.0),
    ])
    ranking = rank_configs(board).set_index("k")
    assert ranking.loc[5, "rank_silhouette"] == ranking.loc[3, "rank_silhouette"] == 1
    assert ranking.loc[4, "rank_silhouette"] == 3
    assert select_winner(board)["k"] == 3


def test_without_standard_error_the_better_silhouette_wins():
    board = _board([("kmeans", 3, 0.500, 0.0, 0.8, 900.0), ("kmeans", 5, 0.505, 0.0, 0.8, 900.0)])
    assert select_winner(board)["k"] == 5


def test_only_the_top_rung_and_ok_rows_compete(disagreeing):
    lower = _board([("agglomerative", 2, 0.99, 0.0, 0.01, 1e6)], rung=1)
    failed = _board([("gmm", 2, 0.99, 0.0, 0.01, 1e6)])
    failed["status"] = "degenerate: 1 distinct cluster(s), scores need at least 2"
    winner = select_winner(pd.concat([disagreeing, lower, failed], ignore_index=True))
    assert (winner["model"], winner["k"], winner["rung"], winner["n_candidates"]) == ("kmeans", 6, 2, 4)


def test_rank_configs_puts_failed_rows_last_without_rank(disagreeing):
    failed = _board([("gmm", 2, NAN, NAN, NAN, NAN)])
    failed["status"] = "degenerate: 1 distinct cluster(s), scores need at least 2"
    ranking = rank_configs(pd.concat([failed, disagreeing], ignore_index=True))
    assert list(ranking["position"]) == [1, 2, 3, 4, 5]
    assert ranking.iloc[-1]["model"] == "gmm" and np.isnan(ranking.iloc[-1]["mean_rank"])
    assert list(ranking["k"][:4]) == [6, 8, 4, 3]


def test_pareto_front_drops_dominated_configs():
    board = _board([
        ("kmeans", 2, 0.5, 0.0, 0.8, 900.0),
        ("kmeans", 3, 0.4, 0.0, 0.9, 800.0),  # dominated by k=2 on all three
        ("kmeans", 4, 0.6, 0.0, 1.0, 100.0),
    ])
    assert list(pareto_front(board)["k"]) == [2, 4]


def test_winner_is_json_serialisable(disagreeing):
    winner = select_winner(disagreeing)
    assert json.loads(json.dumps(winner))["k"] == 6
    assert winner["n"] == 10_000


def test_no_ok_config_is_a_clear_error(disagreeing):
    disagreeing["status"] = "degenerate: 1 distinct cluster(s), scores need at least 2"
    with pytest.raises(ValueError, match="no config with status ok .* at the top rung"):
        select_winner(disagreeing)


def test_missing_column_is_a_clear_error(disagreeing):
    with pytest.raises(ValueError, match="missing column.*davies_bouldin"):
        rank_configs(disagreeing.drop(columns="davies_bouldin"))
