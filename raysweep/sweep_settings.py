"""What a sweep is run with: :class:`SweepSettings`, their validation, and how a run folder records them.

The recorded settings (``rungs/settings.json``) name a run and guard it: without ``--name`` the run name is a digest
of them, so the same command resumes the same run, and a rerun with other settings under the same name is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from raysweep.families import MODEL_NAMES, REGISTRY
from raysweep.halving import ETA
from raysweep.models import AGGLOMERATIVE_MAX_N
from raysweep.run_folder import read_settings
from raysweep.scores import (DEFAULT_QUERY_POINTS, EXACT_SILHOUETTE_MAX_N, PROMOTION_EXACT_MAX_N,
                             exact_silhouette_limit)

# Settings recorded only since a later version, with the value every run written before then used.
_SETTINGS_ADDED_LATER = {"agglomerative_max_n": AGGLOMERATIVE_MAX_N}


@dataclass(frozen=True)
class SweepSettings:
    """Everything a sweep is run with; the same settings (and name) resume the same run.

    Parameters
    ----------
    features : str or Path
        Feature matrix (local path or pyarrow URI).
    fraction : float, default=0.1
        The top rung holds this fraction of the playlists.
    models : sequence of str, default=MODEL_NAMES
        Names in ``raysweep.families.REGISTRY``; the default is the four families of the design card.
    k_min, k_max : int, default=2, 100
    k_values : sequence of int, default=None
        Search only these k (e.g. a subset for benchmarks); overrides ``k_min`` and ``k_max``.
    exhaustive : bool, default=False
        Every config runs at the top rung only (no early stopping): the reference.
    results : str or Path, default="results"
    name : str, default=None
        Run name; None derives a stable one from the settings, so the same command resumes the same run.
    address : str, default=None
        Ray cluster to join (``auto`` inside one); None starts a local Ray (unless one is already running).
    storage : str, default=None
        Where Ray Tune writes its experiments (local path or URI such as ``s3://bucket/prefix``); None means
        ``RESULTS/RUN/ray``. With a URI, the run's result files are also copied to ``<storage>/<RUN>/``.
    seed : int, default=0
        Seed of the permutation (the samples) and of the models.
    eta : int, default=3
        Successive halving factor: samples grow and configs shrink by it.
    query_points : int, default=DEFAULT_QUERY_POINTS
        Silhouette query points above ``exact_max_n`` rows.
    exact_max_n : int, default=EXACT_SILHOUETTE_MAX_N
        Exact silhouette at or below this many rows on the top rung, whose scores choose the winner.
    promotion_exact_max_n : int, default=PROMOTION_EXACT_MAX_N
        Exact silhouette at or below this many rows on a lower rung, which only promotes (capped by ``exact_max_n``):
        above it the estimator, whose standard error the pairwise comparisons count as ties.
    min_rung_size : int, default=None
        Smallest sample; None means ``max(20 * k_max, 2000)`` (:func:`raysweep.samples.smallest_rung_size`).
    agglomerative_max_n : int, default=AGGLOMERATIVE_MAX_N
        The ward tree holds at most this many rows of a sample; the others join the nearest centroid of its cut.
    num_cpus : int, default=None
        CPUs of a local Ray (None: all).
    progress : bool, default=True
        Print the compact progress line to stderr.
    """

    features: str | os.PathLike | None
    fraction: float = 0.1
    models: tuple = MODEL_NAMES
    k_min: int = 2
    k_max: int = 100
    k_values: tuple | None = None
    exhaustive: bool = False
    results: str | os.PathLike = "results"
    name: str | None = None
    address: str | None = None
    storage: str | None = None
    seed: int = 0
    eta: int = ETA
    query_points: int = DEFAULT_QUERY_POINTS
    exact_max_n: int = EXACT_SILHOUETTE_MAX_N
    promotion_exact_max_n: int = PROMOTION_EXACT_MAX_N
    min_rung_size: int | None = None
    agglomerative_max_n: int = AGGLOMERATIVE_MAX_N
    num_cpus: int | None = None
    progress: bool = True

    def checked(self) -> SweepSettings:
        """These settings with ``k_values`` sorted and ``k_min``/``k_max`` set from them; ValueError naming the
        option at fault when one is out of range (the feature matrix is not read)."""
        settings = replace(self, models=list(self.models))
        if settings.k_values is not None:
            k_values = sorted({int(k) for k in settings.k_values})
            if not k_values:
                raise ValueError("--k-values: no value given")
            settings = replace(settings, k_values=k_values, k_min=k_values[0], k_max=k_values[-1])
        if not 0 < settings.fraction <= 1:
            raise ValueError(f"--fraction must be in (0, 1], got {settings.fraction}")
        unknown = [m for m in settings.models if m not in REGISTRY]
        if unknown or not settings.models:
            raise ValueError(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(REGISTRY)}")
        if len(set(settings.models)) != len(settings.models):
            raise ValueError(f"--models: a model is listed twice: {','.join(settings.models)}")
        if settings.k_min < 2:
            raise ValueError(f"--k-min must be >= 2 (scores need two clusters), got {settings.k_min}")
        if settings.k_max < settings.k_min:
            raise ValueError(f"--k-max ({settings.k_max}) must be >= --k-min ({settings.k_min})")
        for option in ("exact_max_n", "promotion_exact_max_n", "query_points"):
            if getattr(settings, option) < 0:
                raise ValueError(f"{option} must be >= 0, got {getattr(settings, option)}")
        if settings.eta < 2:
            raise ValueError(f"eta must be >= 2, got {settings.eta}")
        return settings

    @property
    def k_grid(self) -> list[int]:
        return list(self.k_values or range(self.k_min, self.k_max + 1))

    def record(self, matrix, sizes) -> dict:
        """The settings as ``rungs/settings.json`` records them (and the default run name digests them).

        ``matrix`` is the FeatureMatrix read from ``features`` and ``sizes`` the rung sizes planned for it
        (:func:`raysweep.halving.plan_rungs`); call on :meth:`checked` settings.
        """
        record = {"features": str(self.features), "n_total": len(matrix.pid), "feature_columns": matrix.columns,
                  "fraction": self.fraction, "models": self.models, "k_min": self.k_min, "k_max": self.k_max,
                  "exhaustive": self.exhaustive, "seed": self.seed, "eta": self.eta,
                  "query_points": self.query_points, "exact_max_n": self.exact_max_n,
                  "min_rung_size": self.min_rung_size, "k_values": self.k_values,
                  "agglomerative_max_n": self.agglomerative_max_n}
        if matrix.dropped_columns:  # only then, so that runs of other matrices keep their names
            record["dropped_feature_columns"] = matrix.dropped_columns
        lower_rung_limit = exact_silhouette_limit(self.exact_max_n, self.promotion_exact_max_n, top=False)
        if any(lower_rung_limit < n <= self.exact_max_n for n in sizes[:-1]):
            # Only when it changes how a rung is scored: runs it does not touch keep their names (and resume), and a
            # run from before the setting, whose lower rungs were all exact, is not resumed with estimated ones.
            record["promotion_exact_max_n"] = self.promotion_exact_max_n
        return record

    def run_name(self, record: dict) -> str:
        """``name``, else one derived from the recorded settings: the same settings give the same run."""
        if self.name:
            return self.name
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:8]
        stem = Path(str(self.features).split("?")[0]).stem
        mode = "-exhaustive" if record["exhaustive"] else ""
        return f"{stem}-f{record['fraction']:g}-k{record['k_min']}-{record['k_max']}{mode}-{digest}"


def check_same_run(path, record: dict, name: str) -> None:
    """ValueError unless the run's recorded settings at ``path`` (if any) equal ``record``."""
    previous = read_settings(path)
    if previous is None:
        return
    previous = {**_SETTINGS_ADDED_LATER, **previous}
    differ = sorted(key for key in set(previous) | set(record) if previous.get(key) != record.get(key))
    if differ:
        raise ValueError(f"run {name!r} already exists with other settings ({', '.join(differ)} differ; see {path}): "
                         "pass another --name, or the same settings to resume it")

