"""The distance matrix of a sample and the exact silhouettes read from it."""

import numpy as np
import pytest
from sklearn.datasets import load_wine, make_blobs
from sklearn.metrics import pairwise_distances, silhouette_score
from sklearn.preprocessing import StandardScaler

from raysweep.pairwise import DistanceMatrix, distance_matrix_bytes
from raysweep.scores import score_labels


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=2_500, n_features=5, centers=6, random_state=0)  # more rows than one build block
    return X, y


def test_build_equals_scikit_learn_pairwise_distances(blobs):
    X, _ = blobs
    matrix = DistanceMatrix.build(X)
    np.testing.assert_allclose(matrix.distances, pairwise_distances(X), rtol=1e-6, atol=1e-6)  # stored in float32
    assert matrix.n_samples == X.shape[0] and np.all(np.diag(matrix.distances) == 0.0)


def test_cluster_sums_are_the_summed_distances_to_each_cluster(blobs):
    X, y = blobs
    matrix = DistanceMatrix.build(X)
    distances = matrix.distances.astype(np.float64)
    expected = np.stack([distances[:, y == c].sum(axis=1) for c in range(6)], axis=1)
    np.testing.assert_allclose(matrix.cluster_sums(y, 6), expected, rtol=1e-6)


@pytest.mark.parametrize("labels", ["planted", "random_40", "with_singletons"])
def test_scores_read_from_the_matrix_equal_the_blocked_path(blobs, labels):
    X, y = blobs
    rng = np.random.default_rng(0)
    labels = {"planted": y, "random_40": rng.integers(0, 40, len(y)),
              "with_singletons": np.r_[[100, 205, 7], rng.choice([-3, 11, 42], len(y) - 3)]}[labels]
    read = score_labels(X, labels, distances=DistanceMatrix.build(X))
    blocked = score_labels(X, labels)
    assert read["silhouette"] == pytest.approx(blocked["silhouette"], abs=1e-7)  # float32 distances
    assert read["silhouette_se"] == 0.0 and read["davies_bouldin"] == blocked["davies_bouldin"]


def test_silhouette_from_the_matrix_equals_scikit_learn_on_wine():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    result = score_labels(X, y, distances=DistanceMatrix.build(X))
    assert result["silhouette"] == pytest.approx(silhouette_score(X, y), abs=1e-7)


def test_the_matrix_is_ignored_where_the_silhouette_is_estimated(blobs):
    X, y = blobs
    query = np.arange(500)
    estimated = score_labels(X, y, query_idx=query, exact_max_n=1_000)
    with_matrix = score_labels(X, y, query_idx=query, exact_max_n=1_000, distances=DistanceMatrix.build(X))
    assert with_matrix == estimated and with_matrix["silhouette_se"] > 0


def test_a_matrix_of_other_rows_is_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="distances is the matrix of 100 rows, X has 2500"):
        score_labels(X, y, distances=DistanceMatrix.build(X[:100]))


def test_codes_of_another_length_are_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"one label per row of the distance matrix \(100\)"):
        DistanceMatrix.build(X[:100]).cluster_sums(y, 6)


@pytest.mark.parametrize("array, message", [(np.zeros((3, 4), dtype=np.float32), r"shape \(3, 4\)"),
                                            (np.zeros((3, 3)), "dtype float64")])
def test_a_matrix_that_is_not_square_float32_is_refused(array, message):
    with pytest.raises(ValueError, match=message):
        DistanceMatrix(array)


def test_distance_matrix_bytes_is_n_squared_float32():
    assert distance_matrix_bytes(20_000) == 1_600_000_000
