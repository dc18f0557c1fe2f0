"""Winners that are right on data with outliers: the eligibility rule, end to end on real labelled data."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score

from raysweep import models, scores
from raysweep.feature_matrix import write_feature_matrix
from raysweep.selection import select_winner, split_off_reasons
from raysweep.tune import SweepSettings, run_sweep


def _blobs_and_three_far_points():
    """600 rows in 4 blobs and 3 rows 8 SD away, standardized; labels of the blobs (-1 for the far rows)."""
    X, y = make_blobs(n_samples=600, centers=4, n_features=4, cluster_std=1.0, random_state=2)
    far = X.mean(axis=0) + 8 * X.std(axis=0) * np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    X, y = np.vstack([X, far]), np.r_[y, [-1, -1, -1]]
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    return (X - X.mean(axis=0)) / X.std(axis=0), y


@pytest.fixture(scope="module")
def far_points_board():
    X, y = _blobs_and_three_far_points()
    ward = models.ward_tree(X)
    cf_tree = models.birch_cf_tree(X, models.birch_threshold(X, seed=0))
    rows = []
    for k in range(2, 9):
        labelings = {"kmeans": models.kmeans_labels(X, k, seed=0)[0], "birch": models.birch_labels(cf_tree, None, k),
                     "agglomerative": models.ward_labels(ward, k)}
        for model, labels in labelings.items():
            rows.append({"model": model, "k": k, **scores.score_labels(X, labels),
                         "ari": adjusted_rand_score(y[y >= 0], labels[y >= 0])})
    return pd.DataFrame(rows)


def test_without_eligibility_the_rule_picks_an_outlier_split(far_points_board):
    winner = select_winner(far_points_board, min_cluster_size=1, min_relative_size=0.0)
    assert winner["scores"]["min_cluster_size"] <= 3


def test_with_eligibility_the_rule_picks_the_blobs(far_points_board):
    winner = select_winner(far_points_board)
    row = far_points_board.set_index(["model", "k"]).loc[(winner["model"], winner["k"])]
    assert winner["k"] == 4 and row["ari"] > 0.95
    assert winner["eligibility"]["n_excluded"] > 0 and not winner["eligibility"]["winner_excluded"]


def test_a_cluster_of_a_few_rows_is_split_off():
    board = pd.DataFrame({"model": ["birch", "kmeans"], "k": [2, 20], "effective_k": [2, 20],
                          "min_cluster_size": [3, 42], "min_cluster_share": [3 / 468, 42 / 20_000]})
    # 3 of 468 rows is a larger share than 42 of 20,000 (a real group of live recordings): the count decides.
    reasons = split_off_reasons(board)
    assert reasons.iloc[0].startswith("a cluster of 3 rows (< 5)") and reasons.iloc[1] == ""


def test_a_tiny_share_of_an_even_share_is_split_off_at_scale():
    board = pd.DataFrame({"model": ["kmeans"], "k": [2], "effective_k": [2], "min_cluster_size": [20],
                          "min_cluster_share": [20 / 1_000_000]})
    assert "0.0000 of an even share" in split_off_reasons(board).iloc[0]


def test_a_leaderboard_without_cluster_shares_is_all_eligible():
    board = pd.DataFrame({"model": ["kmeans"], "k": [3]})
    assert split_off_reasons(board).tolist() == [""]


def test_min_relative_size_must_be_a_fraction():
    with pytest.raises(ValueError, match="min_relative_size=1.5"):
        split_off_reasons(pd.DataFrame({"model": ["kmeans"], "k": [3]}), min_relative_size=1.5)


def test_when_every_config_splits_points_off_the_winner_says_so():
    board = pd.DataFrame({"model": ["kmeans", "birch"], "k": [2, 2], "silhouette": [0.6, 0.5],
                          "davies_bouldin": [0.4, 0.5], "calinski_harabasz": [50.0, 40.0], "status": "ok",
                          "effective_k": [2, 2], "min_cluster_size": [2, 4], "min_cluster_share": [0.001, 0.002]})
    winner = select_winner(board)
    assert (winner["model"], winner["eligibility"]["winner_excluded"]) == ("kmeans", True)


@pytest.mark.parametrize(("k", "edge"), [(30, "k_max"), (5, "k_min"), (12, None)])
def test_a_winner_at_the_edge_of_the_range_is_flagged(k, edge):
    board = pd.DataFrame({"model": ["kmeans"], "k": [k], "silhouette": [0.3], "davies_bouldin": [1.0],
                          "calinski_harabasz": [100.0], "status": "ok"})
    winner = select_winner(board, k_range=(5, 30))
    assert winner["at_edge"] == edge
    assert (winner["edge_advice"] is None) == (edge is None)


def test_k_min_of_two_is_not_an_edge():
    board = pd.DataFrame({"model": ["kmeans"], "k": [2], "silhouette": [0.3], "davies_bouldin": [1.0],
                          "calinski_harabasz": [100.0], "status": "ok"})
    assert select_winner(board, k_range=(2, 30))["at_edge"] is None


@pytest.mark.slow
def test_digits_end_to_end_picks_a_sound_winner(ray_local, tmp_path):
    # scikit-learn's real handwritten digits: the rule without eligibility (and Birch unweighted) picked clusters of
    # 1,765 / 28 / 2 / 2 rows (ARI 0.001). KMeans at its best-silhouette k scores ARI ~0.54.
    X, y = load_digits(return_X_y=True)
    X = X[:, X.std(axis=0) > 0]
    columns = [f"pixel_{j}" for j in range(X.shape[1])]
    features = tmp_path / "digits.parquet"
    write_feature_matrix(features, np.arange(len(X)), X, columns, {"source": "test", "scaling": {
        "kind": "standard", "mean": X.mean(axis=0).tolist(), "std": X.std(axis=0).tolist()}})
    run_dir = run_sweep(SweepSettings(features, fraction=1.0, models=("kmeans", "birch", "agglomerative"), k_min=2,
                                      k_max=12, exhaustive=True, results=tmp_path / "results", name="digits",
                                      progress=False))
    winner = json.loads((run_dir / "winner.json").read_text())
    assert not winner["eligibility"]["winner_excluded"]
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    winner_row = board[(board["model"] == winner["model"]) & (board["k"] == winner["k"])]
    assert split_off_reasons(winner_row).eq("").all() and winner["scores"]["min_cluster_size"] >= 5
    refit = models.fit_final(winner["model"], winner["k"], (X - X.mean(axis=0)) / X.std(axis=0), seed=0)
    assert adjusted_rand_score(y, refit.labels_) >= 0.4
