"""The model artifact: ``model.joblib`` + ``model.json`` written by :func:`save_model`, read by :func:`load_model`.

:func:`load_model` checks the artifact's sha256 against model.json before unpickling it and returns a
:class:`LoadedModel`, whose ``predict`` applies the sweep's scaling to raw features.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raysweep import run_folder as rf
from raysweep.feature_matrix import FeatureMatrix, apply_scaling

# 2: model.joblib holds a FinalModel that is a scikit-learn estimator (raysweep.families). A format-1 artifact
# (FinalModel before the family registry) still loads: FinalModel.__setstate__ converts it.
MODEL_FORMAT = 2
_READABLE_FORMATS = (1, MODEL_FORMAT)
# The libraries model.json records the versions of: what unpickling model.joblib needs.
MODEL_LIBRARIES = ("scikit-learn", "numpy", "joblib", "pandas")


@dataclass
class LoadedModel:
    """A refitted model loaded back with :func:`load_model`: the estimator and the facts needed to use it.

    Attributes
    ----------
    estimator : raysweep.families.base.FinalModel, the refit from ``fit_final``; it was fitted on the rows in the
        sweep's permutation order, so its own ``labels_`` follow that order: the playlists' clusters are in
        assignments.parquet
    metadata : dict, the contents of model.json (model, k, feature_columns, scaling, versions, sha256, ...)
    """

    estimator: object
    metadata: dict

    def predict(self, features: FeatureMatrix | pd.DataFrame) -> np.ndarray:
        """Clusters of new playlists, shape (n_playlists,), from raw features (scaled here as in the sweep).

        The input must hold every column the model was fitted on (extra columns are ignored).
        """
        columns = self.metadata["feature_columns"]
        available = list(features.columns)
        missing = [c for c in columns if c not in available]
        if missing:
            raise ValueError(f"features lack the columns the model was fitted on: {', '.join(missing)}")
        if isinstance(features, FeatureMatrix):
            values = features.values[:, [available.index(c) for c in columns]]
        else:
            values = features[columns].to_numpy(dtype=np.float32)
        return np.asarray(self.estimator.predict(apply_scaling(values, self.metadata["scaling"])))


def save_model(folder: Path, estimator, metadata: dict) -> dict:
    """Write ``model.joblib`` and ``model.json`` (``metadata`` plus the artifact's sha256) into ``folder``."""
    import joblib

    artifact = folder / rf.MODEL_ARTIFACT
    joblib.dump({"estimator": estimator, "feature_columns": metadata["feature_columns"],
                 "scaling": metadata["scaling"]}, artifact)
    record = {**metadata, "artifact": artifact.name, "sha256": _sha256(artifact)}
    (folder / rf.MODEL_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_model(final: str | os.PathLike) -> LoadedModel:
    """Load a refitted model from a ``final/`` folder after checking the artifact's sha256 against model.json.

    The artifact is a pickle: unpickling runs code, so the hash is checked before anything is loaded.
    """
    import joblib

    folder = Path(final)
    record_path = folder / rf.MODEL_RECORD
    metadata = rf.read_json_object(record_path, "the model metadata written by raysweep.finalize")
    if metadata.get("format") not in _READABLE_FORMATS:
        raise ValueError(f"{record_path}: model format {metadata.get('format')!r}; this raysweep reads "
                         f"formats {', '.join(map(str, _READABLE_FORMATS))}: refit it with raysweep.finalize")
    artifact = folder / metadata.get("artifact", rf.MODEL_ARTIFACT)
    if not artifact.exists():
        raise FileNotFoundError(f"{artifact}: no such file (the model artifact named in {record_path})")
    digest = _sha256(artifact)
    if digest != metadata.get("sha256"):
        raise ValueError(f"{artifact}: sha256 {digest} does not match {metadata.get('sha256')} recorded in "
                         f"{record_path}; the artifact was changed or replaced, refusing to load it")
    payload = joblib.load(artifact)
    if payload["feature_columns"] != metadata["feature_columns"]:
        raise ValueError(f"{artifact}: its feature columns {payload['feature_columns']} differ from "
                         f"{rf.MODEL_RECORD}'s {metadata['feature_columns']}")
    return LoadedModel(estimator=payload["estimator"], metadata=metadata)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

