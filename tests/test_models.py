import pickle

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster
from scipy.cluster.hierarchy import ward as scipy_ward
from sklearn.cluster import AgglomerativeClustering, Birch, KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from raysweep.models import (
    KMEANS_INITS,
    DegenerateFitError,
    MODEL_NAMES,
    _FullCovarianceMixture,
    agglomerative_method,
    birch_cf_tree,
    birch_labels,
    birch_threshold,
    fit_final,
    gmm_labels,
    kmeans_labels,
    ward_labels,
    ward_tree,
    weighted_ward_linkage,
)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=600, n_features=4, centers=5, cluster_std=1.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def tree(blobs):
    return ward_tree(blobs[0])


@pytest.fixture(scope="module")
def cf_tree(blobs):
    X, _ = blobs
    return birch_cf_tree(X, birch_threshold(X, target_subclusters=80))


@pytest.mark.parametrize("k", [2, 5, 13, 40, 100])
def test_ward_cut_equals_agglomerative_clustering(blobs, tree, k):
    X, _ = blobs
    labels = ward_labels(tree, k)
    assert len(np.unique(labels)) == k
    assert adjusted_rand_score(labels, AgglomerativeClustering(n_clusters=k).fit_predict(X)) == 1.0


def test_ward_cut_at_n_gives_singletons(blobs, tree):
    assert len(np.unique(ward_labels(tree, blobs[0].shape[0]))) == blobs[0].shape[0]


def test_capped_ward_extends_the_cut_by_nearest_centroid(blobs):
    X, y = blobs
    capped = ward_tree(X, max_n=200)
    assert capped.capped and capped.n_leaves == 200 and capped.n_rows == 600
    labels = ward_labels(capped, 5, X)
    # The tree's rows keep the cut; the well-separated blobs are recovered for every row.
    assert adjusted_rand_score(labels[:200], AgglomerativeClustering(n_clusters=5).fit_predict(X[:200])) == 1.0
    assert adjusted_rand_score(labels, y) == 1.0


def test_capped_ward_without_X_is_a_clear_error(blobs):
    with pytest.raises(ValueError, match="capped at 200 of 600 rows: pass X"):
        ward_labels(ward_tree(blobs[0], max_n=200), 5)


def test_ward_cut_rejects_k_above_leaves(tree):
    with pytest.raises(ValueError, match="k=601 is larger than the number of rows"):
        ward_labels(tree, 601)


def test_agglomerative_method_records_the_cap():
    small, large = agglomerative_method(1_000, max_n=20_000), agglomerative_method(1_000_000, max_n=20_000)
    assert not small["capped"] and small["tree_rows"] == 1_000
    assert large["capped"] and large["tree_rows"] == 20_000 and "nearest centroid" in large["description"]


@pytest.mark.parametrize("k", [2, 5, 17, 40])
def test_birch_global_step_is_ward_on_subclusters_weighted_by_their_rows(blobs, cf_tree, k):
    X, _ = blobs
    centres = cf_tree.birch.subcluster_centers_
    weights = np.bincount(cf_tree.row_subcluster, minlength=centres.shape[0])
    # Ward on the centres repeated as often as they hold rows: the tree of point masses, weighting by replication.
    replicated = np.repeat(np.arange(centres.shape[0]), np.maximum(weights, 1))
    cut = fcluster(scipy_ward(centres[replicated]), k, criterion="maxclust")
    subcluster_label = np.empty(centres.shape[0], dtype=np.intp)
    subcluster_label[replicated] = cut
    assert adjusted_rand_score(birch_labels(cf_tree, X, k), subcluster_label[cf_tree.row_subcluster]) == 1.0


def test_birch_does_not_split_off_a_few_far_points():
    # Two blobs of 1,000 rows and 2 rows 9 SD from one of them: no cluster of 2 rows at k = 3 (weighted global step);
    # scikit-learn's unweighted global step gives those 2 rows a cluster of their own.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (1000, 4)), rng.normal(12, 1, (1000, 4)), np.zeros((2, 4)) + [9, 0, 0, 0]])
    X = X[rng.permutation(len(X))]
    cf = birch_cf_tree(X, birch_threshold(X, target_subclusters=60))
    sizes = np.bincount(birch_labels(cf, None, 3))
    unweighted = np.bincount(Birch(threshold=cf.threshold, n_clusters=3).fit_predict(X))
    assert unweighted.min() == 2 and sizes.min() > 100


def test_weighted_ward_linkage_with_unit_weights_equals_scipy_ward(blobs):
    X, _ = blobs
    np.testing.assert_allclose(weighted_ward_linkage(X, np.ones(len(X))), scipy_ward(X), atol=1e-9)


def test_weighted_ward_linkage_refuses_nonpositive_weights(blobs):
    with pytest.raises(ValueError, match="positive"):
        weighted_ward_linkage(blobs[0][:5], np.array([1, 1, 0, 1, 1]))


def test_birch_threshold_keeps_subclusters_near_target():
    X, _ = make_blobs(n_samples=2_500, n_features=6, centers=10, cluster_std=2.0, random_state=0)
    cf = birch_cf_tree(X, birch_threshold(X, target_subclusters=150))
    # The default threshold 0.5 makes nearly every row its own subcluster here; the adapted one is near the target.
    assert 50 <= cf.n_subclusters <= 450
    assert Birch(threshold=0.5, n_clusters=None).fit(X).subcluster_centers_.shape[0] > 2_000


def test_birch_raises_threshold_when_too_many_subclusters(blobs):
    X, _ = blobs
    cf = birch_cf_tree(X, threshold=0.2, max_subclusters=50)
    assert cf.attempts[0]["n_subclusters"] > 50
    assert cf.attempts[-1]["n_subclusters"] <= 50 and cf.threshold > 0.2
    assert cf.threshold == pytest.approx(cf.attempts[-1]["threshold"])


def test_birch_probes_a_prefix_before_the_full_build(blobs):
    X, _ = blobs
    cf = birch_cf_tree(X, threshold=0.2, max_subclusters=50, probe_rows=100)
    assert cf.attempts[0]["rows"] == 100 and cf.attempts[-1]["rows"] == 600
    assert cf.n_rows == 600 and cf.attempts[-1]["n_subclusters"] <= 50


def test_capped_birch_labels_every_row_by_nearest_subcluster(blobs):
    X, y = blobs
    cf = birch_cf_tree(X, birch_threshold(X, target_subclusters=50), max_n=300)
    assert cf.method["capped"] and cf.method["tree_rows"] == 300 and cf.attempts[-1]["rows"] == 300
    labels = birch_labels(cf, X, 5)
    assert labels.shape == (600,) and adjusted_rand_score(labels, y) == 1.0


def test_birch_with_fewer_subclusters_than_k_reports_fewer_clusters(blobs):
    X, _ = blobs
    cf = birch_cf_tree(X, threshold=50.0)
    assert len(np.unique(birch_labels(cf, None, 10))) == cf.n_subclusters < 10


def test_birch_labels_refuses_other_rows(blobs, cf_tree):
    with pytest.raises(ValueError, match="rows its CF-tree was built from"):
        birch_labels(cf_tree, blobs[0][:100], 5)


def test_trees_pickle_for_the_object_store(tree, cf_tree, blobs):
    np.testing.assert_array_equal(ward_labels(pickle.loads(pickle.dumps(tree)), 7), ward_labels(tree, 7))
    np.testing.assert_array_equal(birch_labels(pickle.loads(pickle.dumps(cf_tree)), None, 7),
                                  birch_labels(cf_tree, None, 7))


def test_kmeans_labels_and_info(blobs):
    X, y = blobs
    labels, info = kmeans_labels(X, 5, seed=0, n_threads=1)
    assert adjusted_rand_score(labels, y) == 1.0
    assert info["converged"] and info["n_iter"] >= 1 and info["warnings"] == []
    np.testing.assert_array_equal(labels, KMeans(5, n_init=KMEANS_INITS, random_state=0).fit_predict(X))


def test_kmeans_above_its_sample_size_inits_on_the_sample_and_polishes_on_all_rows(blobs):
    X, y = blobs
    labels, info = kmeans_labels(X, 5, seed=0, sample_n=100)
    centres = KMeans(5, n_init=KMEANS_INITS, random_state=0).fit(X[:100]).cluster_centers_
    np.testing.assert_array_equal(labels, KMeans(5, init=centres, n_init=1, random_state=0).fit_predict(X))
    assert info["init_rows"] == 100 and adjusted_rand_score(labels, y) == 1.0


def test_gmm_labels_and_info(blobs):
    X, y = blobs
    labels, info = gmm_labels(X, 5, seed=0)
    assert adjusted_rand_score(labels, y) > 0.95
    assert info["converged"] and "lower_bound" in info


@pytest.mark.parametrize("k", [3, 12])
def test_full_covariance_mixture_equals_sklearn(blobs, k):
    X, _ = blobs
    ours = _FullCovarianceMixture(n_components=k, random_state=0).fit(X)
    theirs = GaussianMixture(n_components=k, random_state=0).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-8)


def test_a_fitted_mixture_keeps_nothing_of_its_fit_rows(blobs):
    X, _ = blobs
    ours = _FullCovarianceMixture(n_components=5, random_state=0).fit(X)
    assert not hasattr(ours, "_fitting") and len(pickle.dumps(ours)) < X.nbytes


def test_full_covariance_mixture_predicts_in_row_chunks_like_sklearn(blobs, monkeypatch):
    from raysweep.families import gmm

    X, _ = blobs
    ours = _FullCovarianceMixture(n_components=5, random_state=0).fit(X)
    theirs = GaussianMixture(n_components=5, random_state=0).fit(X)
    monkeypatch.setattr(gmm, "_GMM_CHUNK_ROWS", 64)  # 600 rows: 10 chunks
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-8)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-10)


def test_full_covariance_mixture_is_accurate_far_from_the_origin(blobs):
    # Centring keeps the uncentred-scatter cancellation small even with a large offset.
    X = blobs[0] + 1e6
    ours = _FullCovarianceMixture(n_components=5, random_state=0).fit(X)
    theirs = GaussianMixture(n_components=5, random_state=0).fit(X)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-5)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_full_covariance_mixture_singular_component_raises_sklearns_error():
    # A component of identical points has zero scatter; without reg_covar its covariance is singular.
    X = np.r_[np.zeros((20, 2)), np.random.default_rng(0).normal(5, 1, (40, 2))]
    ours = _FullCovarianceMixture(n_components=2, reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        ours.fit(X)


def test_gmm_above_its_cap_fits_a_prefix_and_labels_every_row(blobs):
    X, y = blobs
    labels, info = gmm_labels(X, 5, seed=0, max_n=200)
    assert info["fit_rows"] == 200 and labels.shape == (600,)
    assert adjusted_rand_score(labels, y) > 0.95


def test_gmm_diagonal_covariance_is_available(blobs):
    X, y = blobs
    labels, info = gmm_labels(X, 5, seed=0, covariance_type="diag")
    assert info["covariance_type"] == "diag" and adjusted_rand_score(labels, y) > 0.95


def test_convergence_warnings_are_recorded_not_raised():
    # Two distinct points, k=3: KMeans finds only 2 distinct clusters and warns.
    X = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    labels, info = kmeans_labels(X, 3, seed=0)
    assert any("ConvergenceWarning" in w for w in info["warnings"])
    assert len(np.unique(labels)) == 2


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_fit_final_labels_predict_and_centres(blobs, model):
    X, y = blobs
    final = fit_final(model, 5, X, seed=0, max_n=300)
    assert adjusted_rand_score(final.labels_, y) > 0.95
    assert final.cluster_centers_.shape == (5, X.shape[1])
    assert np.mean(final.predict(X) == final.labels_) > 0.99
    assert final.transform(X[:3]).shape == (3, 5)


def test_fit_final_gmm_has_probabilities(blobs):
    X, _ = blobs
    final = fit_final("gmm", 5, X, seed=0)
    np.testing.assert_allclose(final.predict_proba(X[:10]).sum(axis=1), 1.0)
    np.testing.assert_array_equal(final.means_, final.estimator.means_)


def test_fit_final_kmeans_has_no_probabilities(blobs):
    final = fit_final("kmeans", 5, blobs[0], seed=0)
    assert not hasattr(final, "predict_proba")
    with pytest.raises(AttributeError, match="has no attribute 'predict_proba'") as raised:
        final.predict_proba(blobs[0])
    assert "predict_proba exists only for a family with probabilities" in str(raised.value.__cause__)


def test_fit_final_large_agglomerative_uses_the_capped_method(blobs):
    final = fit_final("agglomerative", 5, blobs[0], seed=0, max_n=200)
    assert final.method["capped"] and final.method["tree_rows"] == 200


def test_fit_final_rejects_unknown_model(blobs):
    with pytest.raises(ValueError, match="unknown model 'dbscan'"):
        fit_final("dbscan", 5, blobs[0], seed=0)


def test_k_larger_than_rows_is_a_clear_error(blobs):
    with pytest.raises(ValueError, match="k=700 is larger than the number of rows"):
        kmeans_labels(blobs[0], 700, seed=0)


_ILL_DEFINED = ("Fitting the mixture model failed because some components have ill-defined empirical covariance "
                "(for instance caused by singleton or collapsed samples).")


def _collapse_below(monkeypatch, reg_covar):
    """Make the mixture's initialization fail as scikit-learn does for a collapsed component, below ``reg_covar``."""
    original = _FullCovarianceMixture._initialize

    def initialize(self, X, random_state):
        if self.reg_covar < reg_covar:
            raise ValueError(_ILL_DEFINED)
        return original(self, X, random_state)

    monkeypatch.setattr(_FullCovarianceMixture, "_initialize", initialize)


def test_gmm_retries_a_collapsed_component_with_a_larger_reg_covar(blobs, monkeypatch):
    _collapse_below(monkeypatch, 1e-4)
    labels, info = gmm_labels(blobs[0], 5, seed=0)
    assert info["reg_covar"] == 1e-4 and len(np.unique(labels)) == 5
    assert any("reg_covar=1e-06" in w for w in info["warnings"]) and any("fitted with reg_covar=0.0001" in w
                                                                          for w in info["warnings"])


def test_gmm_that_still_collapses_is_a_degenerate_fit(blobs, monkeypatch):
    _collapse_below(monkeypatch, 1.0)
    with pytest.raises(DegenerateFitError, match=r"k=5: a component collapsed .* reg_covar=0.001"):
        gmm_labels(blobs[0], 5, seed=0)


def test_gmm_other_errors_are_not_retried(blobs):
    with pytest.raises(ValueError, match="larger than the number of rows"):
        gmm_labels(blobs[0][:3], 5, seed=0)
