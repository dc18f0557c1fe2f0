"""Measure a command as a user runs it: wall time, CPU of its whole process tree, peak RSS, load average.

    python benchmarks/_measure.py [--report FILE] [--interval S] [--drain-timeout S] -- COMMAND [ARG ...]

``measure(command)`` runs COMMAND under a *measuring process*: this file run as a script, which makes itself a
child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``) and then starts COMMAND. Every process COMMAND starts,
at any depth, is then reaped by the measuring process: a Ray worker orphaned when its raylet exits, a daemon that
double-forked, a process that exits between two samples. The kernel adds the user and system time of every
reaped process (all its threads included) to the measuring process's ``getrusage(RUSAGE_CHILDREN)``, so the CPU
figure is complete by construction rather than sampled. A plain ``wait4`` of COMMAND alone misses the CPU of
every descendant that COMMAND does not wait for itself (Ray's workers, GCS and raylet among them).

Memory is sampled: every ``interval`` seconds the RSS of all live descendants is summed (psutil); the peak of those
sums is ``peak_rss_bytes``. Pages shared between processes (Ray's object store, mapped by every worker) are counted
once per process that maps them, so the sum over-states the memory in use when objects are shared. The largest
single process's peak RSS, exact, comes from the kernel (``ru_maxrss`` of the reaped processes).

Wall time ends when COMMAND exits (what its user waits for); descendants still running then are waited for up to
``drain_timeout`` seconds (their CPU counts), after which they are killed and named in ``stragglers``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
GIB = 1 << 30


@dataclass(frozen=True)
class Measurement:
    """What one command cost, its whole process tree included.

    Attributes
    ----------
    command : tuple of str
    returncode : int
        The command's exit status (negative: killed by that signal).
    wall_s : float
        From start to the command's exit.
    cpu_user_s, cpu_system_s : float
        User and system CPU seconds of every process of the tree (all threads).
    peak_rss_bytes : int
        Largest sum of the RSS of the tree's live processes over the samples.
    peak_rss_largest_bytes : int
        Peak RSS of the largest single process of the tree (kernel accounting, exact).
    rss_samples : int
        Number of RSS samples taken, every ``sample_interval_s``.
    load_average_before, load_average_after : tuple of float
        1, 5 and 15 minute load averages just before the start and after the tree is gone.
    drain_s : float
        Seconds from the command's exit until its last descendant was gone.
    stragglers : tuple of str
        Descendants still running ``drain_timeout`` seconds after the command exited, killed: "name (pid)".
    measurer_cpu_s : float
        CPU seconds of the measuring process itself (sampling), not included in the figures above.
    started_utc : str
    stdout, stderr : str or None
        The command's output when captured.
    """

    command: tuple
    returncode: int
    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    peak_rss_bytes: int
    peak_rss_largest_bytes: int
    rss_samples: int
    sample_interval_s: float
    load_average_before: tuple
    load_average_after: tuple
    drain_s: float
    stragglers: tuple
    measurer_cpu_s: float
    started_utc: str
    stdout: str | None = field(default=None, repr=False)
    stderr: str | None = field(default=None, repr=False)

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of the whole tree."""
        return self.cpu_user_s + self.cpu_system_s

    def to_record(self) -> dict:
        """The figures as a JSON-ready dict (seconds to 0.01, memory in GiB), without the captured output."""
        return {
            "command": " ".join(self.command), "returncode": self.returncode, "started_utc": self.started_utc,
            "wall_s": round(self.wall_s, 2), "cpu_s": round(self.cpu_s, 2),
            "cpu_user_s": round(self.cpu_user_s, 2), "cpu_system_s": round(self.cpu_system_s, 2),
            "peak_rss_gib": round(self.peak_rss_bytes / GIB, 3),
            "peak_rss_largest_process_gib": round(self.peak_rss_largest_bytes / GIB, 3),
            "rss_samples": self.rss_samples, "sample_interval_s": self.sample_interval_s,
            "load_average_before": [round(x, 2) for x in self.load_average_before],
            "load_average_after": [round(x, 2) for x in self.load_average_after],
            "drain_s": round(self.drain_s, 2), "stragglers": list(self.stragglers),
            "measurer_cpu_s": round(self.measurer_cpu_s, 2),
        }


def measure(command, *, cwd=None, env=None, capture_output=False, stdout=None, interval=0.5, drain_timeout=60.0,
            check=True) -> Measurement:
    """Run ``command`` under a measuring process and return what its whole process tree cost.

    Parameters
    ----------
    command : sequence of str
        The command, as for ``subprocess.run`` (no shell).
    cwd, env : optional
        Working folder and environment of the command.
    capture_output : bool, default=False
        Keep the command's stdout and stderr (text) in the result; otherwise they go to this process's.
    stdout : file or int, optional
        Where the command's stdout goes when not captured (e.g. ``subprocess.DEVNULL``).
    interval : float, default=0.5
        Seconds between RSS samples of the tree.
    drain_timeout : float, default=60.0
        Seconds to wait, after the command exits, for its remaining descendants before killing them.
    check : bool, default=True
        Raise ``RuntimeError`` (naming the command and its exit status) when the command fails.

    Returns
    -------
    Measurement
    """
    command = [str(part) for part in command]
    if not command:
        raise ValueError("measure: empty command")
    with tempfile.TemporaryDirectory(prefix="measure-") as folder:
        report = Path(folder) / "report.json"
        wrapper = [sys.executable, str(Path(__file__).resolve()), "--report", str(report), "--interval",
                   str(interval), "--drain-timeout", str(drain_timeout), "--", *command]
        done = subprocess.run(wrapper, cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE if capture_output else stdout,
                              stderr=subprocess.PIPE if capture_output else None)
        if not report.exists():
            raise RuntimeError(f"measuring {' '.join(command)} failed (exit status {done.returncode})"
                               + (f": {done.stderr.strip().splitlines()[-1]}" if capture_output and done.stderr
                                  and done.stderr.strip() else ""))
        figures = json.loads(report.read_text())
    figures.update(command=tuple(command), load_average_before=tuple(figures["load_average_before"]),
                   load_average_after=tuple(figures["load_average_after"]), stragglers=tuple(figures["stragglers"]))
    result = Measurement(**figures, stdout=done.stdout if capture_output else None,
                         stderr=done.stderr if capture_output else None)
    if check and result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr and result.stderr.strip() else ""
        raise RuntimeError(f"{' '.join(command)} failed with exit status {result.returncode}"
                           + (f": {detail}" if detail else ""))
    return result


def _become_subreaper():
    """Make this process the reaper of every orphaned descendant (Linux only)."""
    if not sys.platform.startswith("linux"):
        raise SystemExit("_measure.py: needs Linux (prctl PR_SET_CHILD_SUBREAPER)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"_measure.py: prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of this process's descendants; after the command exits, kills late stragglers."""

    def __init__(self, interval, drain_timeout):
        super().__init__(daemon=True)
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self.interval, self.drain_timeout = interval, drain_timeout
        self.peak, self.samples, self.stragglers = 0, 0, []
        self.command_exited_at = None  # set by the reaping thread
        self.finished = threading.Event()

    def _descendants(self):
        try:
            return self._me.children(recursive=True)
        except self._psutil.Error:
            return []

    def sample(self):
        total = 0
        for process in self._descendants():
            try:
                total += process.memory_info().rss
            except self._psutil.Error:  # exited (or a zombie) since the listing
                continue
        self.peak = max(self.peak, total)
        self.samples += 1

    def _kill_stragglers(self):
        for process in self._descendants():
            try:
                self.stragglers.append(f"{process.name()} ({process.pid})")
                process.kill()
            except self._psutil.Error:
                continue

    def run(self):
        while not self.finished.wait(self.interval):
            self.sample()
            exited = self.command_exited_at
            if exited is not None and not self.stragglers and time.perf_counter() - exited > self.drain_timeout:
                self._kill_stragglers()


def _run_measured(command, interval, drain_timeout):
    """Run ``command`` as this (subreaper) process's child; reap the whole tree; return the figures as a dict."""
    _become_subreaper()
    load_before = os.getloadavg()
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sampler = _TreeSampler(interval, drain_timeout)
    start = time.perf_counter()
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        raise SystemExit(f"_measure.py: cannot run {command[0]}: {error.strerror}") from None
    def forward(signum, frame):
        if child.returncode is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to the command too
    sampler.sample()
    sampler.start()
    returncode, wall = None, None
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # nothing left to reap: the whole tree is gone
            break
        if pid == child.pid:
            returncode, wall = os.waitstatus_to_exitcode(status), time.perf_counter() - start
            child.returncode = returncode  # reaped here, so Popen must not wait for it
            sampler.command_exited_at = time.perf_counter()
    drain = time.perf_counter() - start - wall
    sampler.finished.set()
    sampler.join()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "returncode": returncode, "wall_s": wall, "cpu_user_s": children.ru_utime, "cpu_system_s": children.ru_stime,
        "peak_rss_bytes": sampler.peak, "peak_rss_largest_bytes": children.ru_maxrss * 1024,
        "rss_samples": sampler.samples, "sample_interval_s": interval, "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()), "drain_s": drain, "stragglers": sampler.stragglers,
        "measurer_cpu_s": me.ru_utime + me.ru_stime, "started_utc": started_utc,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="write the figures here as JSON (default: print them)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples (default 0.5)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="seconds to wait for descendants after the command exits (default 60)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    if args.interval <= 0:
        parser.error(f"--interval must be > 0, got {args.interval}")
    figures = _run_measured(command, args.interval, args.drain_timeout)
    if args.report is None:
        print(json.dumps(figures, indent=2), file=sys.stderr)
    else:
        args.report.write_text(json.dumps(figures) + "\n")
    return figures["returncode"] if figures["returncode"] >= 0 else 128 - figures["returncode"]


if __name__ == "__main__":
    sys.exit(main())
