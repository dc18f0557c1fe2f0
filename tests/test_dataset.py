"""Tests of raysweep.dataset: open_table's checks and the pid index (dense and sparse pids)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from raysweep.dataset import PLAYLISTS_SCHEMA, PidIndex, open_table


@pytest.mark.parametrize("spread", [1, 10**7])  # MPD-like dense pids (a direct table) and sparse ones (a search)
def test_pid_index_maps_known_pids_to_rows_and_others_to_minus_one(spread):
    rng = np.random.default_rng(0)
    pid = (rng.permutation(1000)[:700] * spread).astype(np.int64)
    query = np.concatenate([rng.integers(-5, pid.max() + 10, 5000), pid])
    rows = {p: i for i, p in enumerate(pid.tolist())}
    assert np.array_equal(PidIndex(pid).lookup(query), np.array([rows.get(q, -1) for q in query.tolist()]))


@pytest.mark.parametrize("spread", [1, 10**7])
def test_pid_index_with_values_maps_known_pids_to_their_value_in_its_dtype(spread):
    pid = np.array([4, 0, 9, 2], dtype=np.int64) * spread
    found = PidIndex(pid, values=np.array([3, 3, 0, 1], dtype=np.int32)).lookup(np.array([9, 5, 0, 2]) * spread)
    assert found.dtype == np.int32 and found.tolist() == [0, -1, 3, 1]


def test_pid_index_values_need_one_per_pid():
    with pytest.raises(ValueError, match=r"one entry per pid \(3\), got shape \(2,\)"):
        PidIndex([1, 2, 3], values=[0, 1])


@pytest.mark.parametrize("pid", [[], [5, 10**9]])  # an empty index, and a sparse one
def test_pid_index_without_the_pid_gives_minus_one(pid):
    assert PidIndex(np.array(pid, dtype=np.int64)).lookup(np.array([7, -1])).tolist() == [-1, -1]


def test_lookup_known_names_the_unknown_pids_and_where_they_are_referenced():
    index = PidIndex(np.arange(10), source="playlists/")
    assert index.lookup_known(np.array([3, 9]), where="x").tolist() == [3, 9]
    with pytest.raises(ValueError, match=r"^dataset D: playlist_tracks references pid 12 that is not in playlists/ "
                                         r"\(2 more unknown pids, e.g. 40, 41\)$"):
        index.lookup_known(np.array([41, 3, 12, 40, 12]), where="dataset D: playlist_tracks")


def test_open_table_names_a_missing_table_and_missing_columns(tmp_path):
    with pytest.raises(FileNotFoundError, match="no playlists/ folder"):
        open_table(tmp_path, "playlists", ["pid"])
    (tmp_path / "playlists").mkdir()
    pq.write_table(PLAYLISTS_SCHEMA.empty_table().select(["pid", "name"]), tmp_path / "playlists" / "part.parquet")
    assert open_table(tmp_path, "playlists", ["pid"]).schema.names == ["pid", "name"]
    with pytest.raises(ValueError, match="playlists/ lacks columns num_tracks, description"):
        open_table(tmp_path, "playlists", ["pid", "num_tracks", "description"])
