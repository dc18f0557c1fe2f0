"""The shared builds of a rung: ward tree, Birch CF-tree and the distance matrix of an exactly scored rung.

Each is one Ray task per structure and rung sample (:func:`raysweep._trainable.build_shared`,
:func:`raysweep._trainable.build_distance_matrix`) whose result every trial of the rung reads from the object store.
Ray (and :mod:`raysweep._trainable`, which imports it) is imported inside the methods, as in :mod:`raysweep._ray_rung`.
"""

from __future__ import annotations

import uuid

from raysweep.pairwise import DISTANCE_MATRIX_MIN_LABELINGS, distance_matrix_bytes


class SharedBuilds:
    """The run's shared structures: one Ray task per structure and rung sample, started before the rung's trials.

    A build asks Ray for no CPU: it shares the cores with the rung's trials. Had it taken one of them, Ray Tune,
    which reuses its trial actors, would run the whole rung on the one actor it could start at first (measured on
    Ray 2.60: every trial of rungs 1 and 2 of the 1M sweep on one process while a CF-tree build of 4-14 s held
    the other CPU): finishing trials hand their actor the next trial and the request for a second actor is
    dropped (ray-project/ray#36020).

    A capped ward tree is built on the first ``ward_max_n`` rows of the permutation, the same rows at every rung
    above the cap: it is built at the first such rung and reused at the later ones instead of being rebuilt
    (starting it one rung early was measured and not kept: BENCHMARKS.md, benchmark 2, session 9).
    """

    def __init__(self, x_ref, seed, ward_max_n):
        self.x_ref, self.seed = x_ref, seed
        self.options = {"agglomerative": {"max_n": ward_max_n}}  # the run settings of a family's builds
        self._reusable = {}  # structure -> ref of (built, info) of this command's build that serves larger rungs

    def launch(self, structures, n):
        """Start the builds for a rung of ``n`` rows (in parallel); returns {structure: ref of (built, info)}."""
        import ray

        from raysweep import _trainable

        refs = {}
        for structure in structures:
            family = _trainable.SHARED[structure]
            reusable = family.build_serves_larger_samples(n, **self._options(structure))
            if reusable and structure in self._reusable:
                refs[structure] = ray.remote(num_cpus=0)(_trainable.reuse_shared).remote(
                    structure, self._reusable[structure], n)
                continue
            refs[structure] = self._submit(structure, n)
            if reusable:
                self._reusable[structure] = refs[structure]
        return refs

    def launch_distance_matrix(self, n, n_labelings):
        """Start the build of the distance matrix of a rung of ``n`` rows whose ``n_labelings`` configs are all
        scored exactly; returns the trials' refs (``distance_matrix``, ``distance_build``) and the ref of the build's
        info, or ({}, None) where it would not pay (``DISTANCE_MATRIX_MIN_LABELINGS``) or not fit: the matrix may
        take at most half the object store of the smallest node that runs trials.
        """
        import ray

        from raysweep import _trainable

        stores = [node["Resources"].get("object_store_memory", 0) for node in ray.nodes()
                  if node["Alive"] and node["Resources"].get("CPU", 0) > 0]
        if n_labelings < DISTANCE_MATRIX_MIN_LABELINGS or distance_matrix_bytes(n) > min(stores, default=0) / 2:
            return {}, None
        build_id = uuid.uuid4().hex
        matrix, info = ray.remote(_trainable.build_distance_matrix).options(
            num_cpus=0, num_returns=2, max_retries=3, scheduling_strategy=_node_with_most_cpus()).remote(
            self.x_ref, n, build_id)
        return {"distance_matrix": matrix, "distance_build": build_id}, info

    def _options(self, structure):
        from raysweep import _trainable

        return self.options.get(_trainable.SHARED[structure].name, {})

    def _submit(self, structure, n):
        import ray

        from raysweep import _trainable

        # Ray's own retry reruns the build if its node is lost (before or after it finished: lineage
        # reconstruction). It asks for no CPU, so the rerun never waits for one held by a trial blocked on it.
        return ray.remote(_trainable.build_shared).options(
            num_cpus=0, max_retries=3, scheduling_strategy=_node_with_most_cpus()).remote(
            structure, self.x_ref, n, self.seed, **self._options(structure))


def _node_with_most_cpus():
    """A soft placement on the live node with the most CPUs, for a task that asks for none.

    Without it Ray places such a task on the driver's node, which on a cluster is the head, started with no CPUs
    so that it runs no trials (``cluster.yaml``); soft, so the task runs elsewhere should that node be gone.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    node = max(nodes, key=lambda node: node["Resources"].get("CPU", 0))
    return NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
