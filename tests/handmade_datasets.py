"""Hand-made ingest-shaped datasets for the feature tests.

No generator and no ingest: a few playlists written directly in ingest's layout.
"""

import pyarrow as pa
import pyarrow.parquet as pq


def write_dataset(root, playlists: dict[int, list[str]]):
    """An ingest-shaped dataset (playlists/, tracks/, playlist_tracks/) from ``{pid: [track_uri, ...]}``."""
    uris = list(dict.fromkeys(uri for tracks in playlists.values() for uri in tracks))
    track_id = {uri: i for i, uri in enumerate(uris)}
    for name in ("playlists", "tracks", "playlist_tracks"):
        (root / name).mkdir(parents=True)
    pq.write_table(pa.table({"pid": pa.array(list(playlists), pa.int64()),
                             "name": [f"list {pid}" for pid in playlists]}), root / "playlists" / "part-0.parquet")
    pq.write_table(pa.table({"track_id": pa.array(range(len(uris)), pa.int64()), "track_uri": uris}),
                   root / "tracks" / "part-0.parquet")
    rows = [(pid, pos, track_id[uri]) for pid, tracks in playlists.items() for pos, uri in enumerate(tracks)]
    pid, pos, tid = map(list, zip(*rows))
    pq.write_table(pa.table({"pid": pa.array(pid, pa.int64()), "pos": pa.array(pos, pa.int32()),
                             "track_id": pa.array(tid, pa.int64())}), root / "playlist_tracks" / "part-0.parquet")
    return root
