"""The notebook entry point, :func:`finalize_run`: finalize a sweep's run and get its results as DataFrames.

Exported as ``raysweep.finalize_run``. Not as ``raysweep.finalize``, which is this stage's package: see
:mod:`raysweep.finalize` for why one name cannot be both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raysweep import run_folder as rf
from raysweep.finalize.artifact import LoadedModel, load_model
from raysweep.finalize.pipeline import FinalizeSettings, finalize


@dataclass(frozen=True)
class FinalResult:
    """A finalized run: where ``final/`` is and what it holds.

    Attributes
    ----------
    folder : Path, the run's ``final/`` folder
    summary : dict, the contents of ``final.json`` (model, k, stability, seconds, ...)
    """

    folder: Path
    summary: dict

    @property
    def model(self) -> str:
        """The refitted family, a name in ``raysweep.families.REGISTRY``."""
        return self.summary["model"]

    @property
    def k(self) -> int:
        """The refitted number of clusters."""
        return self.summary["k"]

    @property
    def report(self) -> Path:
        """``report.md``: read it first."""
        return self.folder / rf.FINAL_REPORT

    def assignments(self) -> pd.DataFrame:
        """One row per playlist: pid, cluster, distance (and, for GMM, probability), from assignments.parquet."""
        return pd.read_parquet(self.folder / rf.ASSIGNMENTS)

    def profiles(self) -> pd.DataFrame:
        """One row per non-empty cluster: size, share, feature means (and top names, artists, tracks)."""
        return pd.read_parquet(self.folder / rf.CLUSTER_PROFILES)

    def load_model(self) -> LoadedModel:
        """The fitted model, its sha256 checked (:func:`raysweep.finalize.load_model`)."""
        return load_model(self.folder)


def finalize_run(run: str | os.PathLike, settings: FinalizeSettings | None = None, **options) -> FinalResult:
    """Refit the sweep's winner (or ``model`` and ``k``) on every playlist, write ``RUN/final/``, return it.

    The same step as ``python -m raysweep.finalize``; without ``settings`` it prints no progress lines unless
    ``quiet=False`` is given.

    Parameters
    ----------
    run : the sweep's run folder (``RESULTS/RUN``)
    settings : FinalizeSettings, default=None
    **options
        Fields of :class:`~raysweep.finalize.pipeline.FinalizeSettings`: ``model``, ``k``, ``features``,
        ``dataset``, ``fractions``, ``plot_sample``, ``plots``, ``quiet``.

    Returns
    -------
    FinalResult
    """
    summary = finalize(run, settings or FinalizeSettings(quiet=True), **options)
    summary.pop("report")
    return FinalResult(folder=Path(run) / rf.FINAL, summary=summary)
