"""Where a finished sweep's wall time went, rung by rung: busy and idle CPU slots, from the run folder.

  python benchmarks/rung_timeline.py RESULTS/RUN [--cpus 2] [--record]

Per rung: its span (first trial start to last trial end, from Ray Tune's ``result.json`` of every trial:
``timestamp`` is the end, in whole seconds, and ``time_total_s`` the trial's own wall), the sum of its trials' wall,
the seconds of shared builds that ran within it (``rungs/builds.jsonl``) and the CPU slots left idle:
``cpus x span - trials - builds``. What lies outside the spans (Ray's start-up, the null model, the driver's work
between rungs, writing the results) is the sweep's wall (``run.json``) less the spans. These are wall-time slot
figures, not process CPU: a trial waiting for a core counts as busy, and a build asks Ray for no CPU (it shares the
cores with the trials), so a rung's idle slots can come out below zero.
"""

import argparse
import glob
import json
from collections import defaultdict
from pathlib import Path

from _records import write_record

from raysweep import run_folder as rf


def trial_times(run_dir):
    """{rung: [(start, end), ...]} of every trial with a result, in seconds since the epoch."""
    times = defaultdict(list)
    for path in glob.glob(str(Path(run_dir) / "ray" / "rung_*" / "*" / "result.json")):
        for line in Path(path).read_text().splitlines():
            result = json.loads(line)
            times[int(result["rung"])].append((result["timestamp"] - result["time_total_s"], result["timestamp"]))
    return times


def build_seconds(builds, spans):
    """{rung: seconds of shared builds within its span}. A build records ``started_at`` since session 9: its
    seconds count where they fell; an older record's count in the rung it served."""
    seconds = defaultdict(float)
    for build in builds:
        if build.get("reused"):
            continue
        if "started_at" not in build:
            seconds[int(build["rung"])] += float(build.get("seconds", 0.0))
            continue
        start, end = build["started_at"], build["started_at"] + float(build["seconds"])
        for rung, (first, last) in spans.items():
            seconds[rung] += max(0.0, min(end, last) - max(start, first))
    return seconds


def timeline(run_dir, cpus):
    run_dir = Path(run_dir)
    times = trial_times(run_dir)
    spans = {rung: (min(t[0] for t in ts), max(t[1] for t in ts)) for rung, ts in sorted(times.items())}
    builds = build_seconds(rf.read_lines(run_dir / rf.BUILDS), spans)
    rungs = []
    for rung, (start, end) in spans.items():
        trials = sum(t[1] - t[0] for t in times[rung])
        span = end - start
        rungs.append({"rung": rung, "trials": len(times[rung]), "span_s": round(span, 1),
                      "trial_wall_s": round(trials, 1), "build_s": round(builds[rung], 1),
                      "idle_slot_s": round(cpus * span - trials - builds[rung], 1)})
    wall = rf.read_json_object(run_dir / rf.RUN_RECORD, "run record")["wall_seconds"]
    return {"run_dir": str(run_dir), "cpus": cpus, "sweep_wall_s": round(wall, 1), "rungs": rungs,
            "outside_rung_spans_s": round(wall - sum(last - first for first, last in spans.values()), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--cpus", type=int, default=2, help="CPU slots the sweep ran with (default 2)")
    parser.add_argument("--record", action="store_true", help="also write a record under benchmarks/records/sweep")
    args = parser.parse_args(argv)
    values = timeline(args.run_dir, args.cpus)
    print(json.dumps(values, indent=2))
    if args.record:
        print(write_record("sweep", "rung_timeline", values))


if __name__ == "__main__":
    main()
