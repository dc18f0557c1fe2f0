"""Does Ray Tune use every CPU when a task holds one as the experiment starts? (Why shared builds ask for no CPU.)

  python benchmarks/bench_tune_actor_reuse.py [--full] [--trials 40] [--trial-seconds 0.3] [--hold-seconds 5]

Starts a local Ray with 2 CPUs and runs the same Tune experiment twice, as the sweep runs a rung (function trials
of one CPU each, ``reuse_actors=True``): alone, then while a task asking for one CPU holds it for the first
``--hold-seconds``. Prints each experiment's wall and the number of trials each trial process ran. On Ray 2.60
(session 9): 9.2 s on two processes alone, 16.8 s with every trial on one process when the task held a CPU; Tune
hands a finished trial's actor the next trial and never starts the second one (ray-project/ray#36020).
"""

import argparse
import collections
import os
import tempfile
import time

import ray
from ray import tune

from raysweep._ray_rung import quiet_ray_output


def _trial(config):
    started = time.time()
    time.sleep(config["seconds"])
    return {"pid": os.getpid(), "started": started}


def _hold(seconds):
    time.sleep(seconds)


def experiment(trials, trial_seconds, storage):
    """Wall seconds of one Tune experiment and {pid: trials it ran}."""
    started = time.perf_counter()
    grid = tune.Tuner(
        tune.with_resources(_trial, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(trials))), "seconds": trial_seconds},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    ).fit()
    pids = collections.Counter(result.metrics["pid"] for result in grid)
    return time.perf_counter() - started, dict(pids)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="400 trials (make bench passes it to every benchmark)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--trial-seconds", type=float, default=0.3)
    parser.add_argument("--hold-seconds", type=float, default=5.0, help="how long the task holds one CPU")
    args = parser.parse_args(argv)
    if args.full:
        args.trials = 400
    quiet_ray_output()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        wall, pids = experiment(args.trials, args.trial_seconds, storage)
        print(f"alone: {wall:.1f} s wall, trials per process {sorted(pids.values(), reverse=True)}")
        held = ray.remote(num_cpus=1)(_hold).remote(args.hold_seconds)
        time.sleep(0.5)  # the task has its CPU before the experiment asks for actors
        wall, pids = experiment(args.trials, args.trial_seconds, storage)
        ray.get(held)
        print(f"a 1-CPU task holding a CPU for the first {args.hold_seconds:g} s: {wall:.1f} s wall, "
              f"trials per process {sorted(pids.values(), reverse=True)}")
    ray.shutdown()


if __name__ == "__main__":
    main()
