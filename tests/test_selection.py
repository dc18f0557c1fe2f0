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
    # Head to head: kmeans 6 beats gmm 4 (DB, CH), birch 8 (silhouette, CH) and agglomerative 3 (all three);
    # birch 8 beats gmm 4 (DB, CH); copeland: kmeans 6 = 3, birch 8 = 1, gmm 4 = -1, agglomerative 3 = -3.
    return _board([
        ("kmeans", 6, 0.50, 0.0, 0.80, 900.0),
        ("gmm", 4, 0.60, 0.0, 0.90, 500.0),
        ("birch", 8, 0.45, 0.0, 0.70, 800.0),
        ("agglomerative", 3, 0.30, 0.0, 1.50, 100.0),
    ])


def test_winner_beats_every_other_config_on_a_majority_of_metrics(disagreeing):
    winner = select_winner(disagreeing)
    assert (winner["model"], winner["k"]) == ("kmeans", 6)
    assert (winner["scores"]["wins"], winner["scores"]["losses"], winner["scores"]["copeland"]) == (3, 0, 3)
    assert winner["beats_all"] is True
    assert winner["rule"] == RULE and winner["reasoning"]


def test_winner_does_not_depend_on_configs_that_lose_to_it():
    # On random boards, wherever one config beats all others, every sub-board holding it picks it too: what
    # lets early stopping (a sub-board) agree with the exhaustive run. A mean rank over the metrics fails this.
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        board = _board([("kmeans", k, *rng.normal(size=4)) for k in range(2, 14)])
        board["silhouette_se"] = 0.0
        winner = select_winner(board)
        if not winner["beats_all"]:
            continue
        for _ in range(5):
            keep = board[(board["k"] == winner["k"]) | (rng.random(len(board)) < 0.3)]
            assert select_winner(keep)["k"] == winner["k"]
            checked += 1
    assert checked >= 100


def test_a_cycle_goes_to_the_most_wins_minus_losses():
    # kmeans 2 beats each of 5, 6, 7 on silhouette and DB; 5 beats 6 (sil, DB), 6 beats 7 (sil, CH) and 7 beats
    # 5 (DB, CH): a cycle, so each of them has 1 win and 2 losses, and the smaller k goes first.
    board = _board([
        ("kmeans", 2, 0.90, 0.0, 0.10, 100.0),
        ("kmeans", 5, 0.60, 0.0, 0.70, 500.0),
        ("kmeans", 6, 0.55, 0.0, 0.80, 900.0),
        ("kmeans", 7, 0.50, 0.0, 0.60, 800.0),
    ])
    ranking = rank_configs(board).set_index("k")
    assert ranking.loc[2, "beats_all"] and ranking.loc[2, "copeland"] == 3
    assert list(ranking.loc[[5, 6, 7], "copeland"]) == [-1, -1, -1]
    assert list(rank_configs(board)["k"]) == [2, 5, 6, 7]


def test_per_metric_best_and_pareto_front(disagreeing):
    winner = select_winner(disagreeing)
    assert winner["per_metric_best"]["silhouette"] == {"model": "gmm", "k": 4, "value": 0.60}
    assert winner["per_metric_best"]["davies_bouldin"] == {"model": "birch", "k": 8, "value": 0.70}
    assert winner["per_metric_best"]["calinski_harabasz"] == {"model": "kmeans", "k": 6, "value": 900.0}
    front = {(c["model"], c["k"]) for c in winner["pareto_front"]}
    assert front == {("kmeans", 6), ("gmm", 4), ("birch", 8)}


def test_a_tie_in_wins_minus_losses_goes_to_the_smaller_k():
    # A Latin square of ranks (sil, DB, CH): k9 (1, 2, 3), k5 (2, 3, 1), k7 (3, 1, 2): a cycle (9 beats 5,
    # 5 beats 7, 7 beats 9), every copeland score is 0 and nobody beats all.
    board = _board([
        ("kmeans", 9, 0.60, 0.0, 0.70, 500.0),
        ("kmeans", 5, 0.55, 0.0, 0.80, 900.0),
        ("kmeans", 7, 0.50, 0.0, 0.60, 800.0),
    ])
    ranking = rank_configs(board)
    assert list(ranking["copeland"]) == [0, 0, 0] and not ranking["beats_all"].any()
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
    assert ranking.iloc[-1]["model"] == "gmm" and np.isnan(ranking.iloc[-1]["copeland"])
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
