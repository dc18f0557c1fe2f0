"""Nested samples: the data each rung of the search sees.

One seeded permutation of the rows defines every sample: rung ``r`` uses the first ``n_r`` rows of it, so the
samples are nested and shared by every config (common random numbers: a difference between two configs at a rung
is not sampling noise). Rung sizes grow geometrically by ``eta`` up to the ``--fraction`` cap.
"""

from __future__ import annotations

import math

import numpy as np

MIN_ROWS_PER_CLUSTER = 20  # the smallest rung holds at least this many rows per cluster at k_max
MIN_RUNG_SIZE = 2000  # below this, scores of 100-cluster labelings are too noisy to promote on


def permutation(n: int, seed: int) -> np.ndarray:
    """A seeded random permutation of ``range(n)``.

    Parameters
    ----------
    n : int
        Number of rows.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same permutation on every machine.

    Returns
    -------
    order : ndarray of shape (n,), int64
    """
    if n < 1:
        raise ValueError(f"permutation: n must be >= 1, got {n}")
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def smallest_rung_size(k_max: int) -> int:
    """The smallest sample worth scoring a ``k_max``-cluster labeling on: ``max(20 * k_max, 2000)``."""
    return max(MIN_ROWS_PER_CLUSTER * k_max, MIN_RUNG_SIZE)


def max_rungs(n_configs: int, eta: int) -> int:
    """The most rungs successive halving can use: the top rung must still hold at least ``eta`` configs.

    With promotion of ``ceil(alive / eta)`` per rung, rung ``r`` holds ``ceil(n_configs / eta**r)`` configs.
    """
    rungs = 1
    while math.ceil(n_configs / eta ** rungs) >= eta:
        rungs += 1
    return rungs


def rung_sizes(n_cap: int, k_max: int, n_configs: int, eta: int = 3, min_size: int | None = None) -> list[int]:
    """Sample sizes of the rungs, smallest first, geometric by ``eta``, the last one ``n_cap``.

    Parameters
    ----------
    n_cap : int
        Rows of the top rung (the ``--fraction`` cap of the data).
    k_max : int
        Largest number of clusters searched; sets the smallest useful sample (:func:`smallest_rung_size`).
    n_configs : int
        Number of configs at the first rung; bounds the number of rungs (:func:`max_rungs`).
    eta : int, default=3
        Growth factor of the sample and reduction factor of the configs.
    min_size : int, optional
        Smallest rung size; default :func:`smallest_rung_size` of ``k_max``.

    Returns
    -------
    sizes : list of int
        Strictly increasing; ``[n_cap]`` alone when ``n_cap`` is too small to split.
    """
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    if n_cap < 1:
        raise ValueError(f"n_cap must be >= 1, got {n_cap}")
    floor = smallest_rung_size(k_max) if min_size is None else min_size
    limit = max_rungs(n_configs, eta)
    sizes = [n_cap]
    while len(sizes) < limit and round(sizes[-1] / eta) >= floor:
        sizes.append(round(sizes[-1] / eta))
    return sizes[::-1]


def promoted_count(n_alive: int, eta: int) -> int:
    """How many configs successive halving promotes out of ``n_alive``: ``ceil(n_alive / eta)``."""
    return math.ceil(n_alive / eta)
