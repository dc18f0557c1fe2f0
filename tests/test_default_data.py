"""The embedded default data set: built once through synth -> ingest -> features, then reused."""

import pytest

from raysweep import default_data
from raysweep.feature_matrix import read_feature_matrix


@pytest.mark.slow
def test_default_features_are_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSWEEP_CACHE", str(tmp_path))
    path = default_data.default_features(playlists=1000, quiet=True)
    matrix = read_feature_matrix(path)
    assert matrix.values.shape == (1000, 13)
    assert matrix.metadata["source"] == "audio" and matrix.metadata["scaling"]["kind"] == "standard"
    assert (path.parent / "dataset" / "playlists").is_dir()
    built_at = path.stat().st_mtime_ns
    assert default_data.default_features(playlists=1000, quiet=True) == path
    assert path.stat().st_mtime_ns == built_at  # the second call reads the cache, it does not rebuild
    assert [p.name for p in tmp_path.iterdir()] == [path.parent.name]  # no leftovers beside it
