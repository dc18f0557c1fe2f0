"""The feature matrix: the file every stage after ``features`` reads.

A Parquet file with an int64 ``pid`` column and float32 feature columns. Its schema metadata key
``raysweep`` holds a JSON record: the ``source`` (``audio``, ``cooccurrence``, or anything else), the
``scaling`` every later stage applies (``{"kind": "standard", "mean": [...], "std": [...]}`` or
``{"kind": "none"}``) and free-form facts such as coverage. A Parquet file without that record is still a
feature matrix: its float columns are standardized with their own mean and standard deviation. A constant column
carries nothing and cannot be standardized: reading leaves it out with a warning.

Parquet only: a CSV would lose the metadata record (the scaling the finalizer must apply as the sweep did) and
the column types, so reading one is refused with a message saying how to convert it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysweep.storage import atomic_file, filesystem_and_path, is_uri

METADATA_KEY = b"raysweep"
_log = logging.getLogger(__name__)


@dataclass
class FeatureMatrix:
    """Playlist features as read from disk.

    Attributes
    ----------
    pid : ndarray of shape (n_playlists,), int64
    values : ndarray of shape (n_playlists, n_features), float32, raw (unscaled)
    columns : list of str, length n_features
    metadata : dict, the ``raysweep`` record (``source``, ``scaling``, ...)
    path : str, where it was read from
    dropped_columns : dict, float columns of the file left out (not in ``columns``): name -> reason
    """

    pid: np.ndarray
    values: np.ndarray
    columns: list[str]
    metadata: dict = field(default_factory=dict)
    path: str = ""
    dropped_columns: dict = field(default_factory=dict)

    def scaling(self) -> dict:
        """The scaling record; computed from the data when the file does not carry one."""
        recorded = self.metadata.get("scaling")
        if recorded:
            return recorded
        mean = self.values.mean(axis=0, dtype=np.float64)
        std = self.values.std(axis=0, dtype=np.float64)
        return {"kind": "standard", "mean": mean.tolist(), "std": std.tolist(), "computed_at_read": True}

    def scaled(self) -> np.ndarray:
        """The values with :meth:`scaling` applied, shape (n_playlists, n_features), float32."""
        return apply_scaling(self.values, self.scaling())


def apply_scaling(values: np.ndarray, scaling: dict) -> np.ndarray:
    """Apply a scaling record to an (n, d) array; returns a new float32 array."""
    if scaling["kind"] == "none":
        return np.asarray(values, dtype=np.float32).copy()
    if scaling["kind"] != "standard":
        raise ValueError(f"unknown scaling kind {scaling['kind']!r}; expected 'standard' or 'none'")
    mean = np.asarray(scaling["mean"], dtype=np.float64)
    std = np.asarray(scaling["std"], dtype=np.float64)
    return ((values - mean) / std).astype(np.float32)


def validate_values(values: np.ndarray, columns: list[str], where: str) -> None:
    """Raise ValueError naming the columns that hold NaN/inf or are constant."""
    _check_finite(values, columns, where)
    constant = constant_columns(values, columns)
    if constant:
        raise ValueError(f"{where}: constant feature columns (no information, cannot be scaled): "
                         f"{', '.join(constant)}")


def _check_finite(values: np.ndarray, columns: list[str], where: str) -> None:
    bad = [c for c, ok in zip(columns, np.isfinite(values).all(axis=0)) if not ok]
    if bad:
        raise ValueError(f"{where}: feature columns with NaN or infinite values: {', '.join(bad)}")


def constant_columns(values: np.ndarray, columns: list[str]) -> list[str]:
    """The columns of (n, d) ``values`` holding one value (none when n < 2: nothing to compare)."""
    if len(values) < 2:
        return []
    return [c for c, v in zip(columns, np.ptp(values, axis=0)) if v == 0]


def read_feature_matrix(location: str | os.PathLike) -> FeatureMatrix:
    """Read and validate a feature matrix (Parquet) from a local path or a pyarrow URI (``s3://...``).

    A constant column is left out with a warning and listed in ``dropped_columns`` (with the recorded scaling's
    entries for it); ValueError when no column is left, for a CSV file, and naming any other problem.
    """
    if str(location).split("?")[0].endswith((".csv", ".csv.gz", ".tsv")):
        raise ValueError(f"feature matrix {location}: a CSV file; the feature matrix must be Parquet (an integer "
                         "pid column and float feature columns), as python -m raysweep.features writes it: "
                         "convert it with pandas.read_csv(path).to_parquet('features.parquet')")
    fs, path = filesystem_and_path(location)
    try:
        table = pq.read_table(path, filesystem=fs)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"feature matrix {location}: not a Parquet file ({exc})") from exc
    except (FileNotFoundError, OSError) as exc:
        raise FileNotFoundError(f"feature matrix {location}: cannot read it ({exc})") from exc
    if "pid" not in table.column_names:
        raise ValueError(f"feature matrix {location}: no 'pid' column (columns: {table.column_names})")
    columns = [name for name in table.column_names
               if name != "pid" and pa.types.is_floating(table.schema.field(name).type)]
    if not columns:
        raise ValueError(f"feature matrix {location}: no float feature columns besides 'pid'")
    raw_meta = (table.schema.metadata or {}).get(METADATA_KEY)
    metadata = json.loads(raw_meta) if raw_meta else {}
    pid = table.column("pid").to_numpy().astype(np.int64)
    if len(np.unique(pid)) != len(pid):
        raise ValueError(f"feature matrix {location}: duplicate pids")
    values = np.column_stack([table.column(c).to_numpy().astype(np.float32) for c in columns])
    _check_finite(values, columns, f"feature matrix {location}")
    constant = constant_columns(values, columns)
    if len(constant) == len(columns):
        raise ValueError(f"feature matrix {location}: every feature column is constant (no information, cannot be "
                         f"scaled): {', '.join(constant)}")
    dropped = {}
    if constant:
        _log.warning("feature matrix %s: left out constant columns (no information, cannot be scaled): %s",
                     location, ", ".join(constant))
        keep = [j for j, c in enumerate(columns) if c not in constant]
        scaling = metadata.get("scaling") or {}
        if scaling.get("kind") == "standard":
            metadata = {**metadata, "scaling": {**scaling, "mean": [scaling["mean"][j] for j in keep],
                                                "std": [scaling["std"][j] for j in keep]}}
        dropped = {c: f"constant: every playlist has {values[0, j]:g}" for j, c in enumerate(columns) if c in constant}
        values, columns = values[:, keep], [columns[j] for j in keep]
    return FeatureMatrix(pid=pid, values=values, columns=columns, metadata=metadata, path=str(location),
                         dropped_columns=dropped)


def write_feature_matrix(location: str | os.PathLike, pid: np.ndarray, values: np.ndarray,
                         columns: list[str], metadata: dict) -> None:
    """Write ``pid`` (n,) and ``values`` (n, d) as a feature matrix, atomically for local paths."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (len(pid), len(columns)):
        raise ValueError(f"values shape {values.shape} does not match {len(pid)} pids x {len(columns)} columns")
    arrays = [pa.array(np.asarray(pid, dtype=np.int64))] + [pa.array(values[:, j]) for j in range(values.shape[1])]
    schema = pa.schema([("pid", pa.int64())] + [(c, pa.float32()) for c in columns],
                       metadata={METADATA_KEY: json.dumps(metadata).encode()})
    table = pa.Table.from_arrays(arrays, schema=schema)
    if is_uri(location):
        fs, path = filesystem_and_path(location)
        pq.write_table(table, path, filesystem=fs, compression="zstd")
        return
    with atomic_file(location) as tmp:
        pq.write_table(table, tmp, compression="zstd")
