"""Run ``raysweep.tune`` or ``raysweep.finalize`` with faults injected at exact points (the fault-injection tests).

``python tests/fault_driver.py tune|finalize [--fault NAME=VALUE ...] -- ARGS...`` runs the command's ``main(ARGS)``
in this process after patching it:

- ``kill-after-results=N``: SIGKILL this process right after the N-th trial result reaches the ledger.
- ``cut-result=N``: write the first half of the N-th result's ledger line, then SIGKILL (a kill mid-write).
- ``kill-writing=NAME``: when an output named NAME (a file or a folder such as ``tensorboard``) has been written
  aside but not yet renamed into place, cut the written data in half and SIGKILL.
- ``trial-retries=N``: Ray Tune's ``max_failures`` (0: a lost trial is not retried by Tune, the ledger's next
  attempt must run it).
- ``mirror-seconds=S``: the ledger's mirroring interval to a storage URI.
- ``marks=DIR``: every trial and shared build writes ``DIR/<kind>-<uuid>.json`` (model, k, rung or structure, Ray
  node id) when it starts, so a test knows what runs where; ``trial-delay=S`` and ``build-delay=S`` make them
  take S seconds longer (a wider window to kill a node in).

The wrappers are defined in ``__main__``, so Ray pickles them by value and the cluster's workers run them.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

MARKS, TRIAL_DELAY, BUILD_DELAY = None, 0.0, 0.0


def _mark(kind, record):
    import ray

    record = {**record, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "at": time.time()}
    path = Path(MARKS) / f"{kind}-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(record))


def marked_trial(config, data):
    from raysweep._trainable import sweep_trial

    trial = config["trial"]
    _mark("trial", {"model": trial["model"], "k": int(trial["k"]), "rung": int(config["rung"])})
    time.sleep(TRIAL_DELAY)
    return sweep_trial(config, data)


def marked_build(structure, X, n, seed, **options):
    from raysweep._trainable import build_shared

    _mark("build", {"structure": structure, "n": int(n)})
    time.sleep(BUILD_DELAY)
    return build_shared(structure, X, n, seed, **options)


def _die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_in_ledger(run_folder, after, cut):
    original = run_folder.Ledger.append
    count = {"results": 0}

    def append(self, record):
        if record.get("event") == "result":
            count["results"] += 1
            if cut and count["results"] == cut:
                line = json.dumps(record, default=run_folder.json_default)
                with open(self.path, "a") as handle:
                    handle.write(line[: len(line) // 2])
                _die()
        original(self, record)
        if after and count["results"] == after:
            _die()

    run_folder.Ledger.append = append


def _kill_writing(name):
    """Patch atomic_file / atomic_dir wherever raysweep imported them: die before ``name`` is renamed into place."""
    from raysweep import storage

    real_file, real_dir = storage.atomic_file, storage.atomic_dir

    @contextlib.contextmanager
    def atomic_file(path):
        with real_file(path) as tmp:
            yield tmp
            if Path(path).name == name:
                data = tmp.read_bytes()
                tmp.write_bytes(data[: len(data) // 2])
                _die()

    @contextlib.contextmanager
    def atomic_dir(path):
        with real_dir(path) as tmp:
            yield tmp
            if Path(path).name == name:
                files = sorted(p for p in tmp.rglob("*") if p.is_file())
                for extra in files[len(files) // 2:]:
                    extra.unlink()
                _die()

    for module in [m for key, m in sys.modules.items() if key.startswith("raysweep")]:
        if getattr(module, "atomic_file", None) is real_file:
            module.atomic_file = atomic_file
        if getattr(module, "atomic_dir", None) is real_dir:
            module.atomic_dir = atomic_dir


def main():
    global MARKS, TRIAL_DELAY, BUILD_DELAY
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["tune", "finalize"])
    parser.add_argument("--fault", action="append", default=[])
    split = sys.argv.index("--")
    options, args = parser.parse_args(sys.argv[1:split]), sys.argv[split + 1:]
    faults = dict(fault.split("=", 1) for fault in options.fault)

    import raysweep._ray_rung as ray_rung
    import raysweep._trainable as trainable
    import raysweep.finalize as finalize
    import raysweep.plots  # noqa: F401  (imported so that _kill_writing patches its atomic_dir too)
    import raysweep.run_folder as run_folder
    import raysweep.tune as tune

    _kill_in_ledger(run_folder, int(faults.get("kill-after-results", 0)), int(faults.get("cut-result", 0)))
    if "kill-writing" in faults:
        _kill_writing(faults["kill-writing"])
    if "trial-retries" in faults:
        ray_rung.TRIAL_RETRIES = int(faults["trial-retries"])
    if "mirror-seconds" in faults:
        ray_rung.MIRROR_SECONDS = float(faults["mirror-seconds"])
    if "marks" in faults:
        MARKS = faults["marks"]
        TRIAL_DELAY = float(faults.get("trial-delay", 0))
        BUILD_DELAY = float(faults.get("build-delay", 0))
        trainable.sweep_trial, trainable.build_shared = marked_trial, marked_build
    return (tune if options.command == "tune" else finalize).main(args)


if __name__ == "__main__":
    sys.exit(main())
