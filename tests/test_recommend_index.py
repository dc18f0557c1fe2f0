"""The index's pure helpers: the top tracks and the 0/1 playlist x track matrix."""

import numpy as np
import pytest

from raysweep.recommend.index import TOP_TRACKS, _binary_csr, _top


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
