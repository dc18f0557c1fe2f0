"""The finalizer's inputs: the sweep's run.json and winner.json, the configuration to refit, the feature matrix.

:func:`read_run` reads the run folder's records, :func:`resolve_choice` picks the model and k (given, or the
sweep's winner) and :func:`load_features` reads the feature matrix the sweep ran on, checked against run.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from raysweep.families import REGISTRY
from raysweep.feature_matrix import FeatureMatrix, read_feature_matrix

RUN_KEYS = ("features", "feature_columns", "scaling", "seed", "n_total")


def read_run(run: str | os.PathLike) -> tuple[dict, dict | None]:
    """Read a sweep run folder's ``run.json`` and, when present, its ``winner.json``.

    Returns
    -------
    run_record : dict, the contents of run.json (at least the keys in ``RUN_KEYS``)
    winner : dict or None, the contents of winner.json, None when the sweep wrote none
    """
    folder = Path(run)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {folder} does not exist")
    run_record = _read_json(folder / "run.json", what="run record (written by raysweep.tune)")
    missing = [key for key in RUN_KEYS if key not in run_record]
    if missing:
        raise ValueError(f"{folder / 'run.json'}: missing keys {', '.join(missing)}")
    winner_path = folder / "winner.json"
    winner = _read_json(winner_path, what="winner") if winner_path.exists() else None
    return run_record, winner


def _read_json(path: Path, what: str) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (the {what})")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def resolve_choice(run: str | os.PathLike, winner: dict | None, model: str | None,
                   k: int | None) -> tuple[str, int, str]:
    """The model and k to refit: the ones given, else the sweep's winner.

    Returns
    -------
    model : str, a name in ``raysweep.families.REGISTRY``
    k : int, >= 2
    source : str, where the choice came from (for the report)
    """
    if (model is None) != (k is None):
        raise ValueError("--model and --k go together: give both, or neither to refit the sweep's winner")
    if model is not None:
        source = "given on the command line"
    elif winner is None:
        raise FileNotFoundError(f"run {run} has no winner.json (the sweep did not finish or chose no winner); "
                                f"pass --model and --k to refit a configuration of your choice")
    else:
        absent = [key for key in ("model", "k") if winner.get(key) is None]
        if absent:
            raise ValueError(f"{Path(run) / 'winner.json'}: no {' or '.join(absent)} in the winner record")
        model, k, source = winner["model"], winner["k"], "the sweep's winner (winner.json)"
    if model not in REGISTRY:
        raise ValueError(f"unknown model {model!r} ({source}); expected one of {', '.join(REGISTRY)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r} ({source})")
    return model, int(k), source


def load_features(run_record: dict, features: str | os.PathLike | None = None) -> FeatureMatrix:
    """Read the feature matrix the sweep ran on (or ``features``), restricted to the sweep's columns.

    Returns a FeatureMatrix whose ``values`` (n_playlists, n_features) are raw, in the order of the sweep's
    ``feature_columns``; raises naming the file when it lacks a column or does not hold the sweep's playlists.
    """
    location = features if features is not None else run_record["features"]
    try:
        matrix = read_feature_matrix(location)
    except FileNotFoundError as exc:
        if features is not None:
            raise
        raise FileNotFoundError(f"{exc}; it is the matrix named in run.json: pass --features PATH if it "
                                f"moved") from exc
    columns = list(run_record["feature_columns"])
    missing = [c for c in columns if c not in matrix.columns]
    if missing:
        raise ValueError(f"feature matrix {location}: lacks the columns the sweep was fitted on: "
                         f"{', '.join(missing)} (it has {', '.join(matrix.columns)})")
    n, n_total = len(matrix.pid), int(run_record["n_total"])
    if n != n_total:
        difference = f"{n_total - n:,} fewer" if n < n_total else f"{n - n_total:,} more"
        raise ValueError(f"feature matrix {location}: {n:,} playlists, {difference} than the {n_total:,} the sweep "
                         f"ran on; the sweep's samples are prefixes of a permutation of exactly its rows, so "
                         f"finalize needs the same matrix")
    order = [matrix.columns.index(c) for c in columns]
    return FeatureMatrix(pid=matrix.pid, values=np.ascontiguousarray(matrix.values[:, order]), columns=columns,
                         metadata=matrix.metadata, path=str(location))

