"""The index's pure helpers: the top tracks, the 0/1 playlist x track matrix, the nearest rows and their scaling."""

import numpy as np
import pytest

from raysweep.feature_matrix import apply_scaling
from raysweep.recommend.index import TOP_TRACKS, Clustering, _binary_csr, _top
from raysweep.recommend.methods import smallest


@pytest.mark.parametrize("n", [10, TOP_TRACKS, TOP_TRACKS + 1, 50_000])
def test_top_tracks_equal_a_full_sort_by_count_popularity_and_id(n):
    rng = np.random.default_rng(n)
    tracks = rng.permutation(200_000)[:n]
    counts = rng.zipf(1.5, n).astype(np.float32)  # many ties, as cluster counts have
    popularity = rng.integers(0, 5, 200_000)
    full = tracks[np.lexsort((tracks, -popularity[tracks], -counts))][:TOP_TRACKS]
    assert np.array_equal(_top(tracks, counts, popularity), full)


@pytest.mark.parametrize("grouped", [True, False])  # rows in order (the CSR arrays directly) or not (via COO)
def test_binary_csr_has_a_single_one_per_pair_given(grouped):
    rng = np.random.default_rng(3)
    row = np.sort(rng.integers(0, 50, 2000)) if grouped else rng.integers(0, 50, 2000)
    column = rng.integers(0, 30, 2000).astype(np.int32)  # many pairs given twice or more
    expected = np.zeros((60, 30), dtype=np.float32)
    expected[row, column] = 1.0
    matrix = _binary_csr(row, column, (60, 30))
    assert matrix.has_canonical_format and np.array_equal(matrix.toarray(), expected)


@pytest.mark.parametrize("size, n", [(0, 10), (7, 10), (500, 10), (500, 1), (50_000, 10)])
def test_smallest_equals_a_stable_argsort_with_ties_and_nan(size, n):
    rng = np.random.default_rng(size)
    values = rng.integers(0, 20, size).astype(np.float32)  # many ties at every value
    values[rng.random(size) < 0.1] = np.nan
    np.testing.assert_array_equal(smallest(values, n), np.argsort(values, kind="stable")[:n])


def test_smallest_with_fewer_numbers_than_asked_ends_with_the_nans():
    values = np.array([np.nan, 3.0, np.nan, 1.0, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(smallest(values, 4), [3, 1, 0, 2])


def test_rows_scaled_once_equal_the_rows_scaled_one_query_at_a_time():
    rng = np.random.default_rng(0)
    features = rng.lognormal(size=(1_000, 13)).astype(np.float32)
    scaling = {"kind": "standard", "mean": features.mean(axis=0).tolist(), "std": features.std(axis=0).tolist()}
    clustering = Clustering("kmeans k=2", "kmeans", 2, None, scaling, *(np.zeros(0),) * 3, [], features=features)
    rows = rng.choice(1_000, 300, replace=False)
    np.testing.assert_array_equal(clustering.scaled_rows[rows], apply_scaling(features[rows], scaling))
    assert clustering.scaled_rows is clustering.scaled_rows
