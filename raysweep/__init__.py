"""raysweep: a Ray Tune search over clustering models for the Spotify Million Playlist Dataset.

Stages, one module each, in data-flow order: ``synth`` (MPD-format generator), ``ingest`` (slices to Parquet),
``features`` (playlist feature matrix), ``tune`` (the sweep), ``finalize`` (refit the winner).
Shared pieces: ``models``, ``scores``, ``selection``, ``storage``, ``plots``.

For notebooks: ``raysweep.sweep(features, ...)`` runs a sweep and returns a :class:`SweepResult` (leaderboard,
winner, run folder); its settings are the fields of :class:`SweepSettings`. They are imported on first use, so
``import raysweep`` (and every ``python -m raysweep.<stage>``) stays free of pandas, scikit-learn and Ray.

Never bind a package attribute named like a submodule (a function ``finalize`` beside ``raysweep/finalize``): the
first ``import raysweep.finalize`` rebinds ``raysweep.finalize`` to the module, and if the function is bound
after that, ``import raysweep.finalize as f`` gives the function and patches of ``raysweep.finalize.X`` miss.
"""

__version__ = "0.1.0"
__all__ = ["SweepResult", "SweepSettings", "sweep"]


def __getattr__(name):
    if name in ("sweep", "SweepSettings"):
        from raysweep import tune

        return getattr(tune, name)
    if name == "SweepResult":
        from raysweep.run_folder import SweepResult

        return SweepResult
    raise AttributeError(f"module 'raysweep' has no attribute {name!r}")
