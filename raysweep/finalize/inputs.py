"""The finalizer's inputs: the sweep's run.json and winner.json, the configuration to refit, the feature matrix.

:func:`read_run` reads the run folder's records as the tune -> finalize contract (:class:`raysweep.run_folder.RunRecord`
and :class:`~raysweep.run_folder.Winner`, any readable format), :func:`resolve_choice` picks the model and k (given,
or the sweep's winner) and :func:`load_features` reads the feature matrix the sweep ran on, checked against run.json.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from raysweep import run_folder as rf
from raysweep.families import REGISTRY
from raysweep.feature_matrix import FeatureMatrix, read_feature_matrix
from raysweep.run_folder import RunFolder, RunRecord, Winner

RUN_KEYS = RunRecord.REQUIRED  # what finalize needs of run.json


def read_run(run: str | os.PathLike) -> tuple[RunRecord, Winner | None]:
    """Read a sweep run folder's ``run.json`` and, when present, its ``winner.json``.

    Returns
    -------
    run_record : RunRecord, run.json (it holds at least the keys in ``RUN_KEYS``)
    winner : Winner or None, winner.json, None when the sweep wrote none

    Raises FileNotFoundError or ValueError in one line naming the file: no folder, no run.json, a record that is not
    JSON, lacks a key of ``RUN_KEYS`` or is of a format this raysweep does not read.
    """
    folder = RunFolder(run)
    if not folder.path.is_dir():
        raise FileNotFoundError(f"run folder {folder.path} does not exist")
    run_record = RunRecord.read(folder / rf.RUN_RECORD)
    winner = Winner.read(folder / rf.WINNER) if (folder / rf.WINNER).exists() else None
    return run_record, winner


def resolve_choice(run: str | os.PathLike, winner: Winner | None, model: str | None,
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
        raise FileNotFoundError(f"run {run} has no {rf.WINNER} (the sweep did not finish or chose no winner); "
                                f"pass --model and --k to refit a configuration of your choice")
    else:
        absent = [key for key in ("model", "k") if getattr(winner, key) is None]
        if absent:
            raise ValueError(f"{Path(run) / rf.WINNER}: no {' or '.join(absent)} in the winner record")
        model, k, source = winner.model, winner.k, f"the sweep's winner ({rf.WINNER})"
    if model not in REGISTRY:
        raise ValueError(f"unknown model {model!r} ({source}); expected one of {', '.join(REGISTRY)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r} ({source})")
    return model, int(k), source


def load_features(run_record: RunRecord, features: str | os.PathLike | None = None) -> FeatureMatrix:
    """Read the feature matrix the sweep ran on (or ``features``), restricted to the sweep's columns.

    Returns a FeatureMatrix whose ``values`` (n_playlists, n_features) are raw, in the order of the sweep's
    ``feature_columns``; raises naming the file when it lacks a column or does not hold the sweep's playlists.
    """
    location = features if features is not None else run_record.features
    try:
        matrix = read_feature_matrix(location)
    except FileNotFoundError as exc:
        if features is not None:
            raise
        raise FileNotFoundError(f"{exc}; it is the matrix named in {rf.RUN_RECORD}: pass --features PATH if it "
                                f"moved") from exc
    columns = list(run_record.feature_columns)
    missing = [c for c in columns if c not in matrix.columns]
    if missing:
        raise ValueError(f"feature matrix {location}: lacks the columns the sweep was fitted on: "
                         f"{', '.join(missing)} (it has {', '.join(matrix.columns)})")
    n, n_total = len(matrix.pid), int(run_record.n_total)
    if n != n_total:
        difference = f"{n_total - n:,} fewer" if n < n_total else f"{n - n_total:,} more"
        raise ValueError(f"feature matrix {location}: {n:,} playlists, {difference} than the {n_total:,} the sweep "
                         f"ran on; the sweep's samples are prefixes of a permutation of exactly its rows, so "
                         f"finalize needs the same matrix")
    order = [matrix.columns.index(c) for c in columns]
    return FeatureMatrix(pid=matrix.pid, values=np.ascontiguousarray(matrix.values[:, order]), columns=columns,
                         metadata=matrix.metadata, path=str(location))

