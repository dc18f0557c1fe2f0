"""The benchmarks' measuring helper (benchmarks/_measure.py) and their records (benchmarks/_records.py)."""

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MIB = 1 << 20


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_measure = _load("_measure")
_records = _load("_records")


def _python(tmp_path, source):
    """A command running ``source`` in a bare interpreter (-S: no site, so start-up costs little CPU)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return [sys.executable, "-S", str(script)]


def _forked_pair(tmp_path, before_fork="", after_fork=""):
    """A command whose process forks once; both run ``after_fork`` and live 1 s, then the child exits."""
    return _python(tmp_path, f"""
        import os, time
        {before_fork}
        pid = os.fork()
        {after_fork}
        time.sleep(1.0)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    """)


def test_cpu_of_an_orphaned_grandchild_is_counted(tmp_path):
    # The child exits at once without waiting; the grandchild burns CPU after that, and well inside one RSS
    # sampling interval, so only the kernel's accounting of reaped processes can see it.
    burned = tmp_path / "burned"
    command = _python(tmp_path, f"""
        import os, time
        if os.fork() == 0:
            start = time.process_time()
            while time.process_time() - start < 0.6:
                pass
            open({str(burned)!r}, "w").write(repr(time.process_time()))
            os._exit(0)
        os._exit(0)
    """)
    measured = _measure.measure(command, interval=30)
    assert float(burned.read_text()) <= measured.cpu_s <= float(burned.read_text()) + 0.5
    assert measured.cpu_from_samples_s == 0


def test_cpu_of_a_child_whose_parent_ignores_sigchld_is_counted_from_samples(tmp_path):
    # Like Ray's raylet and its workers: the kernel reaps such a child itself and reports its CPU to no one.
    burned = tmp_path / "burned"
    command = _python(tmp_path, f"""
        import os, signal, time
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        if os.fork() == 0:
            start = time.process_time()
            while time.process_time() - start < 0.6:
                pass
            open({str(burned)!r}, "w").write(repr(time.process_time()))
            os._exit(0)
        while not os.path.exists({str(burned)!r}):
            time.sleep(0.02)
        time.sleep(0.2)
    """)
    measured = _measure.measure(command, interval=0.05)
    cpu = float(burned.read_text())
    assert cpu - 0.15 <= measured.cpu_from_samples_s <= measured.cpu_s <= cpu + 0.5


def test_wall_ends_when_the_command_exits_and_drain_waits_for_descendants(tmp_path):
    command = _python(tmp_path, """
        import os, time
        if os.fork() == 0:
            time.sleep(1.0)
            os._exit(0)
        os._exit(0)
    """)
    measured = _measure.measure(command, interval=0.1)
    assert measured.wall_s < 0.9 <= measured.drain_s
    assert measured.stragglers == ()


def test_descendants_still_running_after_the_drain_timeout_are_killed_and_named(tmp_path):
    command = _python(tmp_path, """
        import os, time
        if os.fork() == 0:
            time.sleep(60)
        os._exit(0)
    """)
    measured = _measure.measure(command, interval=0.1, drain_timeout=0.3)
    assert measured.drain_s < 10
    assert len(measured.stragglers) == 1


def test_peak_rss_sums_the_live_processes_of_the_tree(tmp_path):
    # Parent and child each touch 120 MiB of their own (allocated after the fork, so no pages are shared).
    command = _forked_pair(tmp_path, after_fork='block = b"x" * (120 << 20)')
    measured = _measure.measure(command, interval=0.05)
    assert measured.peak_rss_bytes >= 2 * 120 * MIB
    assert 120 * MIB <= measured.peak_rss_largest_bytes < 2 * 120 * MIB


def test_peak_pss_counts_pages_shared_by_a_fork_once(tmp_path):
    # 200 MiB touched before the fork: parent and child map the same pages, so RSS counts them twice, PSS once.
    command = _forked_pair(tmp_path, before_fork='block = bytearray(200 << 20); block[:: 4096] = b"x" * (50 << 10)')
    measured = _measure.measure(command, interval=0.05)
    assert measured.peak_rss_bytes >= 2 * 200 * MIB
    assert 200 * MIB <= measured.peak_pss_bytes < 1.5 * 200 * MIB
    # Where the peak sits: both processes, named by their command line, their PSS summing to the peak.
    assert [name.split()[:2] for name, _ in measured.peak_pss_processes] == [[Path(sys.executable).name, "-S"]] * 2
    assert sum(pss for _, pss in measured.peak_pss_processes) == measured.peak_pss_bytes


def test_a_failing_command_raises_with_its_exit_status(tmp_path):
    command = _python(tmp_path, "import sys; sys.stderr.write('bad rows\\n'); sys.exit(3)")
    with pytest.raises(RuntimeError, match="failed with exit status 3: bad rows"):
        _measure.measure(command, capture_output=True)


def test_a_missing_executable_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cannot run .*no-such-tool"):
        _measure.measure([str(tmp_path / "no-such-tool")], capture_output=True)


def test_record_holds_command_commit_machine_load_and_measurements(tmp_path):
    measured = _measure.measure(_python(tmp_path, "print('ok')"), capture_output=True)
    path = _records.write_record("demo", "smoke", {"answer": 42}, command="python bench.py --quick",
                                 measurements={"tool": measured}, folder=tmp_path / "records")
    record = json.loads(path.read_text())
    assert path.name.startswith("smoke-") and record["command"] == "python bench.py --quick"
    assert record["commit"] and record["machine"]["cores"] >= 1 and record["machine"]["ram_gib"] > 0
    assert record["load_average_before"] == [round(x, 2) for x in measured.load_average_before]
    assert record["measurements"]["tool"]["returncode"] == 0 and record["values"] == {"answer": 42}


def test_a_command_past_its_time_limit_gets_sigint(tmp_path):
    command = _python(tmp_path, """
        import time
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            raise SystemExit(130)
    """)
    measured = _measure.measure(command, interval=0.05, time_limit=0.5, check=False)
    assert measured.stopped_at_time_limit and measured.returncode == 130 and measured.wall_s < 10


def test_rung_timeline_counts_idle_slots_per_rung(tmp_path):
    # Rung 0: two 4 s trials overlapping in a 6 s span, a 2 s build of its own and the last 2 s of a build
    # recorded for rung 1 that ran within rung 0's span, on 2 slots: 12 - 8 - 2 - 2 = 0 idle slot-seconds.
    # Rung 1: one 3 s trial alone and a reused build, which costs nothing: 2 x 3 - 3 = 3.
    rungs = {0: [(100, 104), (102, 106)], 1: [(110, 113)]}
    for rung, trials in rungs.items():
        for i, (start, end) in enumerate(trials):
            trial = tmp_path / "ray" / f"rung_{rung}" / f"kmeans_k{i + 2}"
            trial.mkdir(parents=True)
            (trial / "result.json").write_text(json.dumps({"rung": rung, "timestamp": end,
                                                           "time_total_s": end - start}) + "\n")
    (tmp_path / "rungs").mkdir()
    builds = [{"rung": 0, "seconds": 2.0}, {"rung": 1, "seconds": 3.0, "started_at": 104.0},
              {"rung": 1, "seconds": 3.0, "started_at": 104.0, "reused": True}]
    (tmp_path / "rungs" / "builds.jsonl").write_text("".join(json.dumps(b) + "\n" for b in builds))
    (tmp_path / "run.json").write_text(json.dumps({"wall_seconds": 20.0}))
    sys.path.insert(0, str(BENCHMARKS))  # rung_timeline imports _records as its script does
    try:
        timeline = _load("rung_timeline").timeline(tmp_path, cpus=2)
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert [(r["span_s"], r["trial_wall_s"], r["idle_slot_s"]) for r in timeline["rungs"]] == [(6, 8, 0), (3, 3, 3)]
    assert timeline["outside_rung_spans_s"] == 20 - 6 - 3
