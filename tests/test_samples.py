"""Nested samples: the seeded permutation and the rung sizes of successive halving."""

import numpy as np
import pytest

from raysweep.samples import max_rungs, permutation, promoted_count, rung_sizes, smallest_rung_size


def test_permutation_is_a_seeded_permutation():
    order = permutation(1000, seed=3)
    np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    np.testing.assert_array_equal(order, permutation(1000, seed=3))
    assert not np.array_equal(order, permutation(1000, seed=4))


def test_permutation_rejects_empty_input():
    with pytest.raises(ValueError, match="n must be >= 1"):
        permutation(0, seed=0)


def test_smallest_rung_holds_twenty_rows_per_cluster_and_at_least_2000():
    assert smallest_rung_size(100) == 2000
    assert smallest_rung_size(150) == 3000


def test_rung_sizes_grow_by_eta_up_to_the_cap():
    sizes = rung_sizes(100_000, k_max=100, n_configs=396, eta=3)
    assert sizes == [3704, 11111, 33333, 100000]
    assert sizes[0] >= smallest_rung_size(100)


def test_rung_sizes_single_rung_when_the_cap_is_too_small_to_split():
    assert rung_sizes(5000, k_max=100, n_configs=396) == [5000]


def test_rung_count_leaves_at_least_eta_configs_at_the_top():
    assert max_rungs(396, 3) == 5  # 396, 132, 44, 15, 5
    assert max_rungs(24, 3) == 3  # 24, 8, 3
    assert len(rung_sizes(10**9, k_max=8, n_configs=24, eta=3, min_size=10)) == 3


def test_rung_sizes_honour_min_size():
    assert rung_sizes(3000, k_max=8, n_configs=24, eta=3, min_size=300) == [333, 1000, 3000]


def test_rung_sizes_reject_eta_below_two():
    with pytest.raises(ValueError, match="eta must be >= 2"):
        rung_sizes(1000, k_max=5, n_configs=10, eta=1)


def test_promoted_count_rounds_up():
    assert [promoted_count(n, 3) for n in (396, 132, 44, 15, 2)] == [132, 44, 15, 5, 1]
