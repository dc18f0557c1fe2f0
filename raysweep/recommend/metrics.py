"""The RecSys Challenge 2018 metrics over one ranked list of recommended tracks.

Definitions (the challenge rules, https://recsys-challenge.spotify.com/rules, mirrored in
github.com/demian-arenas/Spotify-Million-Playlist-Challenge/Evaluation.md; Zamani et al., "An Analysis of
Approaches Taken in the ACM RecSys Challenge 2018 for Automatic Music Playlist Continuation", ACM TIST 2019):
G is the set of held-out tracks, R the ranked recommendations (at most 500), seed tracks never count.

- R-precision = |G ∩ R[1:|G|]| / |G| (``r_precision_tracks``) and, with the final scoring's artist credit,
  (|S_T ∩ G_T| + 0.25 |S_A ∩ G_A|) / |G_T| (``r_precision``): S_T = R[1:|G_T|], G_A the distinct artists of G,
  S_A the distinct artists of the non-hits of S_T (a near miss earns a quarter, once per artist).
  Source: Chen, Lamere, Schedl, Zamani, "Recsys Challenge 2018: Automatic Music Playlist Continuation", RecSys 2018.
  (The paper's text was not readable here: the formula is as secondary sources quote it, and the scope of S_A as
  the challenge winner's evaluator computes it, github.com/layer6ai-labs/RecSys2018 EvaluatorRPrecisionArtist.java.)
- NDCG = DCG / IDCG, DCG = rel_1 + sum_{i>=2} rel_i / log2(i), IDCG the same with the |G ∩ R| hits ranked first
  (0 hits: NDCG 0).
- Recommended songs clicks = floor((rank of the first hit - 1) / 10), 51 when no recommendation hits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_RECOMMENDATIONS = 500  # the challenge's list length
ARTIST_CREDIT = 0.25
NO_HIT_CLICKS = 51  # one more than the 50 pages of 10 a 500-track list has
METRICS = ("r_precision", "r_precision_tracks", "ndcg", "clicks")


@dataclass(frozen=True)
class Scores:
    """The challenge's metrics of one playlist (each documented in the module docstring)."""

    r_precision: float
    r_precision_tracks: float
    ndcg: float
    clicks: int


def _discounts(n: int) -> np.ndarray:
    """Weights of ranks 1..n: 1 for rank 1, 1/log2(i) from rank 2 (the challenge's DCG), shape (n,)."""
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return np.where(ranks == 1, 1.0, 1.0 / np.log2(np.maximum(ranks, 2)))


def score(recommended: np.ndarray, held_out: np.ndarray, track_artist: np.ndarray | None = None) -> Scores:
    """The challenge's metrics of one ranked list.

    Parameters
    ----------
    recommended : ndarray of shape (n_recommended,), int, track ids in rank order, distinct (only the first 500
        count)
    held_out : ndarray of shape (n_held_out,), int, the held-out track ids (G); duplicates are counted once
    track_artist : ndarray of shape (n_tracks,), int, the artist of every track id, or None for no artist credit
        (then ``r_precision`` equals ``r_precision_tracks``)

    Returns
    -------
    Scores
    """
    recommended = np.asarray(recommended)[:N_RECOMMENDATIONS]
    truth = np.unique(held_out)
    if truth.size == 0:
        raise ValueError("held_out is empty: a held-out playlist needs at least one withheld track")
    hit = np.isin(recommended, truth)
    top = recommended[:truth.size]
    top_hit = hit[:truth.size]
    track_hits = int(top_hit.sum())
    credit = 0.0
    if track_artist is not None:
        held_out_artists = np.unique(track_artist[truth])  # G_A
        near_miss_artists = np.unique(track_artist[top[~top_hit]])  # S_A: the non-hits of R[1:|G|]
        credit = ARTIST_CREDIT * np.intersect1d(held_out_artists, near_miss_artists, assume_unique=True).size
    n_hits = int(hit.sum())
    weights = _discounts(recommended.size)
    dcg = float(weights[hit].sum())
    idcg = float(weights[:n_hits].sum())
    first = np.flatnonzero(hit)
    # At most 0.25 per non-hit of R[1:|G|], so the credited value stays <= 1.
    return Scores(r_precision=(track_hits + credit) / truth.size,
                  r_precision_tracks=track_hits / truth.size,
                  ndcg=dcg / idcg if idcg > 0 else 0.0,
                  clicks=int(first[0] // 10) if first.size else NO_HIT_CLICKS)
