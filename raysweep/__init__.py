"""raysweep: a Ray Tune search over clustering models for the Spotify Million Playlist Dataset.

Stages in data-flow order: ``synth`` (MPD-format generator), ``ingest`` (slices to Parquet), ``features``
(playlist feature matrix), the model search (``families``, ``scores``, ``selection``, ``halving``), ``tune`` (the
sweep), ``finalize`` (refit the winner), ``recommend``. No module imports a stage after its own; the README's
Layout section has a line for every module.

For notebooks: ``raysweep.sweep(features, ...) -> SweepResult`` (leaderboard, winner, run folder; its settings are
the fields of ``SweepSettings``) and ``raysweep.finalize_run(run) -> FinalResult`` (:mod:`raysweep.finalize.api`).
They are imported on first use, so ``import raysweep.selection`` and the other light modules do not pay for
scikit-learn and pandas.
"""

import importlib

__version__ = "0.1.0"

# Notebook API: name -> module defining it, imported on first access (PEP 562).
_API = {"sweep": "raysweep.tune", "SweepSettings": "raysweep.sweep_settings", "SweepResult": "raysweep.run_folder",
        "finalize_run": "raysweep.finalize.api", "FinalResult": "raysweep.finalize.api"}
__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'raysweep' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
