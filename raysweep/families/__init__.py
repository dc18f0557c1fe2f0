"""The model families of the sweep, behind one registry.

``REGISTRY`` maps a family's name (the leaderboard's ``model`` column) to its
:class:`~raysweep.families.base.ClusterFamily`. Each family lives in one module of this package that defines
``FAMILY``; adding a family is that module plus its line below, and the sweep (``--models``), the trial, the refit,
``finalize`` and the winner rule's tie order pick it up.

This module imports nothing heavy: a family's module (and scikit-learn with it) is imported at its first lookup, so
:mod:`raysweep.selection` can read the names and their order without importing scikit-learn or SciPy.
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping

# The design card's four families: the default grid (4 x k = 2..100 = 396 configs). Other registered families are
# searched only when --models names them.
MODEL_NAMES = ("kmeans", "birch", "agglomerative", "gmm")


class _Registry(MutableMapping):
    """name -> ClusterFamily, importing a family's module at the first lookup of its name.

    Iteration order is the registration order, which is the winner rule's last tie-break (``selection``).
    Assigning ``REGISTRY[name] = family`` registers a family defined elsewhere (a test's toy family).
    """

    def __init__(self, modules):
        self._modules = dict(modules)  # name -> module under raysweep.families that defines FAMILY
        self._loaded = {}

    def __getitem__(self, name):
        if name not in self._loaded:
            module = importlib.import_module(f"{__name__}.{self._modules[name]}")
            self._loaded[name] = module.FAMILY
        return self._loaded[name]

    def __setitem__(self, name, family):
        self._modules.setdefault(name, None)
        self._loaded[name] = family

    def __delitem__(self, name):
        del self._modules[name]
        self._loaded.pop(name, None)

    def __contains__(self, name):
        return name in self._modules  # without importing the family's module

    def __iter__(self):
        return iter(self._modules)

    def __len__(self):
        return len(self._modules)


REGISTRY = _Registry({
    "kmeans": "kmeans",
    "birch": "birch",
    "agglomerative": "ward",
    "gmm": "gmm",
    "bisecting_kmeans": "bisecting_kmeans",
})


def get_family(name):
    """The registered family called ``name``; ValueError naming the registered ones when there is none.

    Returns
    -------
    family : raysweep.families.base.ClusterFamily
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]
