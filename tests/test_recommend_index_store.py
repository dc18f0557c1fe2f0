"""The saved index: loaded back equal to a fresh build, reused while its inputs are unchanged, rebuilt when not."""

import os
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from raysweep.feature_matrix import read_feature_matrix
from raysweep.recommend.index import build_index
from raysweep.recommend.index_store import FINGERPRINT_FILE, cached_index, load_index, save_index


@pytest.fixture(scope="module")
def inputs(generated_mpd, tmp_path_factory):
    """(dataset copy, feature matrix) of the generated playlists: the copy may be touched by a test."""
    from raysweep.features.audio import build_audio_features

    folder = tmp_path_factory.mktemp("index_store")
    dataset = folder / "dataset"
    shutil.copytree(generated_mpd / "dataset", dataset)
    build_audio_features(dataset, folder / "features.parquet",
                         table=generated_mpd / "mpd" / "track_audio_features.parquet")
    return dataset, read_feature_matrix(folder / "features.parquet")


def _assert_same_index(a, b):
    for name in ("pid", "lengths", "popularity", "popular", "features", "title_code", "title_rows", "title_starts"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.track_features, b.track_features, equal_nan=True)
    for name in ("by_playlist", "by_track"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.shape == right.shape and (left != right).nnz == 0, name
        assert isinstance(right, sp.csr_matrix) and right.dtype == left.dtype
    assert a.catalog.uri.equals(b.catalog.uri) and a.catalog.name.equals(b.catalog.name)
    assert a.catalog.artist_name.equals(b.catalog.artist_name)
    assert np.array_equal(a.catalog.artist, b.catalog.artist)
    assert list(a.titles) == list(b.titles)
    assert (a.track_feature_source, a.feature_source, a.excluded) == (b.track_feature_source, b.feature_source,
                                                                      b.excluded)


def test_a_saved_index_loads_back_equal_to_the_built_one(inputs, tmp_path):
    dataset, matrix = inputs
    built = build_index(dataset, matrix, exclude_pids=matrix.pid[:50])
    save_index(built, tmp_path / "index", {"format": "test"})
    loaded = load_index(tmp_path / "index")
    _assert_same_index(built, loaded)
    some = built.catalog.uri.to_pylist()[:3] + ["spotify:track:unknown"]
    assert loaded.catalog.ids(some).tolist() == [0, 1, 2, -1]


def test_the_saved_index_is_reused_while_its_inputs_are_unchanged(inputs, tmp_path):
    dataset, matrix = inputs
    said = []
    first = cached_index(tmp_path / "index", dataset, matrix, say=said.append)
    second = cached_index(tmp_path / "index", dataset, matrix, say=said.append)
    assert said[0].startswith("index built and saved") and said[1].startswith("index loaded from")
    _assert_same_index(first, second)


def test_other_excluded_playlists_rebuild_the_saved_index(inputs, tmp_path):
    dataset, matrix = inputs
    said = []
    cached_index(tmp_path / "index", dataset, matrix, exclude_pids=matrix.pid[:10], say=said.append)
    index = cached_index(tmp_path / "index", dataset, matrix, exclude_pids=matrix.pid[:20], say=said.append)
    assert said[1] == f"index built and saved to {tmp_path / 'index'} (the saved one was built from other inputs)"
    assert index.excluded == 20 and not np.isin(index.pid, matrix.pid[:20]).any()


def test_a_changed_dataset_file_rebuilds_the_saved_index(inputs, tmp_path):
    dataset, matrix = inputs
    said = []
    cached_index(tmp_path / "index", dataset, matrix, say=said.append)
    part = next((dataset / "playlist_tracks").rglob("*.parquet"))
    status = part.stat()
    os.utime(part, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # as a re-ingest would leave it
    cached_index(tmp_path / "index", dataset, matrix, say=said.append)
    assert said[1].endswith("(the saved one was built from other inputs)")


def test_an_unwritable_index_folder_still_answers(inputs, tmp_path):
    dataset, matrix = inputs
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")  # the index folder's parent is a file: saving fails with an OSError
    said = []
    index = cached_index(blocker / "index", dataset, matrix, say=said.append)
    assert index.by_playlist.nnz > 0 and said[0].startswith(f"index built; not saved to {blocker / 'index'}")
    assert not (blocker / FINGERPRINT_FILE).exists()
