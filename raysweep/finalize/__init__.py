"""The finalizer: refit the sweep's winner on every playlist, assign each one, and describe the clusters.

``python -m raysweep.finalize --run RESULTS/RUN [--model M --k K] [--features PATH] [--dataset OUT]``

It reads the sweep's ``run.json`` (feature matrix, feature columns, scaling, seed) and ``winner.json``, refits the
model with :func:`raysweep.models.fit_final` (its family's one fit path in ``raysweep.families``, the sweep's) on
100% of the feature matrix in the sweep's scaled space, and writes ``RESULTS/RUN/final/`` through
:func:`raysweep.storage.atomic_dir`, so a rerun replaces the previous result whole:

- ``assignments.parquet``: pid, cluster, distance to the cluster centre in the scaled space (and, for
  GaussianMixture, the membership probability of the assigned component);
- ``model.joblib`` and ``model.json`` (model, k, feature columns, scaling, library versions, sha256 of the
  artifact); :func:`load_model` checks the hash, and :meth:`LoadedModel.predict` the feature columns;
- ``cluster_profiles.parquet``: per cluster its size and feature means in the original units, and with
  ``--dataset`` the ten most common normalized playlist names, artists and tracks;
- ``plots/``, ``final.json`` (everything measured, machine-readable) and ``report.md`` (read this first);
- stability: the adjusted Rand index between the full refit and the same model fitted on the 2% and 10% samples
  (prefixes of the sweep's permutation), as the original study compared its 2% and 10% runs.

One module per job, in the order the step runs them:

- :mod:`~raysweep.finalize.inputs`: run.json and winner.json (read as :class:`raysweep.run_folder.RunRecord` and
  :class:`~raysweep.run_folder.Winner`), the configuration to refit, the feature matrix;
- :mod:`~raysweep.finalize.refit`: the refit's options, each row's cluster and distance, profiles, stability;
- :mod:`~raysweep.finalize.describe`: top names, artists and tracks per cluster from the ingest dataset;
- :mod:`~raysweep.finalize.artifact`: ``model.joblib`` + ``model.json``, :func:`load_model`;
- :mod:`~raysweep.finalize.report`: ``report.md``;
- :mod:`~raysweep.finalize.pipeline`: :func:`finalize`, the whole step, and its :class:`FinalizeSettings`;
- :mod:`~raysweep.finalize.cli`: the command; :mod:`~raysweep.finalize.api`: :func:`finalize_run`, for notebooks.

The charts are drawn by :func:`raysweep.plots.write_final_plots`, beside every other chart. The names below are
importable from ``raysweep.finalize`` as they were when it was one module.

Why the notebook function is ``raysweep.finalize_run``, not ``raysweep.finalize``: on a package, one name is either
the subpackage or a function. ``from raysweep.finalize import finalize`` in ``raysweep/__init__.py`` would rebind
the attribute ``raysweep.finalize`` to the function once the package is imported, and from then on
``import raysweep.finalize as m``, ``mock.patch("raysweep.finalize.x")`` and ``monkeypatch.setattr`` by dotted name
reach the function, while ``python -m raysweep.finalize`` and ``from raysweep.finalize import load_model`` still
reach the package (they go through ``sys.modules``): one name, two things, depending on how it is spelled. The
stage keeps its name, which the command, the docs, the fault driver and the recommender use; the function takes
another.
"""

from raysweep.finalize.api import FinalResult, finalize_run
from raysweep.finalize.artifact import MODEL_FORMAT, LoadedModel, load_model, save_model
from raysweep.finalize.cli import main
from raysweep.finalize.describe import TOP, check_dataset, describe_from_dataset
from raysweep.finalize.inputs import RUN_KEYS, load_features, read_run, resolve_choice
from raysweep.finalize.pipeline import PLOT_SAMPLE, FinalizeSettings, finalize
from raysweep.finalize.refit import (MIN_ROWS_PER_CLUSTER, STABILITY_FRACTIONS, assign, cluster_profiles,
                                     fit_options, stability, standardized_means)
from raysweep.finalize.report import SCORE_LABELS, render_report
from raysweep.plots import write_final_plots as write_plots  # its name when it lived here
from raysweep.run_folder import library_versions  # lived here too; the one home of library versions

__all__ = ["MIN_ROWS_PER_CLUSTER", "MODEL_FORMAT", "PLOT_SAMPLE", "RUN_KEYS", "SCORE_LABELS", "STABILITY_FRACTIONS",
           "TOP", "FinalResult", "FinalizeSettings", "LoadedModel", "assign", "check_dataset", "cluster_profiles",
           "describe_from_dataset", "finalize", "finalize_run", "fit_options", "library_versions", "load_features",
           "load_model", "main", "read_run", "render_report", "resolve_choice", "save_model", "stability",
           "standardized_means", "write_plots"]
