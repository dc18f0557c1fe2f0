"""The feature-matrix file: round trip, scaling, constant columns, and errors that name the file and columns."""

import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_blobs

from raysweep.feature_matrix import apply_scaling, read_feature_matrix, write_feature_matrix
from raysweep.tune import SweepSettings, run_sweep
from raysweep.tune import main as tune_main


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


def test_nan_columns_are_named(tmp_path):
    values = blob_values()
    values[5, 1] = np.nan
    pq.write_table(pa.table({"pid": np.arange(200), "good": values[:, 0], "holey": values[:, 1]}),
                   tmp_path / "nan.parquet")
    with pytest.raises(ValueError, match=r"nan\.parquet.*NaN or infinite.*holey"):
        read_feature_matrix(tmp_path / "nan.parquet")


def write_with_flat_column(path, scaling=None):
    """Blob columns a, c and a constant column flat (7.0) between them."""
    values = blob_values(d=2)
    write_feature_matrix(path, np.arange(200), np.column_stack([values[:, 0], np.full(200, 7.0), values[:, 1]]),
                         ["a", "flat", "c"], {"source": "test", **({"scaling": scaling} if scaling else {})})
    return values


def test_constant_column_is_left_out_with_a_warning(tmp_path, caplog):
    values = write_with_flat_column(tmp_path / "f.parquet")
    with caplog.at_level(logging.WARNING, logger="raysweep.feature_matrix"):
        matrix = read_feature_matrix(tmp_path / "f.parquet")
    assert matrix.columns == ["a", "c"] and matrix.dropped_columns == {"flat": "constant: every playlist has 7"}
    np.testing.assert_array_equal(matrix.values, values)
    assert [r.getMessage() for r in caplog.records] == [
        f"feature matrix {tmp_path / 'f.parquet'}: left out constant columns (no information, cannot be scaled): flat"]


def test_recorded_scaling_drops_the_constant_columns_entries(tmp_path):
    scaling = {"kind": "standard", "mean": [1.0, 7.0, 3.0], "std": [2.0, 0.0, 4.0]}
    write_with_flat_column(tmp_path / "f.parquet", scaling)
    assert read_feature_matrix(tmp_path / "f.parquet").scaling() == {"kind": "standard", "mean": [1.0, 3.0],
                                                                     "std": [2.0, 4.0]}


def test_only_constant_columns_is_an_error(tmp_path):
    pq.write_table(pa.table({"pid": np.arange(5), "x": np.ones(5), "y": np.zeros(5)}), tmp_path / "flat.parquet")
    with pytest.raises(ValueError, match=r"flat\.parquet: every feature column is constant .*: x, y"):
        read_feature_matrix(tmp_path / "flat.parquet")


def test_csv_is_refused_saying_parquet_is_expected(tmp_path):
    pd.DataFrame({"pid": [1, 2], "x": [0.5, 1.5]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match=r"x\.csv: a CSV file; the feature matrix must be Parquet"):
        read_feature_matrix(tmp_path / "x.csv")


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    (tmp_path / "x.parquet").write_text("pid,x\n1,0.5\n")
    with pytest.raises(ValueError, match=r"x\.parquet: not a Parquet file"):
        read_feature_matrix(tmp_path / "x.parquet")


def test_tune_with_a_csv_says_parquet_is_expected(tmp_path, capsys):
    pd.DataFrame({"pid": [1, 2], "x": [0.5, 1.5]}).to_csv(tmp_path / "x.csv", index=False)
    assert tune_main(["--features", str(tmp_path / "x.csv"), "--results", str(tmp_path / "results")]) != 0
    assert "x.csv: a CSV file; the feature matrix must be Parquet" in capsys.readouterr().err


@pytest.mark.slow
def test_tune_leaves_out_a_constant_column_and_records_it(ray_local, tmp_path):
    write_with_flat_column(tmp_path / "f.parquet")
    run_dir = run_sweep(SweepSettings(tmp_path / "f.parquet", fraction=1.0, models=["kmeans"], k_min=2, k_max=3,
                                      results=tmp_path / "results", name="flat", min_rung_size=50))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["feature_columns"] == ["a", "c"]
    assert run["dropped_feature_columns"] == {"flat": "constant: every playlist has 7"}


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
