"""Tests of raysweep.families: the registry, the one fit path per family, FinalModel as a scikit-learn estimator."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import pairwise_distances_argmin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from raysweep import finalize as finalize_module
from raysweep import selection, tune
from raysweep.families import MODEL_NAMES, REGISTRY, get_family
from raysweep.families.base import ClusterFamily, FinalModel, Fit, label_centroids
from raysweep.halving import config_grid
from raysweep.models import fit_final

FIVE = ["kmeans", "birch", "agglomerative", "gmm", "bisecting_kmeans"]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=500, n_features=3, centers=4, cluster_std=0.8, random_state=1)
    return X[np.random.default_rng(0).permutation(len(X))], y


def test_registry_lists_the_five_families_in_tie_break_order():
    assert list(REGISTRY) == FIVE
    assert [REGISTRY[name].name for name in FIVE] == FIVE


def test_default_grid_is_the_four_design_card_families():
    assert MODEL_NAMES == ("kmeans", "birch", "agglomerative", "gmm")
    default_models = tune._parser().parse_args([]).models.split(",")
    assert default_models == list(MODEL_NAMES)
    assert len(config_grid(default_models, range(2, 101))) == 396


def test_family_names_need_neither_sklearn_nor_scipy():
    code = ("import sys, raysweep.selection, raysweep.families as f; list(f.REGISTRY); "
            "print([m for m in ('sklearn', 'scipy') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.parametrize("name", FIVE)
def test_sweep_labels_equal_refit_labels(blobs, name):
    X, _ = blobs
    family = get_family(name)
    n, k, seed = 400, 4, 3
    # As in a trial: the rung's shared structure is built on the first n rows of the permuted matrix.
    shared = None if family.shared_structure is None else family.build_shared(X, n, seed)[0]
    sweep_labels, _ = family.labels(X[:n], k, shared, seed)
    np.testing.assert_array_equal(sweep_labels, fit_final(name, k, X[:n], seed).labels_)


@pytest.mark.parametrize("name", FIVE)
def test_final_model_clones_and_works_in_a_pipeline(blobs, name):
    X, y = blobs
    model = FinalModel(name, 4, seed=0)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "labels_")
    pipeline = Pipeline([("scale", StandardScaler()), ("cluster", twin)])
    labels = pipeline.fit_predict(X)
    direct = FinalModel(name, 4, seed=0).fit(StandardScaler().fit_transform(X))
    np.testing.assert_array_equal(labels, direct.labels_)
    assert np.mean(pipeline.predict(X) == labels) > 0.99
    assert twin.set_params(k=3).get_params()["k"] == 3


def test_bisecting_kmeans_equals_sklearns(blobs):
    from sklearn.cluster import BisectingKMeans

    X, _ = blobs
    final = fit_final("bisecting_kmeans", 4, X, seed=2)
    np.testing.assert_array_equal(final.labels_, BisectingKMeans(4, random_state=2).fit_predict(X))
    assert final.method["estimator"] == "BisectingKMeans"


class _StripesFamily(ClusterFamily):
    """A toy family defined outside the package: k stripes along the first feature."""

    name = "stripes"
    cost_rank = 5

    def fit(self, X, k, seed, shared=None, n_threads=None):
        edges = np.quantile(X[:, 0], np.linspace(0, 1, k + 1)[1:-1])
        labels = np.searchsorted(edges, X[:, 0])
        return Fit(labels, label_centroids(X, labels, k), None, {"estimator": "stripes"}, {"warnings": []})


def test_a_registered_family_needs_no_edit_elsewhere(blobs, monkeypatch):
    X, _ = blobs
    monkeypatch.setitem(REGISTRY, "stripes", _StripesFamily())
    tune.SweepSettings("f.parquet", fraction=1.0, models=["stripes", "kmeans"], k_max=5).checked()  # accepted
    sweep_labels, warnings = get_family("stripes").labels(X, 3, None, seed=0)
    final = fit_final("stripes", 3, X, seed=0, max_n=100)  # an option it does not take is left out
    np.testing.assert_array_equal(final.labels_, sweep_labels)
    assert warnings == []
    np.testing.assert_array_equal(final.predict(X), pairwise_distances_argmin(X, final.cluster_centers_))  # default
    assert finalize_module.fit_options("stripes", {}, len(X)) == {}
    assert selection.rule_text().endswith("model order kmeans, birch, agglomerative, gmm, bisecting_kmeans, stripes.")
    assert not hasattr(final, "predict_proba")


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'dbscan'; expected one of kmeans, birch"):
        get_family("dbscan")


def _format_1_pickle(final):
    """``final`` pickled as raysweep wrote FinalModel before the registry (model.json format 1)."""
    old = FinalModel.__new__(FinalModel)
    subclusters = final.state_.get("subcluster_labels")
    old.__dict__.update(model=final.model, k=final.k, labels_=final.labels_, cluster_centers_=final.cluster_centers_,
                        estimator=final.estimator_, method=final.method_, info=final.info_,
                        _subcluster_labels=subclusters)
    return pickle.dumps(old)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_format_1_model_still_loads_and_predicts(blobs, name):
    X, _ = blobs
    final = fit_final(name, 4, X, seed=0)
    loaded = pickle.loads(_format_1_pickle(final))
    np.testing.assert_array_equal(loaded.predict(X + 0.1), final.predict(X + 0.1))
    assert (loaded.method, loaded.k, hasattr(loaded, "predict_proba")) == (final.method, 4, name == "gmm")


def test_an_unknown_model_format_is_refused_by_name(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format": 99, "artifact": "model.joblib"}))
    with pytest.raises(ValueError, match="model format 99; this raysweep reads formats 1, 2"):
        finalize_module.load_model(tmp_path)


@pytest.mark.slow
def test_bisecting_kmeans_sweeps_and_finalizes(ray_local, tmp_path):
    from raysweep.feature_matrix import write_feature_matrix

    # Every feature separates the blobs: the sweep standardizes each, so a pure-noise feature would swamp them.
    centres = [[0, 0], [8, 0], [0, 8]]
    values, _ = make_blobs(n_samples=900, centers=centres, cluster_std=0.5, random_state=0)
    write_feature_matrix(tmp_path / "blobs.parquet", np.arange(900), values, ["f0", "f1"], {"source": "test"})
    settings = tune.SweepSettings(tmp_path / "blobs.parquet", fraction=1.0, models=("bisecting_kmeans",), k_min=2,
                                  k_max=5, results=tmp_path, name="bisect", min_rung_size=300, progress=False)
    run = tune.run_sweep(settings)
    winner = json.loads((run / "winner.json").read_text())
    assert (winner["model"], winner["k"]) == ("bisecting_kmeans", 3)
    summary = finalize_module.finalize(run, quiet=True, plots=False, fractions=(0.5,))
    assert (summary["model"], summary["k"], summary["effective_k"]) == ("bisecting_kmeans", 3, 3)
    loaded = finalize_module.load_model(run / "final")
    assert loaded.estimator.method["estimator"] == "BisectingKMeans"
