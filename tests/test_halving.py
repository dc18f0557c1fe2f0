"""Successive halving's plan and promotion step: pure functions, no Ray."""

import pandas as pd
import pytest

from raysweep.halving import ETA, Rung, config_grid, plan_rungs, promote, promotion_record
from raysweep.selection import rank_configs


def _board(rows):
    return pd.DataFrame([{"status": "ok", "n": 1000, "rung": 0, **row} for row in rows])


def test_config_grid_is_model_by_model_k_ascending():
    assert config_grid(["kmeans", "gmm"], [2, 3]) == [{"model": "kmeans", "k": 2}, {"model": "kmeans", "k": 3},
                                                     {"model": "gmm", "k": 2}, {"model": "gmm", "k": 3}]


def test_plan_rungs_caps_the_top_rung_at_the_fraction():
    assert plan_rungs(30_000, 0.1, n_configs=24, k_max=8, exhaustive=False, min_rung_size=300) == [333, 1000, 3000]


def test_plan_rungs_exhaustive_is_the_top_rung_alone():
    assert plan_rungs(30_000, 1.0, n_configs=396, k_max=100, exhaustive=True) == [30_000]


def test_plan_rungs_rejects_k_not_below_the_smallest_rung():
    with pytest.raises(ValueError, match="--k-max=100 needs more rows than the smallest sample has: 100 rows"):
        plan_rungs(200, 0.5, n_configs=10, k_max=100, exhaustive=False)


def test_rung_knows_whether_it_is_the_top():
    assert [Rung(index, 100, 3, []).top for index in range(3)] == [False, False, True]


def test_promote_keeps_the_top_third_by_the_winner_rule():
    board = _board([{"model": "kmeans", "k": k, "silhouette": s, "davies_bouldin": d, "calinski_harabasz": c}
                    for k, s, d, c in [(2, 0.5, 0.9, 100), (3, 0.7, 0.5, 300), (4, 0.6, 0.6, 200),
                                       (5, 0.2, 1.5, 50)]])
    expected = rank_configs(board).head(2)
    assert promote(board, ETA) == [{"model": "kmeans", "k": int(k)} for k in expected["k"]] == [
        {"model": "kmeans", "k": 3}, {"model": "kmeans", "k": 4}]


def test_promotion_record_states_eta():
    record = promotion_record(4)
    assert "eta=4" in record["rule"] and "successive halving" in record["rule"]
    assert "reproducible" in record["reasoning"]
