"""Early stopping: synchronous successive halving with a rung barrier, as pure functions (no Ray, no files).

Jamieson & Talwalkar 2016, "Non-stochastic best arm identification and hyperparameter optimization": rung r runs
every config still alive on the first n_r rows of one seeded permutation (:mod:`raysweep.samples`); when every
trial of the rung has ended, the configs are ranked by :func:`raysweep.selection.rank_configs` (the winner rule
itself) and the top ``ceil(alive / eta)`` are promoted to rung r + 1. Ray's ASHA decides asynchronously, on
whichever trials reached a rung first, so its outcome depends on trial order and worker count; with the barrier the
same inputs promote the same configs on 2 cores or 200. An exhaustive run has one rung, the top one: the reference.

:func:`plan_rungs` gives the sample sizes, :class:`Rung` describes one rung of the plan and :func:`promote` is the
step between two rungs; :func:`promotion_record` is the rule as ``winner.json`` and ``run.json`` state it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from raysweep import samples, selection

ETA = 3
PROMOTION_RULE = ("Synchronous successive halving with eta={eta}: rung r runs every config still alive on the first "
                  "n_r rows of one seeded permutation; once all of them have ended, they are ranked by the winner "
                  "rule (selection.rank_configs) and the top ceil(alive / eta) are promoted to rung r + 1; the top "
                  "rung is the --fraction cap of the data.")
PROMOTION_REASONING = ("A barrier makes every promotion depend only on the scores, not on trial order or the number "
                       "of workers (ASHA promotes on whichever trials reached a rung first), so a run is reproducible "
                       "on 2 cores or 200 and promotes exactly what its rule says; the samples are nested prefixes "
                       "of one permutation, so all configs of a rung are scored on the same playlists.")


def config_grid(models, k_values) -> list[dict]:
    """Every ``{"model": m, "k": k}`` of the search, model by model, k ascending within each."""
    return [{"model": m, "k": k} for m in models for k in k_values]


def plan_rungs(n_total, fraction, n_configs, k_max, exhaustive, eta=ETA, min_rung_size=None) -> list[int]:
    """Sample sizes of the rungs, smallest first: ``[n_cap]`` alone when exhaustive.

    Parameters
    ----------
    n_total : int
        Rows of the feature matrix.
    fraction : float
        The top rung holds ``round(fraction * n_total)`` rows (at least 1).
    n_configs : int
        Configs at the first rung; bounds the number of rungs (:func:`raysweep.samples.max_rungs`).
    k_max : int
    exhaustive : bool
    eta : int, default=ETA
    null : DataFrame indexed by k, default=None, the null model's scores the rule compares with
        (:func:`raysweep.null_model.null_scores`)
    min_rung_size : int, default=None
        Overrides :func:`raysweep.samples.smallest_rung_size` (small test data sets use it).

    Returns
    -------
    sizes : list of int, strictly increasing

    Raises ValueError when ``k_max`` is not smaller than the smallest rung (k >= n cannot be clustered).
    """
    n_cap = max(1, int(round(fraction * n_total)))
    sizes = [n_cap] if exhaustive else samples.rung_sizes(n_cap, k_max, n_configs, eta, min_rung_size)
    if k_max >= sizes[0]:
        raise ValueError(f"--k-max={k_max} needs more rows than the smallest sample has: {sizes[0]:,} rows "
                         f"(--fraction {fraction} of {n_total:,} playlists); k must be < n. Lower --k-max or "
                         "raise --fraction.")
    return sizes


@dataclass(frozen=True)
class Rung:
    """One rung of the plan: its sample and the configs it runs.

    Attributes
    ----------
    index : int, 0-based
    n : int, rows of its sample (a prefix of the permutation)
    n_rungs : int, rungs of the plan
    configs : list of dict, ``{"model", "k"}`` of every config alive at this rung
    stopped : int, configs stopped at the rungs before it
    """

    index: int
    n: int
    n_rungs: int
    configs: list
    stopped: int = 0

    @property
    def top(self) -> bool:
        """True for the last rung: nothing is promoted from it."""
        return self.index == self.n_rungs - 1


def promote(board: pd.DataFrame, eta: int = ETA, null: pd.DataFrame | None = None) -> list[dict]:
    """The configs promoted from one rung: the top ``ceil(len(board) / eta)`` by the winner rule.

    Parameters
    ----------
    board : DataFrame, one row per config of the rung (the leaderboard rows of that rung)
    eta : int, default=ETA

    Returns
    -------
    promoted : list of dict, ``{"model", "k"}`` in rank order
    """
    ranked = selection.rank_configs(board, null=null).head(samples.promoted_count(len(board), eta))
    return [{"model": row.model, "k": int(row.k)} for row in ranked.itertuples()]


def promotion_record(eta: int = ETA) -> dict:
    """The promotion rule and why, as ``winner.json`` and ``run.json`` state it."""
    return {"rule": PROMOTION_RULE.format(eta=eta), "reasoning": PROMOTION_REASONING}
