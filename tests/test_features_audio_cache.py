"""The SQLite track cache of audio features: table imports, stored records, lookups."""

import numpy as np
import pyarrow as pa
import pytest

from raysweep.dataset import AUDIO_FEATURES
from raysweep.features.audio_cache import AudioFeatureCache

from test_features_audio import feature_table


def test_table_import_fills_only_the_fields_an_ok_row_lacks(tmp_path):
    uris = ["spotify:track:a"]
    with AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        cache.import_table(pa.Table.from_pandas(feature_table(uris, seed=0).drop(columns=["tempo"])), source="t1")
        _, has = cache.lookup(pa.array(uris))
        assert has.tolist() == [False]  # no tempo yet
        cache.import_table(pa.Table.from_pandas(feature_table(uris, seed=1)), source="t2")
        values, has = cache.lookup(pa.array(uris))
    assert has.tolist() == [True]
    first, second = feature_table(uris, seed=0).iloc[0], feature_table(uris, seed=1).iloc[0]
    expected = [second[name] if name == "tempo" else first[name] for name in AUDIO_FEATURES]
    np.testing.assert_allclose(values[0], expected)


def test_table_import_keeps_ok_rows_and_fills_null_rows(tmp_path):
    with AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        cache.store([("spotify:track:a", dict.fromkeys(AUDIO_FEATURES, 7.0)), ("spotify:track:b", None)],
                    source="spotify")
        table = pa.Table.from_pandas(feature_table(["spotify:track:a", "spotify:track:b"]), preserve_index=False)
        cache.import_table(table, source="table:test")
        values, has = cache.lookup(pa.array(["spotify:track:a", "spotify:track:b", "spotify:track:c"]))
    assert has.tolist() == [True, True, False]
    assert (values[0] == 7.0).all()
    np.testing.assert_allclose(values[1], table.slice(1).to_pandas().iloc[0, 1:].to_numpy(dtype=float))


def test_cache_missing_lists_uncached_uris_once(tmp_path):
    with AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        cache.store([("spotify:track:a", None)], source="spotify")
        assert cache.missing(["spotify:track:b", "spotify:track:a", "spotify:track:b"]) == ["spotify:track:b"]


def test_cache_rejects_a_record_without_a_field(tmp_path):
    features = dict.fromkeys(AUDIO_FEATURES, 0.5)
    del features["tempo"]
    with AudioFeatureCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ValueError, match="spotify:track:x from spotify: missing or non-numeric"):
            cache.store([("spotify:track:x", features)], source="spotify")
        assert cache.counts() == {"ok": 0, "null": 0}


def test_cache_that_is_not_sqlite_is_an_error(tmp_path):
    (tmp_path / "c.sqlite").write_text("not a database" * 100)
    with pytest.raises(ValueError, match="not a usable SQLite database"):
        AudioFeatureCache(tmp_path / "c.sqlite")
