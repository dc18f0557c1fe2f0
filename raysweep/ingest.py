"""MPD JSON slices to a Parquet dataset: ``python -m raysweep.ingest SRC OUT [--allow-rejects] [--workers N]``.

OUT gets three Parquet datasets, each readable with ``pyarrow.dataset.dataset(OUT / name)`` (their schemas, and
how later stages read them, are in :mod:`raysweep.dataset`):

- ``playlists``: pid, name, name_normalized, collaborative (bool), modified_at, num_tracks, num_albums,
  num_artists, num_followers, num_edits, duration_ms, description;
- ``tracks``: track_id (dense int32, by first occurrence in slice order), track_uri, track_name, artist_uri,
  artist_name, album_uri, album_name, duration_ms;
- ``playlist_tracks``: pid, pos, track_id;

plus ``manifest.csv`` (one row per slice: file, playlists_read, playlists_rejected, error) and ``rejects.csv``
(one row per rejected playlist: file, index, pid, reason).

Slices are parsed and checked in parallel (orjson; :func:`raysweep.mpd.playlist_violations`), each worker
returning Arrow tables that name tracks by URI; this process then assigns the global track ids in slice order
and streams row groups to disk, so memory holds a few slices and the URI dictionary, never the data set.
Output appears in OUT only when complete, and the same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from raysweep.dataset import PLAYLIST_TRACKS_SCHEMA, PLAYLISTS_SCHEMA, TABLES, TRACKS_SCHEMA
from raysweep.mpd import check_playlist, map_slices, normalize_name, read_slice, slice_files, slice_pid_range
from raysweep.storage import atomic_dir

# Row groups of ~1M rows make column scans cheap; files roll so no single file grows past ~16 row groups.
ROW_GROUP_ROWS = {"playlists": 1 << 17, "tracks": 1 << 18, "playlist_tracks": 1 << 20}
ROW_GROUPS_PER_FILE = 16
_TRACK_FIELDS = ("track_uri", "track_name", "artist_uri", "artist_name", "album_uri", "album_name", "duration_ms")


class RejectedInputError(ValueError):
    """Raised after a complete ingest when playlists or files were rejected and rejects were not allowed.

    The output and its manifest are written; ``summary`` is what :func:`ingest` would have returned.
    """

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


@dataclass
class _SliceTables:
    """One slice, parsed and checked: accepted playlists as tables, tracks still named by URI."""

    file: str
    json_bytes: int
    read: int
    rejected: list  # (index in file, pid or None, reason)
    error: str | None
    playlists: pa.Table
    tracks: pa.Table  # the slice's distinct tracks in first-occurrence order (no track_id yet)
    entry_track: np.ndarray  # (n_entries,) int32: row of ``tracks`` for each playlist entry
    entry_pid: np.ndarray  # (n_entries,) int64
    entry_pos: np.ndarray  # (n_entries,) int32


def _read_slice_tables(path: str) -> _SliceTables:
    content = read_slice(path)
    pid_range = slice_pid_range(path)
    accepted, rejected = [], []
    entries: dict[str, list] = {key: [] for key in _TRACK_FIELDS}  # one value per playlist entry
    for index, playlist in enumerate(content.playlists):
        problems, track_columns = check_playlist(playlist, pid_range)
        if problems:
            pid = playlist.get("pid") if isinstance(playlist, dict) else None
            rejected.append((index, pid, "; ".join(problems)))
            continue
        accepted.append(playlist)
        for key in _TRACK_FIELDS:
            entries[key].extend(track_columns[key])

    names = [playlist["name"] for playlist in accepted]
    counts = np.array([playlist["num_tracks"] for playlist in accepted], dtype=np.int64)
    pids = np.array([playlist["pid"] for playlist in accepted], dtype=np.int64)
    playlists = pa.table({
        "pid": pids,
        "name": pa.array(names, pa.string()),
        "name_normalized": pa.array([normalize_name(name) for name in names], pa.string()),
        "collaborative": pa.array([playlist["collaborative"] == "true" for playlist in accepted], pa.bool_()),
        **{key: pa.array([playlist[key] for playlist in accepted], PLAYLISTS_SCHEMA.field(key).type)
           for key in ("modified_at", "num_tracks", "num_albums", "num_artists", "num_followers", "num_edits",
                       "duration_ms")},
        "description": pa.array([playlist.get("description") for playlist in accepted], pa.string()),
    }, schema=PLAYLISTS_SCHEMA)

    # Arrow's dictionary encoding numbers distinct URIs by first occurrence: the slice-local track rows.
    encoded = pa.array(entries["track_uri"], pa.string()).dictionary_encode()
    entry_track = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    first_entry = pa.array(np.unique(entry_track, return_index=True)[1])
    tracks = pa.table({"track_uri": encoded.dictionary, **{
        key: pa.array(entries[key], TRACKS_SCHEMA.field(key).type).take(first_entry) for key in _TRACK_FIELDS[1:]}})
    # pos equals the index in the playlist (checked), so it is a running count restarting at each playlist.
    starts = np.cumsum(counts) - counts
    entry_pos = (np.arange(int(counts.sum())) - np.repeat(starts, counts)).astype(np.int32)
    return _SliceTables(Path(path).name, Path(path).stat().st_size, len(content.playlists), rejected, content.error,
                        playlists, tracks, entry_track, np.repeat(pids, counts), entry_pos)


class _DatasetWriter:
    """Stream tables into ``folder/part-NNNNN.parquet`` files with row groups of a fixed number of rows."""

    def __init__(self, folder: Path, schema: pa.Schema, row_group_rows: int):
        self.folder, self.schema, self.row_group_rows = folder, schema, row_group_rows
        folder.mkdir()
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.writer: pq.ParquetWriter | None = None
        self.files = 0
        self.groups_in_file = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered += table.num_rows
        while self.buffered >= self.row_group_rows:
            merged = pa.concat_tables(self.buffer)
            self._write_group(merged.slice(0, self.row_group_rows))
            rest = merged.slice(self.row_group_rows)
            self.buffer, self.buffered = [rest], rest.num_rows

    def close(self) -> None:
        if self.buffered or self.files == 0:  # an empty dataset still gets one file, so it has a schema
            self._write_group(pa.concat_tables(self.buffer) if self.buffer else self.schema.empty_table())
        if self.writer is not None:
            self.writer.close()

    def _write_group(self, table: pa.Table) -> None:
        if self.writer is None or self.groups_in_file == ROW_GROUPS_PER_FILE:
            if self.writer is not None:
                self.writer.close()
            path = self.folder / f"part-{self.files:05d}.parquet"
            self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
            self.files += 1
            self.groups_in_file = 0
        self.writer.write_table(table.combine_chunks(), row_group_size=self.row_group_rows)
        self.groups_in_file += 1
        self.rows += table.num_rows


def ingest(src: str | os.PathLike, out: str | os.PathLike, workers: int | None = None,
           allow_rejects: bool = False) -> dict:
    """Convert the MPD slice files of ``src`` into the Parquet dataset ``out``.

    Parameters
    ----------
    src : path
        A folder of ``mpd.slice.<first>-<last>.json`` files (the MPD's ``data/`` folder) or one slice file.
    out : path
        Output folder; replaced as a whole when the new one is complete.
    workers : int or None
        Processes parsing slices; None means all cores, 1 means in this process.
    allow_rejects : bool
        If False, rejected playlists or damaged files raise :class:`RejectedInputError` (after writing).

    Returns
    -------
    summary : dict
        src, out, files, files_with_errors, playlists, playlists_rejected, tracks, track_entries, json_bytes,
        parquet_bytes, workers, seconds.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or empty ``src``; a pid found twice (the error names the files); bad ``workers``.
    RejectedInputError
        Something was rejected and ``allow_rejects`` is False.
    """
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    started = time.perf_counter()
    files = slice_files(src)
    workers = min(workers or os.cpu_count() or 1, len(files))
    track_ids: dict[str, int] = {}
    pids_by_file: list[np.ndarray] = []
    manifest, rejects, damaged = [], [], []
    totals = {"playlists": 0, "playlists_rejected": 0, "track_entries": 0, "json_bytes": 0}
    out = Path(out)
    with atomic_dir(out) as tmp:
        writers = {name: _DatasetWriter(tmp / name, schema, ROW_GROUP_ROWS[name]) for name, schema in TABLES.items()}
        with tqdm(total=len(files), unit="slice", desc="ingest", disable=not sys.stderr.isatty()) as bar:
            for part in map_slices(_read_slice_tables, [(str(path),) for path in files], workers):
                known = len(track_ids)
                uris = part.tracks.column("track_uri").to_pylist()
                # setdefault evaluates len() before inserting: a new URI gets the next dense id.
                global_id = np.fromiter((track_ids.setdefault(uri, len(track_ids)) for uri in uris),
                                        dtype=np.int32, count=len(uris))
                new = global_id >= known
                writers["playlists"].write(part.playlists)
                writers["tracks"].write(part.tracks.filter(pa.array(new)).add_column(
                    0, "track_id", pa.array(global_id[new])).select(TRACKS_SCHEMA.names))
                writers["playlist_tracks"].write(pa.table({
                    "pid": part.entry_pid, "pos": part.entry_pos, "track_id": global_id[part.entry_track]},
                    schema=PLAYLIST_TRACKS_SCHEMA))
                pids_by_file.append(part.playlists.column("pid").to_numpy())
                manifest.append((part.file, part.read, len(part.rejected), _manifest_error(part)))
                rejects.extend((part.file, index, pid, reason) for index, pid, reason in part.rejected)
                if part.error:
                    damaged.append(part.file)
                totals["playlists"] += part.playlists.num_rows
                totals["playlists_rejected"] += len(part.rejected)
                totals["track_entries"] += part.entry_track.size
                totals["json_bytes"] += part.json_bytes
                bar.update()
                elapsed = bar.format_dict["elapsed"]
                bar.set_postfix(playlists_per_s=f"{totals['playlists'] / elapsed:.0f}" if elapsed else "-")
        _check_unique_pids(pids_by_file, [path.name for path in files])
        for writer in writers.values():
            writer.close()
        _write_csv(tmp / "manifest.csv", ("file", "playlists_read", "playlists_rejected", "error"), manifest)
        _write_csv(tmp / "rejects.csv", ("file", "index", "pid", "reason"), rejects)
        parquet_bytes = sum(path.stat().st_size for path in tmp.rglob("*.parquet"))
    summary = {"src": str(src), "out": str(out), "files": len(files), "files_with_errors": len(damaged), **totals,
               "tracks": len(track_ids), "parquet_bytes": parquet_bytes, "workers": workers,
               "seconds": round(time.perf_counter() - started, 3)}
    if (totals["playlists_rejected"] or damaged) and not allow_rejects:
        raise RejectedInputError(
            f"{totals['playlists_rejected']} playlists rejected and {len(damaged)} damaged files "
            f"({', '.join(damaged[:3])}{', ...' if len(damaged) > 3 else ''}); reasons in {out / 'manifest.csv'} "
            f"and {out / 'rejects.csv'}; pass --allow-rejects (allow_rejects=True) to accept", summary)
    return summary


def _manifest_error(part: _SliceTables) -> str:
    """The manifest's error cell: the file's own problem, then the first rejection reasons."""
    messages = [part.error] if part.error else []
    messages += [f"playlist {index} (pid {pid}): {reason}" for index, pid, reason in part.rejected[:3]]
    if len(part.rejected) > 3:
        messages.append(f"... {len(part.rejected) - 3} more in rejects.csv")
    return " | ".join(messages)


def _check_unique_pids(pids_by_file: list[np.ndarray], names: list[str]) -> None:
    pids = np.concatenate(pids_by_file) if pids_by_file else np.empty(0, np.int64)
    values, counts = np.unique(pids, return_counts=True)
    if (counts > 1).any():
        pid = int(values[np.argmax(counts > 1)])
        holders = [name for name, file_pids in zip(names, pids_by_file) for _ in range(int((file_pids == pid).sum()))]
        raise ValueError(f"pid {pid} appears more than once: in {' and '.join(holders)}")


def _write_csv(path: Path, header: tuple, rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raysweep.ingest",
                                     description="Convert MPD JSON slice files into a Parquet dataset.")
    parser.add_argument("src", help="folder of mpd.slice.*.json files (the MPD's data/ folder works as is)")
    parser.add_argument("out", help="output folder (replaced when the new one is complete)")
    parser.add_argument("--allow-rejects", action="store_true",
                        help="exit 0 even when playlists or files were rejected")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    try:
        summary = ingest(args.src, args.out, workers=args.workers, allow_rejects=args.allow_rejects)
    except RejectedInputError as exc:
        print(json.dumps(exc.summary))
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
