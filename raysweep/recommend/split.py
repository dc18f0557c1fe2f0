"""A held-out split built like the RecSys Challenge 2018's challenge set.

The challenge set (https://recsys-challenge.spotify.com/challenge_readme; Zamani et al. 2019, section 3) held 10
categories of 1,000 playlists, each giving a title and/or some seed tracks and withholding the rest. Here the
categories are drawn, seeded, from the playlists of the sweep's feature matrix: ``per_category`` each (1,000 at
full scale, 2% of the playlists per category when that is fewer), categories needing the most seeds first so the
long playlists go to them. A playlist qualifies for a category when it has a title (if the category shows one)
and at least ``n_seed + MIN_HELD_OUT`` tracks. Seeds are the first (or random) distinct tracks; every
other distinct track of the playlist is held out (G). Held-out playlists are then excluded from the index.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raysweep.dataset import open_table

MIN_HELD_OUT = 5  # distinct tracks a held-out playlist withholds at least
FULL_SCALE_PER_CATEGORY = 1000
SMALL_DATA_SHARE = 0.02  # per category on small data: 2% of the playlists (20% held out in all)


@dataclass(frozen=True)
class Category:
    """A challenge category: ``n_seed`` seed tracks (the first ones, or random ones), title shown or not."""

    name: str
    n_seed: int
    title: bool
    random: bool = False


CATEGORIES = (
    Category("title only", 0, True), Category("title + first 1", 1, True), Category("title + first 5", 5, True),
    Category("first 5, no title", 5, False), Category("title + first 10", 10, True),
    Category("first 10, no title", 10, False), Category("title + first 25", 25, True),
    Category("title + random 25", 25, True, True), Category("title + first 100", 100, True),
    Category("title + random 100", 100, True, True),
)


@dataclass
class HeldOut:
    """The held-out playlists, their seeds and their withheld tracks (ragged arrays in CSR layout).

    Attributes
    ----------
    pid : ndarray of shape (n_held,), int64
    category : ndarray of shape (n_held,), int64, index into ``CATEGORIES``
    title : list of str or None, length n_held, the title shown (None when the category hides it)
    seed_ptr : ndarray of shape (n_held + 1,); seed_tracks : ndarray (n_seed_total,), int64 track ids
    truth_ptr : ndarray of shape (n_held + 1,); truth_tracks : ndarray (n_truth_total,), int64 track ids
    per_category : int, the target per category (a category may get fewer when few playlists qualify)
    seed : int
    """

    pid: np.ndarray
    category: np.ndarray
    title: list
    seed_ptr: np.ndarray
    seed_tracks: np.ndarray
    truth_ptr: np.ndarray
    truth_tracks: np.ndarray
    per_category: int
    seed: int

    def seeds(self, i: int) -> np.ndarray:
        return self.seed_tracks[self.seed_ptr[i]:self.seed_ptr[i + 1]]

    def truth(self, i: int) -> np.ndarray:
        return self.truth_tracks[self.truth_ptr[i]:self.truth_ptr[i + 1]]

    def key(self) -> str:
        """A digest of the held-out pids: refits made for this split are reusable only for the same split."""
        return hashlib.sha256(np.sort(self.pid).tobytes()).hexdigest()[:16]


def default_per_category(n_playlists: int) -> int:
    return max(1, min(FULL_SCALE_PER_CATEGORY, int(round(SMALL_DATA_SHARE * n_playlists))))


def make_split(dataset: str | os.PathLike, candidates: np.ndarray, per_category: int | None = None,
               seed: int = 0) -> HeldOut:
    """Draw the held-out playlists among ``candidates`` (pids, e.g. the feature matrix's).

    Parameters
    ----------
    dataset : ingest output folder
    candidates : ndarray of shape (n,), int64, the pids that may be held out
    per_category : playlists per category; None: :func:`default_per_category`
    seed : seed of the draw and of the random seed tracks

    Returns
    -------
    HeldOut
    """
    per_category = default_per_category(len(candidates)) if per_category is None else per_category
    if per_category < 1:
        raise ValueError(f"--per-category {per_category}: must be a positive integer")
    rng = np.random.default_rng(seed)
    playlists = open_table(dataset, "playlists", ["pid", "name", "name_normalized", "num_tracks"]).to_table(
        columns=["pid", "name", "name_normalized", "num_tracks"],
        filter=pc.is_in(pc.field("pid"), pa.array(candidates)))
    pid = playlists.column("pid").to_numpy()
    length = playlists.column("num_tracks").to_numpy()
    titled = pc.fill_null(pc.greater(pc.utf8_length(playlists.column("name_normalized")), 0), False).to_numpy(
        zero_copy_only=False)

    # Eligibility by num_tracks (duplicates included): reading every entry to count distinct tracks would cost a
    # scan of the whole table; the few playlists whose duplicates leave nothing to withhold are dropped below.
    taken = np.zeros(len(pid), dtype=bool)
    chosen: list[tuple[int, int]] = []  # (row in playlists, category)
    for c in sorted(range(len(CATEGORIES)), key=lambda c: -CATEGORIES[c].n_seed):
        category = CATEGORIES[c]
        eligible = np.flatnonzero(~taken & (length >= category.n_seed + MIN_HELD_OUT)
                                  & (titled | (not category.title)))
        picked = rng.choice(eligible, size=min(per_category, eligible.size), replace=False)
        taken[picked] = True
        chosen.extend((int(row), c) for row in np.sort(picked))
    chosen.sort(key=lambda item: (item[1], item[0]))

    held_pid = pid[[row for row, _ in chosen]].astype(np.int64)
    entries = open_table(dataset, "playlist_tracks", ["pid", "pos", "track_id"]).to_table(
        columns=["pid", "pos", "track_id"], filter=pc.is_in(pc.field("pid"), pa.array(held_pid)))
    e_pid, e_pos = entries.column("pid").to_numpy(), entries.column("pos").to_numpy()
    e_track = entries.column("track_id").to_numpy().astype(np.int64)
    order = np.lexsort((e_pos, e_pid))
    e_pid, e_track = e_pid[order], e_track[order]
    # Distinct tracks in order of first position: keep an entry when its (pid, track) pair was not seen before.
    _, first = np.unique(np.stack([e_pid, e_track]), axis=1, return_index=True)
    first = np.sort(first)
    e_pid, e_track = e_pid[first], e_track[first]
    starts = np.searchsorted(e_pid, held_pid, side="left")
    ends = np.searchsorted(e_pid, held_pid, side="right")

    names = playlists.column("name").to_pylist()
    kept, seed_parts, truth_parts, titles = [], [], [], []
    for i, (row, c) in enumerate(chosen):
        tracks = e_track[starts[i]:ends[i]]
        category = CATEGORIES[c]
        if tracks.size <= category.n_seed:
            continue
        if category.random:
            is_seed = np.zeros(tracks.size, dtype=bool)
            is_seed[rng.choice(tracks.size, size=category.n_seed, replace=False)] = True
        else:
            is_seed = np.arange(tracks.size) < category.n_seed
        kept.append(i)
        seed_parts.append(tracks[is_seed])
        truth_parts.append(tracks[~is_seed])
        titles.append(names[row] if category.title else None)
    return HeldOut(pid=held_pid[kept], category=np.array([chosen[i][1] for i in kept], dtype=np.int64), title=titles,
                   seed_ptr=_offsets(seed_parts), seed_tracks=_concat(seed_parts),
                   truth_ptr=_offsets(truth_parts), truth_tracks=_concat(truth_parts),
                   per_category=per_category, seed=seed)


def _offsets(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)
