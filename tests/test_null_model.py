"""The Gaussian null the winner rule compares scores with (raysweep.null_model, selection.compared_scores)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from raysweep import scores
from raysweep.null_model import gaussian_null_sample, null_scores
from raysweep.selection import rank_configs, select_winner


def test_null_sample_has_the_data_mean_and_covariance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5_000, 3)) @ np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 0.2]]) + 3.0
    sample = gaussian_null_sample(X, 20_000, seed=1)
    assert sample.shape == (20_000, 3)
    np.testing.assert_allclose(sample.mean(axis=0), X.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(sample, rowvar=False), np.cov(X, rowvar=False), atol=0.1)


def test_null_silhouette_favours_a_small_k_on_an_elongated_blob():
    # One elongated Gaussian has no clusters, yet k = 2 cuts it along its long axis with a high silhouette: the
    # credit a small k gets for nothing, which the null takes away.
    X = np.random.default_rng(0).normal(size=(2_000, 5)) * np.array([3.0, 1.5, 1.0, 0.5, 0.3])
    null = null_scores(X, [2, 10], n_rows=1_000)
    assert null.loc[2, "silhouette"] > null.loc[10, "silhouette"] + 0.1
    assert (null["n"] == 1_000).all()


def test_null_scores_refuse_k_beyond_the_sample():
    with pytest.raises(ValueError, match=r"within \[2, 49\] for a null sample of 50 rows"):
        null_scores(np.random.default_rng(0).normal(size=(50, 2)), [2, 60])


def _two_groups_of_four_blobs():
    """Eight overlapping blobs in two far groups: the top-level split scores best without a null."""
    rng = np.random.default_rng(0)
    tops = np.zeros((2, 6))
    tops[:, 0] = [-6.0, 6.0]
    centres = np.vstack([top + rng.normal(0.0, 1.2, size=(4, 6)) for top in tops])
    X = np.vstack([centre + rng.normal(0.0, 1.0, size=(200, 6)) for centre in centres])
    return (X - X.mean(axis=0)) / X.std(axis=0), np.repeat(np.arange(8), 200)


def _kmeans_board(X, k_values):
    labels = {k: KMeans(k, n_init=4, random_state=0).fit_predict(X) for k in k_values}
    board = pd.DataFrame([{"model": "kmeans", "k": k, "n": len(X), **scores.score_labels(X, labels[k])}
                          for k in k_values])
    return board, labels


def test_the_null_turns_a_top_level_split_into_the_finer_clustering():
    X, blobs = _two_groups_of_four_blobs()
    board, labels = _kmeans_board(X, range(2, 13))
    plain = select_winner(board)
    above_null = select_winner(board, null=null_scores(X, range(2, 13)))
    assert plain["k"] == 2
    assert 6 <= above_null["k"] <= 9
    plain_ari = adjusted_rand_score(blobs, labels[plain["k"]])
    assert adjusted_rand_score(blobs, labels[above_null["k"]]) > 2 * plain_ari
    assert "compared above its null" in above_null["rule"] and "above its null" not in plain["rule"]


def test_ranking_reports_the_compared_values():
    X, _ = _two_groups_of_four_blobs()
    board, _ = _kmeans_board(X, [2, 4, 8])
    null = null_scores(X, [2, 4, 8])
    ranking = rank_configs(board, null=null).set_index("k")
    expected = board.set_index("k")["silhouette"] - null["silhouette"]
    np.testing.assert_allclose(ranking.loc[[2, 4, 8], "silhouette_over_null"], expected.loc[[2, 4, 8]])
