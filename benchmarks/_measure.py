"""Measure a command as a user runs it: wall time, CPU of its whole process tree, peak RSS, load average.

    python benchmarks/_measure.py [--report FILE] [--interval S] [--drain-timeout S] [--time-limit S] -- COMMAND ...

``measure(command)`` runs COMMAND under a *measuring process*: this file run as a script, which makes itself a
child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``) and then starts COMMAND. Every process COMMAND starts,
at any depth, that is orphaned (a Ray worker whose raylet exits first, a daemon that double-forked) is then
reaped by the measuring process, and the kernel adds the user and system time of every process reaped along the
tree (all its threads) to the measuring process's ``getrusage(RUSAGE_CHILDREN)``: exact, whenever a process exits
between two samples. A plain ``wait4`` of COMMAND misses every descendant COMMAND does not wait for itself.

One case escapes the kernel's accounting: a process whose parent ignores SIGCHLD is reaped by the kernel at once
and its CPU time is added nowhere. Ray's raylet ignores SIGCHLD, so its workers (where Ray's trials run) are such
processes. For them the CPU of their last sample is counted (``cpu_from_samples_s``), so what one of them uses
after its last sample (at most one ``interval`` of CPU time) is missed, and one that lives less than an interval
is missed whole. Every ``interval`` seconds the measuring process also sums the RSS of all live descendants, and
every ``PSS_EVERY`` samples their PSS (psutil; reading PSS costs ~15x the RSS: 62.5 against 3.9 CPU-s of the
measuring process over a 6-minute 1M sweep); the peaks of those sums are ``peak_rss_bytes`` and ``peak_pss_bytes``.
RSS counts a page shared between processes (Ray's object store, mapped by every worker) once per process that maps
it, so its sum over-states the memory in use when objects are shared; PSS divides each shared page among the
processes that map it, so its sum is the memory the tree holds. The largest single process's peak RSS is exact
(``ru_maxrss`` of the reaped processes).

Wall time ends when COMMAND exits (what its user waits for); descendants still running then are waited for up to
``drain_timeout`` seconds (their CPU counts), after which they are killed and named in ``stragglers``. With a
``time_limit``, COMMAND is sent SIGINT (Ctrl-C: ``raysweep.tune`` keeps what finished and a rerun resumes) once it
has run that long, and killed if it is still running ``drain_timeout`` seconds later.
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
MIB = 1 << 20
PSS_EVERY = 8  # samples between two PSS sums (every 2 s at the default interval)


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
    cpu_from_samples_s : float
        The part of them known from samples only: processes reaped by a parent that ignores SIGCHLD (Ray's raylet
        for its workers), whose CPU the kernel reports to no one.
    peak_rss_bytes : int
        Largest sum of the RSS of the tree's live processes over the samples.
    peak_pss_bytes : int
        Largest sum of the PSS (proportional set size) of the tree's live processes over every ``PSS_EVERY``-th
        sample.
    peak_pss_processes : tuple of (str, int)
        At the sample of ``peak_pss_bytes``: each live process's command line (the program's base name and the
        arguments, 80 characters; Ray workers name their task or actor there) and PSS in bytes, largest first.
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
    stopped_at_time_limit : bool
        The command was sent SIGINT at the time limit.
    started_utc : str
    stdout, stderr : str or None
        The command's output when captured.
    """

    command: tuple
    returncode: int
    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    cpu_from_samples_s: float
    peak_rss_bytes: int
    peak_pss_bytes: int
    peak_pss_processes: tuple
    peak_rss_largest_bytes: int
    rss_samples: int
    sample_interval_s: float
    load_average_before: tuple
    load_average_after: tuple
    drain_s: float
    stragglers: tuple
    measurer_cpu_s: float
    stopped_at_time_limit: bool
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
            "cpu_from_samples_s": round(self.cpu_from_samples_s, 2),
            "peak_rss_gib": round(self.peak_rss_bytes / GIB, 3),
            "peak_pss_gib": round(self.peak_pss_bytes / GIB, 3),
            "peak_pss_processes": [{"process": name, "pss_mib": round(pss / MIB, 1)}
                                   for name, pss in self.peak_pss_processes],
            "peak_rss_largest_process_gib": round(self.peak_rss_largest_bytes / GIB, 3),
            "rss_samples": self.rss_samples, "sample_interval_s": self.sample_interval_s,
            "load_average_before": [round(x, 2) for x in self.load_average_before],
            "load_average_after": [round(x, 2) for x in self.load_average_after],
            "drain_s": round(self.drain_s, 2), "stragglers": list(self.stragglers),
            "measurer_cpu_s": round(self.measurer_cpu_s, 2), "stopped_at_time_limit": self.stopped_at_time_limit,
        }


def measure(command, *, cwd=None, env=None, capture_output=False, stdout=None, interval=0.25, drain_timeout=60.0,
            time_limit=None, check=True) -> Measurement:
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
    interval : float, default=0.25
        Seconds between samples of the tree (RSS; CPU of processes the kernel does not report, see module doc).
    drain_timeout : float, default=60.0
        Seconds to wait, after the command exits, for its remaining descendants before killing them.
    time_limit : float, optional
        Seconds after which the command is sent SIGINT (and killed ``drain_timeout`` seconds later).
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
                   str(interval), "--drain-timeout", str(drain_timeout),
                   *([] if time_limit is None else ["--time-limit", str(time_limit)]), "--", *command]
        done = subprocess.run(wrapper, cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE if capture_output else stdout,
                              stderr=subprocess.PIPE if capture_output else None)
        if not report.exists():
            raise RuntimeError(f"measuring {' '.join(command)} failed (exit status {done.returncode})"
                               + (f": {done.stderr.strip().splitlines()[-1]}" if capture_output and done.stderr
                                  and done.stderr.strip() else ""))
        figures = json.loads(report.read_text())
    figures.update(command=tuple(command), load_average_before=tuple(figures["load_average_before"]),
                   load_average_after=tuple(figures["load_average_after"]), stragglers=tuple(figures["stragglers"]),
                   peak_pss_processes=tuple((name, pss) for name, pss in figures["peak_pss_processes"]))
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
    """Samples this process's descendants: their summed RSS, and the CPU of those the kernel will not report.

    A process whose parent ignores SIGCHLD (Ray's raylet does, for its workers) is reaped by the kernel itself when
    it exits, and its CPU time reaches no one's ``RUSAGE_CHILDREN``. For those, the CPU of the last sample
    (its own, plus that of the children it waited for) is counted instead: what such a process uses after its
    last sample, at most one interval of CPU time, is missed. After the command exits, late stragglers are killed.
    """

    def __init__(self, interval, drain_timeout, time_limit=None):
        super().__init__(daemon=True)
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self.interval, self.drain_timeout = interval, drain_timeout
        self.peak, self.peak_pss, self.samples, self.stragglers = 0, 0, 0, []
        self.peak_pss_processes = []  # [(command line, PSS bytes)] at the PSS peak
        self.command_exited_at = None  # set by the reaping thread
        self.command, self.command_started_at = None, None  # set when the command starts
        self.time_limit, self.stopped_at_time_limit = time_limit, False
        self.finished = threading.Event()
        self._lock = threading.Lock()
        # (pid, create time) -> ((user, system) CPU seconds incl. waited-for children, parent ignores SIGCHLD)
        self._seen = {}
        self._current = {}  # pid -> (pid, create time), as of the last sample
        self._reaped = set()  # (pid, create time) of the processes this process reaped

    def _descendants(self):
        try:
            return self._me.children(recursive=True)
        except self._psutil.Error:
            return []

    @staticmethod
    def _ignores_sigchld(pid):
        try:
            with open(f"/proc/{pid}/status") as status:
                mask = next(line.split()[1] for line in status if line.startswith("SigIgn:"))
        except (OSError, StopIteration):
            return False
        return bool(int(mask, 16) >> (signal.SIGCHLD - 1) & 1)

    def sample(self):
        total, total_pss, current, ignoring, by_process = 0, 0, {}, {}, []
        with_pss = self.samples % PSS_EVERY == 0
        for process in self._descendants():
            try:
                key, times, ppid = (process.pid, process.create_time()), process.cpu_times(), process.ppid()
            except self._psutil.Error:  # exited since the listing
                continue
            if ppid not in ignoring:
                ignoring[ppid] = self._ignores_sigchld(ppid)
            current[process.pid] = key
            with self._lock:
                self._seen[key] = ((times.user + times.children_user, times.system + times.children_system),
                                   ignoring[ppid])
            try:
                if with_pss:
                    memory = process.memory_full_info()  # reads /proc/PID/smaps_rollup
                    total_pss += memory.pss
                    argv = process.cmdline() or [process.name()]
                    by_process.append((" ".join([os.path.basename(argv[0]), *argv[1:]])[:80], memory.pss))
                else:
                    memory = process.memory_info()
            except self._psutil.Error:  # a zombie holds no memory
                continue
            total += memory.rss
        with self._lock:
            self._current = current
        self.peak = max(self.peak, total)
        if total_pss > self.peak_pss:
            self.peak_pss, self.peak_pss_processes = total_pss, sorted(by_process, key=lambda p: -p[1])
        self.samples += 1

    def reaped(self, pid):
        """Note that this process reaped ``pid``: the kernel reports its CPU, so no sample of it counts."""
        with self._lock:
            key = self._current.get(pid)
            if key is not None:
                self._reaped.add(key)

    def unreported_cpu(self):
        """(user, system) seconds, from their last samples, of processes reaped by a parent ignoring SIGCHLD."""
        with self._lock:
            lost = [times for key, (times, ignored) in self._seen.items() if ignored and key not in self._reaped]
        return sum(t[0] for t in lost), sum(t[1] for t in lost)

    def _kill_stragglers(self):
        for process in self._descendants():
            try:
                self.stragglers.append(f"{process.name()} ({process.pid})")
                process.kill()
            except self._psutil.Error:
                continue

    def _enforce_time_limit(self):
        """SIGINT to the command at the time limit; SIGKILL ``drain_timeout`` seconds later."""
        over = time.perf_counter() - self.command_started_at - self.time_limit
        if over < 0:
            return
        if not self.stopped_at_time_limit:
            self.stopped_at_time_limit = True
            _signal_unreaped(self.command, signal.SIGINT)
        elif over > self.drain_timeout:
            _signal_unreaped(self.command, signal.SIGKILL)

    def run(self):
        while not self.finished.wait(self.interval):
            self.sample()
            exited = self.command_exited_at
            if exited is None and self.time_limit is not None:
                self._enforce_time_limit()
            if exited is not None and not self.stragglers and time.perf_counter() - exited > self.drain_timeout:
                self._kill_stragglers()


def _signal_unreaped(child, signum):
    """Signal the command unless it was reaped. (Not ``Popen.send_signal``: its poll() would reap the command here,
    behind the reaping loop's back.)"""
    if child.returncode is None:
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass


def _run_measured(command, interval, drain_timeout, time_limit=None):
    """Run ``command`` as this (subreaper) process's child; reap the whole tree; return the figures as a dict."""
    _become_subreaper()
    load_before = os.getloadavg()
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sampler = _TreeSampler(interval, drain_timeout, time_limit)
    start = time.perf_counter()
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        raise SystemExit(f"_measure.py: cannot run {command[0]}: {error.strerror}") from None

    def forward(signum, frame):
        _signal_unreaped(child, signum)

    signal.signal(signal.SIGTERM, forward)
    sampler.command, sampler.command_started_at = child, start
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to the command too
    sampler.sample()
    sampler.start()
    returncode, wall = None, None
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # nothing left to reap: the whole tree is gone
            break
        sampler.reaped(pid)
        if pid == child.pid:
            returncode, wall = os.waitstatus_to_exitcode(status), time.perf_counter() - start
            child.returncode = returncode  # reaped here, so Popen must not wait for it
            sampler.command_exited_at = time.perf_counter()
    drain = time.perf_counter() - start - wall
    sampler.finished.set()
    sampler.join()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    sampled_user, sampled_system = sampler.unreported_cpu()
    return {
        "returncode": returncode, "wall_s": wall, "cpu_user_s": children.ru_utime + sampled_user,
        "cpu_system_s": children.ru_stime + sampled_system, "cpu_from_samples_s": sampled_user + sampled_system,
        "peak_rss_bytes": sampler.peak, "peak_pss_bytes": sampler.peak_pss,
        "peak_pss_processes": sampler.peak_pss_processes,
        "peak_rss_largest_bytes": children.ru_maxrss * 1024,
        "rss_samples": sampler.samples, "sample_interval_s": interval, "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()), "drain_s": drain, "stragglers": sampler.stragglers,
        "measurer_cpu_s": me.ru_utime + me.ru_stime, "stopped_at_time_limit": sampler.stopped_at_time_limit,
        "started_utc": started_utc,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="write the figures here as JSON (default: print them)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples (default 0.25)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="seconds to wait for descendants after the command exits (default 60)")
    parser.add_argument("--time-limit", type=float, help="send the command SIGINT after this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    if args.interval <= 0:
        parser.error(f"--interval must be > 0, got {args.interval}")
    figures = _run_measured(command, args.interval, args.drain_timeout, args.time_limit)
    if args.report is None:
        print(json.dumps(figures, indent=2), file=sys.stderr)
    else:
        args.report.write_text(json.dumps(figures) + "\n")
    return figures["returncode"] if figures["returncode"] >= 0 else 128 - figures["returncode"]


if __name__ == "__main__":
    sys.exit(main())
