"""One JSON record per benchmark figure, under ``benchmarks/records/<benchmark>/``: what a document may quote.

A record holds the benchmark's command line, the commit (and whether the work tree had uncommitted changes), the
machine (cores, RAM, CPU model, Python), the load average before and after, the measurement of every command the
figure comes from (wall, process-tree CPU, peak RSS: ``_measure.Measurement.to_record``) and the figure's own values.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "benchmarks" / "records"


def machine() -> dict:
    """Cores, RAM (GiB), CPU model and Python version of this machine."""
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return {"cores": os.cpu_count(), "ram_gib": round(ram, 1), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform()}


def commit() -> dict:
    """The checked-out commit (short hash) and whether tracked files differ from it."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": head, "uncommitted_changes": None if status is None else bool(status)}


def write_record(benchmark, figure, values, *, command=None, measurements=None, load_average_before=None,
                 folder=None) -> Path:
    """Write ``<folder or RECORDS/benchmark>/<figure>-<UTC time>.json`` and return its path.

    Parameters
    ----------
    benchmark : str
        Folder name under ``benchmarks/records`` (e.g. ``"sweep"``).
    figure : str
        What the record measures (e.g. ``"equal_fidelity-full"``); the file name's stem.
    values : dict
        The figure's own values (JSON-serializable).
    command : str, optional
        The benchmark's command line; default ``python <script> <arguments>`` of this process.
    measurements : dict of str -> Measurement or list of Measurement, optional
        Each tool's measured command(s), by tool name; a dict stands for a measurement recorded earlier
        (``Measurement.to_record``).
    load_average_before : sequence of float, optional
        Load average when the benchmark started; default the earliest of the measurements'.
    folder : path, optional
        Where to write instead of ``benchmarks/records/<benchmark>``.
    """
    measured = {tool: [_as_record(m) for m in value] if isinstance(value, (list, tuple)) else _as_record(value)
                for tool, value in (measurements or {}).items()}
    if load_average_before is None:
        flat = [m for value in measured.values() for m in (value if isinstance(value, list) else [value])
                if m.get("load_average_before")]
        load_average_before = min(flat, key=lambda m: m["started_utc"])["load_average_before"] if flat else None
    if command is None:
        script = Path(sys.argv[0]).resolve()
        shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
        command = " ".join(["python", str(shown), *sys.argv[1:]])
    now = time.gmtime()
    record = {
        "benchmark": benchmark, "figure": figure, "command": command, **commit(),
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", now), "machine": machine(),
        "load_average_before": None if load_average_before is None else [round(x, 2) for x in load_average_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "measurements": measured, "values": values,
    }
    target = Path(folder) if folder is not None else RECORDS / benchmark
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{figure}-{time.strftime('%Y%m%dT%H%M%SZ', now)}.json"
    path.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n")
    return path


def _as_record(measurement):
    return measurement if isinstance(measurement, dict) else measurement.to_record()


def _jsonable(value):
    """NumPy scalars and paths in ``values`` become plain JSON."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"record value of type {type(value).__name__} is not JSON-serializable")
