"""Writing a data set: :func:`generate` fills a new folder with the slices, the audio-feature and planted tables.

Each slice has its own random stream (``SeedSequence(seed, spawn_key=(1, slice_index))``), so slices are generated
in parallel, independently of the worker count, and never held in memory together; each worker builds the catalog
once. The parent gathers only what it needs to write the two tables and the summary.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from raysweep.mpd import map_slices
from raysweep.storage import atomic_dir
from raysweep.synth.audio import audio_features
from raysweep.synth.catalog import Catalog, build_catalog, build_profiles
from raysweep.synth.parameters import OUTLIER_KINDS, OUTLIER_RATE, SLICE_SEED
from raysweep.synth.playlists import draw_playlists
from raysweep.synth.slice_json import slice_text, track_blocks


@dataclass
class _SliceStats:
    playlists: int
    track_entries: int
    json_bytes: int
    used_tracks: np.ndarray
    pid: np.ndarray
    profile: np.ndarray
    outlier: np.ndarray  # 0 for none, else 1 + index in OUTLIER_KINDS


_worker_catalog: Catalog | None = None


def _catalog_for(seed: int) -> Catalog:
    """The catalog, built once per process (workers build their own rather than receive ~100 MB pickled)."""
    global _worker_catalog
    if _worker_catalog is None or _worker_catalog.seed != seed:
        _worker_catalog = build_catalog(seed)
    return _worker_catalog


def _generate_slice(folder: str, index: int, first_pid: int, count: int, n_profiles: int, seed: int,
                    outlier_rate: float) -> _SliceStats:
    """Write one slice file and return what the parent needs to summarize it."""
    catalog = _catalog_for(seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SLICE_SEED, index)))
    drawn = draw_playlists(rng, catalog, build_profiles(n_profiles, seed), first_pid, count, outlier_rate)
    used = np.unique(np.concatenate(drawn.track_lists))
    text = slice_text(drawn.records, drawn.track_lists, used, track_blocks(catalog, used), first_pid, count)
    path = Path(folder) / f"mpd.slice.{first_pid}-{first_pid + count - 1}.json"
    data = text.encode("ascii")
    path.write_bytes(data)  # the whole output folder is atomic (see generate), so one file need not be
    return _SliceStats(count, sum(t.size for t in drawn.track_lists), len(data), used,
                       np.arange(first_pid, first_pid + count, dtype=np.int64), drawn.profile.astype(np.int32),
                       drawn.outlier.astype(np.int8))


def generate(out: str | os.PathLike, playlists: int, slice_size: int = 1000, profiles: int = 17, seed: int = 0,
             workers: int | None = None, outlier_rate: float = OUTLIER_RATE) -> dict:
    """Write an MPD-format data set of ``playlists`` playlists into the new folder ``out``.

    Parameters
    ----------
    out : path
        Folder to create; it must not exist or be empty. It appears only when complete.
    playlists : int
        Number of playlists (pids 0..playlists-1).
    slice_size : int
        Playlists per slice file (the real MPD: 1000).
    profiles : int
        Number of planted taste profiles.
    seed : int
        Same seed, same bytes.
    workers : int or None
        Processes generating slices in parallel; None means all cores, 1 means in this process.
    outlier_rate : float
        Share of outlier playlists, in [0, 1]; each is live, sounds, spoken or short with equal probability.

    Returns
    -------
    summary : dict
        out, playlists, slices, track_entries, unique_tracks, json_bytes, profiles, outliers (count per kind),
        outlier_rate, seed, seconds.
    """
    for option, value in (("playlists", playlists), ("slice_size", slice_size), ("profiles", profiles)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if not 0 <= outlier_rate <= 1:
        raise ValueError(f"outlier_rate must be between 0 and 1, got {outlier_rate!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output folder {out} exists and is not empty; choose a new folder")
    started = time.perf_counter()
    starts = list(range(0, playlists, slice_size))
    workers = min(workers or os.cpu_count() or 1, len(starts))
    catalog = _catalog_for(seed)
    used = np.zeros(catalog.track_album.size, dtype=bool)
    pids, profile_of, outlier_of = [], [], []
    totals = {"playlists": 0, "track_entries": 0, "json_bytes": 0}
    with atomic_dir(out) as tmp:
        data = tmp / "data"
        data.mkdir()
        tasks = [(str(data), i, start, min(slice_size, playlists - start), profiles, seed, outlier_rate)
                 for i, start in enumerate(starts)]
        with tqdm(total=len(tasks), unit="slice", desc="synth", disable=not sys.stderr.isatty()) as bar:
            for stats in map_slices(_generate_slice, tasks, workers):
                used[stats.used_tracks] = True
                pids.append(stats.pid)
                profile_of.append(stats.profile)
                outlier_of.append(stats.outlier)
                totals["playlists"] += stats.playlists
                totals["track_entries"] += stats.track_entries
                totals["json_bytes"] += stats.json_bytes
                bar.update()
                bar.set_postfix(playlists_per_s=f"{totals['playlists'] / bar.format_dict['elapsed']:.0f}"
                                if bar.format_dict["elapsed"] else "-")
        features = audio_features(catalog, np.flatnonzero(used))
        pq.write_table(features, tmp / "track_audio_features.parquet", compression="zstd")
        kinds = np.concatenate(outlier_of)
        planted = pa.table({"pid": np.concatenate(pids), "profile": np.concatenate(profile_of),
                            "outlier": pa.array(np.array(("", *OUTLIER_KINDS), dtype=object)[kinds], pa.string())})
        pq.write_table(planted, tmp / "planted_profiles.parquet", compression="zstd")
    counts = np.bincount(kinds, minlength=len(OUTLIER_KINDS) + 1)[1:]
    return {"out": str(out), "slices": len(starts), **totals, "unique_tracks": int(used.sum()),
            "profiles": profiles, "outliers": dict(zip(OUTLIER_KINDS, counts.tolist())),
            "outlier_rate": outlier_rate, "seed": seed, "seconds": round(time.perf_counter() - started, 3)}
