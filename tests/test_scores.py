import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)

from raysweep.scores import (
    calinski_harabasz,
    davies_bouldin,
    exact_silhouette_limit,
    score_labels,
    silhouette_exact,
    silhouette_query_estimate,
    silhouette_query_points,
    silhouette_samples_exact,
)

RTOL = 1e-9


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=1_200, n_features=6, centers=5, random_state=0)
    return X, y


def _labelings(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "random_3": rng.integers(0, 3, n),
        "random_40": rng.integers(0, 40, n),
        # Non-contiguous label values and singletons (sklearn: s = 0 for a singleton).
        "sparse_values_with_singletons": np.r_[[100, 205, 7], rng.choice([-3, 11, 42], n - 3)],
    }


@pytest.mark.parametrize("name", ["random_3", "random_40", "sparse_values_with_singletons"])
def test_scores_equal_sklearn_on_random_labelings(blobs, name):
    X, _ = blobs
    labels = _labelings(X.shape[0])[name]
    np.testing.assert_allclose(silhouette_exact(X, labels), silhouette_score(X, labels), rtol=RTOL)
    np.testing.assert_allclose(davies_bouldin(X, labels), davies_bouldin_score(X, labels), rtol=RTOL)
    np.testing.assert_allclose(calinski_harabasz(X, labels), calinski_harabasz_score(X, labels), rtol=RTOL)


def test_scores_equal_sklearn_on_blobs(blobs):
    X, y = blobs
    np.testing.assert_allclose(silhouette_exact(X, y), silhouette_score(X, y), rtol=RTOL)
    np.testing.assert_allclose(davies_bouldin(X, y), davies_bouldin_score(X, y), rtol=RTOL)
    np.testing.assert_allclose(calinski_harabasz(X, y), calinski_harabasz_score(X, y), rtol=RTOL)


@pytest.mark.parametrize("chunk_rows", [3, 7, 100, 5_000])
def test_silhouette_exact_independent_of_block_size(blobs, chunk_rows):
    X, y = blobs
    X, y = X[:200], y[:200]
    np.testing.assert_allclose(silhouette_exact(X, y, chunk_rows=chunk_rows), silhouette_score(X, y), rtol=RTOL)


def test_silhouette_samples_of_some_rows_equal_sklearn(blobs):
    X, _ = blobs
    labels = _labelings(X.shape[0])["random_40"]
    rows = np.array([0, 5, 17, 999, 1_199])
    np.testing.assert_allclose(silhouette_samples_exact(X, labels, rows=rows, chunk_rows=2),
                               silhouette_samples(X, labels)[rows], rtol=RTOL, atol=1e-12)


def test_duplicate_points_give_sklearn_silhouette():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0], [5.0, 6.0]])
    labels = np.array([0, 0, 1, 1, 1])
    np.testing.assert_allclose(silhouette_exact(X, labels), silhouette_score(X, labels), rtol=RTOL)


def test_float32_input_is_accumulated_in_float64(blobs):
    X, y = blobs
    np.testing.assert_allclose(calinski_harabasz(X.astype(np.float32), y),
                               calinski_harabasz_score(X.astype(np.float32).astype(np.float64), y), rtol=1e-9)


def test_query_estimate_is_exact_when_every_row_is_a_query(blobs):
    X, y = blobs
    mean, se = silhouette_query_estimate(X, y, np.arange(X.shape[0]))
    np.testing.assert_allclose(mean, silhouette_score(X, y), rtol=RTOL)
    assert se == 0.0


def test_query_estimate_standard_error_formula(blobs):
    X, y = blobs
    idx = silhouette_query_points(X.shape[0], 200, seed=3)
    s = silhouette_samples(X, y)[idx]
    mean, se = silhouette_query_estimate(X, y, idx)
    np.testing.assert_allclose(mean, s.mean(), rtol=RTOL)
    np.testing.assert_allclose(se, s.std(ddof=1) / np.sqrt(200) * np.sqrt(1 - 200 / X.shape[0]), rtol=RTOL)


def test_query_estimate_on_float32_input_is_within_rounding_of_float64(blobs):
    # Far from the origin the float32 expansion |x|^2 + |y|^2 - 2xy cancels badly unless the rows are centred
    # (uncentred: off by ~3e-5 here; centred: ~1e-8).
    X32 = (blobs[0] + 1_000.0).astype(np.float32)
    y = blobs[1]
    idx = silhouette_query_points(X32.shape[0], 300, seed=1)
    mean64, se64 = silhouette_query_estimate(X32.astype(np.float64), y, idx)
    mean32, se32 = silhouette_query_estimate(X32, y, idx)
    assert mean32 == pytest.approx(mean64, abs=1e-6)
    assert se32 == pytest.approx(se64, rel=1e-3)


def test_query_estimate_unbiased_where_sklearn_sample_size_is_biased():
    # Large k: in a sample of m points each cluster has only ~m/k members, so sklearn's within-sample
    # silhouette is systematically off; query points scored against all n points are not.
    X, _ = make_blobs(n_samples=3_000, n_features=4, centers=80, cluster_std=1.0, random_state=1)
    labels = KMeans(n_clusters=80, n_init=1, random_state=0).fit_predict(X)
    exact = silhouette_score(X, labels)
    ours, theirs, ses = [], [], []
    for seed in range(8):
        idx = silhouette_query_points(X.shape[0], 150, seed=seed)
        mean, se = silhouette_query_estimate(X, labels, idx)
        ours.append(mean)
        ses.append(se)
        theirs.append(silhouette_score(X, labels, sample_size=150, random_state=seed))
    # The mean of 8 estimates has SE ~ se / sqrt(8): ours stays within 3 of them, sklearn's is far outside.
    se_of_mean = np.mean(ses) / np.sqrt(8)
    assert abs(np.mean(ours) - exact) < 3 * se_of_mean
    assert abs(np.mean(theirs) - exact) > 8 * se_of_mean  # measured: ~16


def test_query_points_seeded_and_prefix():
    a = silhouette_query_points(1_000, 50, seed=7)
    np.testing.assert_array_equal(a, silhouette_query_points(1_000, 50, seed=7))
    assert len(np.unique(a)) == 50 and a.min() >= 0 and a.max() < 1_000
    np.testing.assert_array_equal(silhouette_query_points(1_000, 50, seed=None), np.arange(50))
    assert len(silhouette_query_points(30, 50, seed=0)) == 30


def test_score_labels_exact_below_limit(blobs):
    X, y = blobs
    result = score_labels(X, y)
    assert result["status"] == "ok" and result["effective_k"] == 5 and result["silhouette_se"] == 0.0
    np.testing.assert_allclose(result["silhouette"], silhouette_score(X, y), rtol=RTOL)
    np.testing.assert_allclose(result["davies_bouldin"], davies_bouldin_score(X, y), rtol=RTOL)
    np.testing.assert_allclose(result["calinski_harabasz"], calinski_harabasz_score(X, y), rtol=RTOL)


def test_score_labels_estimates_above_limit(blobs):
    X, y = blobs
    idx = silhouette_query_points(X.shape[0], 300, seed=0)
    result = score_labels(X, y, query_idx=idx, exact_max_n=1_000)
    assert result["silhouette_se"] > 0
    assert result["silhouette"] == pytest.approx(silhouette_query_estimate(X, y, idx)[0], rel=RTOL)
    assert abs(result["silhouette"] - silhouette_score(X, y)) < 4 * result["silhouette_se"]


def test_score_labels_one_cluster_is_nan_with_status(blobs):
    X, _ = blobs
    result = score_labels(X, np.zeros(X.shape[0], dtype=int))
    assert result["effective_k"] == 1
    assert result["status"].startswith("degenerate: 1 distinct cluster")
    assert all(np.isnan(result[m]) for m in ("silhouette", "davies_bouldin", "calinski_harabasz"))


def test_score_labels_one_point_per_cluster_is_degenerate():
    X = np.arange(8, dtype=float).reshape(4, 2)
    result = score_labels(X, np.arange(4))
    assert result["status"].startswith("degenerate: 4 clusters for 4 points")
    assert np.isnan(result["silhouette"])


def test_score_labels_reports_effective_k(blobs):
    X, y = blobs
    assert score_labels(X, np.where(y == 4, 0, y))["effective_k"] == 4


def test_shape_mismatch_is_a_clear_error(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="one label per row of X"):
        score_labels(X, y[:-1])
    with pytest.raises(ValueError, match="2-D array"):
        davies_bouldin(X[:, 0], y)


def test_bad_query_points_are_a_clear_error(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="query_idx must be"):
        score_labels(X, y, query_idx=np.array([0, X.shape[0]]), exact_max_n=10)


def test_sklearn_metric_functions_reject_one_cluster(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="number of distinct labels is 1"):
        silhouette_exact(X, np.zeros(X.shape[0]))


@pytest.mark.parametrize("top, promotion, expected", [(True, 10, 20), (False, 10, 10), (False, 30, 20)])
def test_exact_silhouette_limit_is_lower_only_below_the_top_rung(top, promotion, expected):
    assert exact_silhouette_limit(20, promotion, top) == expected
