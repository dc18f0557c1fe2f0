"""The feature-matrix file: round trip, scaling, and errors that name the file and columns."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import apply_scaling, read_feature_matrix, write_feature_matrix


def blob_values(n=200, d=3):
    values, _ = make_blobs(n_samples=n, n_features=d, centers=4, random_state=0)
    return values.astype(np.float32)


def test_round_trip_keeps_pids_values_columns_and_metadata(tmp_path):
    values = blob_values()
    pid = np.arange(1000, 1200)
    write_feature_matrix(tmp_path / "f.parquet", pid, values, ["a", "b", "c"], {"source": "test"})
    matrix = read_feature_matrix(tmp_path / "f.parquet")
    np.testing.assert_array_equal(matrix.pid, pid)
    np.testing.assert_array_equal(matrix.values, values)
    assert matrix.columns == ["a", "b", "c"] and matrix.metadata == {"source": "test"}


def test_recorded_scaling_is_applied_not_recomputed(tmp_path):
    values = blob_values()
    scaling = {"kind": "standard", "mean": [1.0, 2.0, 3.0], "std": [2.0, 2.0, 2.0]}
    write_feature_matrix(tmp_path / "f.parquet", np.arange(200), values, ["a", "b", "c"], {"scaling": scaling})
    scaled = read_feature_matrix(tmp_path / "f.parquet").scaled()
    np.testing.assert_allclose(scaled, (values - [1.0, 2.0, 3.0]) / 2.0, rtol=1e-6)


def test_plain_parquet_is_standardized_with_its_own_statistics(tmp_path):
    values = blob_values()
    pq.write_table(pa.table({"pid": np.arange(200), "x": values[:, 0], "y": values[:, 1]}), tmp_path / "p.parquet")
    scaled = read_feature_matrix(tmp_path / "p.parquet").scaled()
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)


def test_scaling_none_leaves_values_alone():
    values = blob_values()
    np.testing.assert_array_equal(apply_scaling(values, {"kind": "none"}), values)


def test_nan_and_constant_columns_are_named(tmp_path):
    values = blob_values()
    values[5, 1] = np.nan
    values[:, 2] = 7.0
    pq.write_table(pa.table({"pid": np.arange(200), "good": values[:, 0], "holey": values[:, 1]}),
                   tmp_path / "nan.parquet")
    with pytest.raises(ValueError, match=r"nan\.parquet.*NaN or infinite.*holey"):
        read_feature_matrix(tmp_path / "nan.parquet")
    pq.write_table(pa.table({"pid": np.arange(200), "good": values[:, 0], "flat": values[:, 2]}),
                   tmp_path / "flat.parquet")
    with pytest.raises(ValueError, match=r"flat\.parquet.*constant.*flat"):
        read_feature_matrix(tmp_path / "flat.parquet")


def test_missing_pid_duplicate_pid_and_missing_file_are_clear(tmp_path):
    values = blob_values()
    pq.write_table(pa.table({"x": values[:, 0]}), tmp_path / "nopid.parquet")
    with pytest.raises(ValueError, match="no 'pid' column"):
        read_feature_matrix(tmp_path / "nopid.parquet")
    pq.write_table(pa.table({"pid": np.zeros(200, dtype=np.int64), "x": values[:, 0]}), tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match="duplicate pids"):
        read_feature_matrix(tmp_path / "dup.parquet")
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        read_feature_matrix(tmp_path / "absent.parquet")


def test_write_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        write_feature_matrix(tmp_path / "f.parquet", np.arange(5), np.zeros((4, 2)), ["a", "b"], {})
