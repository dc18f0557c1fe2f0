"""The challenge's metrics on hand-computed cases."""

import math

import numpy as np
import pytest

from raysweep.recommend.metrics import NO_HIT_CLICKS, score


def test_r_precision_counts_hits_among_the_first_g_only():
    # G = {1, 2, 3, 5, 8, 99}; the first 6 recommendations hold 5, 8, 3 (99 comes 7th): 3/6.
    result = score(np.array([5, 8, 13, 3, 40, 41, 99]), np.array([1, 2, 3, 5, 8, 99]))
    assert result.r_precision_tracks == pytest.approx(0.5)
    assert result.r_precision == pytest.approx(0.5)  # no artists given: no artist credit


def test_artist_credit_is_a_quarter_per_held_out_artist_among_the_non_hits():
    artist = np.array([0, 0, 1, 2, 3, 3, 0, 4])  # tracks 0..7
    # G = {0, 2, 4}, G_A = {0, 1, 3}; R[1:3] = 1 (artist 0: in G_A), 3 (artist 2: not), 2 (a hit).
    # S_A = artists of the non-hits {1, 3} = {0, 2}; |S_A ∩ G_A| = 1: (1 + 0.25) / 3.
    result = score(np.array([1, 3, 2]), np.array([0, 2, 4]), artist)
    assert result.r_precision_tracks == pytest.approx(1 / 3)
    assert result.r_precision == pytest.approx((1 + 0.25) / 3)


def test_artist_credit_counts_each_artist_once():
    artist = np.array([0, 0, 1, 2, 3, 3, 0, 4])
    # G = {0, 4}; R[1:2] = 1, 6: two non-hits by artist 0 (of held-out 0) earn one quarter: 0.25 / 2.
    assert score(np.array([1, 6]), np.array([0, 4]), artist).r_precision == pytest.approx(0.25 / 2)


def test_artist_credit_includes_the_artist_of_a_hit():
    artist = np.array([0, 0, 1, 2, 3, 3, 0, 4])
    # G = {0, 4}; R[1:2] = 1 (artist 0, a near miss), 0 (a hit by artist 0): G_A = {0, 3}, S_A = {0}:
    # (1 + 0.25) / 2, as the winner's evaluator scores it (the hit itself earns no artist credit).
    assert score(np.array([1, 0]), np.array([0, 4]), artist).r_precision == pytest.approx((1 + 0.25) / 2)
    # A hit alone earns no credit for its own artist: R[1:2] = 0 (hit), 7 (artist 4, not in G_A).
    assert score(np.array([0, 7]), np.array([0, 4]), artist).r_precision == pytest.approx(1 / 2)


def test_artist_credit_looks_only_at_the_first_g_recommendations():
    artist = np.array([0, 0, 1, 2, 3, 3, 0, 4])
    # G = {0, 4}; the near miss 1 (artist 0) comes 3rd, after R[1:2] = 7, 2 (artists 4, 1: not in G_A).
    result = score(np.array([7, 2, 1]), np.array([0, 4]), artist)
    assert result.r_precision == pytest.approx(0.0)


def test_perfect_recommendations_score_one_with_the_artist_credit():
    artist = np.array([0, 0, 1, 2, 3, 3, 0, 4])
    assert score(np.array([0, 1, 4]), np.array([0, 1, 4]), artist).r_precision == pytest.approx(1.0)


def test_ndcg_uses_the_challenge_discounts():
    # hits at ranks 2 and 4 of 4: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(2) = 2.
    result = score(np.array([10, 1, 11, 2]), np.array([1, 2, 3]))
    assert result.ndcg == pytest.approx(1.5 / 2)
    # hit at rank 3 only: DCG = 1/log2(3), IDCG = 1
    assert score(np.array([7, 8, 1]), np.array([1])).ndcg == pytest.approx(1 / math.log2(3))
    assert score(np.array([1, 2]), np.array([1, 2])).ndcg == pytest.approx(1.0)


def test_clicks_are_pages_of_ten_before_the_first_hit():
    recommended = np.arange(100, 600)
    assert score(recommended, np.array([100])).clicks == 0  # rank 1
    assert score(recommended, np.array([109])).clicks == 0  # rank 10
    assert score(recommended, np.array([110])).clicks == 1  # rank 11
    assert score(recommended, np.array([599])).clicks == 49  # rank 500


def test_no_hit_gives_zero_scores_and_51_clicks():
    result = score(np.arange(500), np.array([1000, 1001]), np.zeros(2000, dtype=int) + 5)
    assert (result.r_precision_tracks, result.ndcg, result.clicks) == (0.0, 0.0, NO_HIT_CLICKS)


def test_only_the_first_500_recommendations_count():
    assert score(np.arange(600), np.array([550])).clicks == NO_HIT_CLICKS


def test_empty_held_out_is_an_error():
    with pytest.raises(ValueError, match="held_out is empty"):
        score(np.array([1]), np.array([], dtype=int))
