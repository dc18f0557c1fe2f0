"""One rung's Ray Tune experiment: the ledger callback, the progress line, one-line statuses and log records."""

import io
import logging
import sys
from types import SimpleNamespace

import pytest

import raysweep._ray_rung as ray_rung
from raysweep._progress import ProgressLine
from raysweep._ray_rung import error_status, ledger_callback, without_traceback
from raysweep.run_folder import Ledger, StorageUnavailable


class _Bucket:
    """A storage stand-in that records what is mirrored, or fails like an unreachable bucket."""

    def __init__(self, fail=False):
        self.mirrored, self.fail = [], fail

    def mirror(self, relative_paths):
        if self.fail:
            raise StorageUnavailable("storage unreachable at s3://b/runs/run/rungs/rung_0.trials.jsonl")
        self.mirrored.append(list(relative_paths))


def _result(callback, k):
    callback.on_trial_result(0, [], SimpleNamespace(trial_id=f"t{k}"), {"model": "kmeans", "k": k})


def test_ledger_is_mirrored_at_most_every_mirror_seconds_and_at_the_experiment_end(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(ray_rung.time, "monotonic", lambda: clock[0])
    bucket = _Bucket()
    callback = ledger_callback(Ledger(tmp_path / "rung_0.trials.jsonl"), 0, bucket, "rungs/rung_0.trials.jsonl")
    _result(callback, 2)
    callback.on_step_end(0, [])
    assert bucket.mirrored == []  # within MIRROR_SECONDS of the last copy
    clock[0] += ray_rung.MIRROR_SECONDS
    callback.on_step_end(0, [])
    _result(callback, 3)
    callback.on_step_end(0, [])
    assert bucket.mirrored == [["rungs/rung_0.trials.jsonl"]]
    callback.on_experiment_end([])
    assert len(bucket.mirrored) == 2


def test_ledger_callback_keeps_the_storage_error_for_the_command(tmp_path):
    callback = ledger_callback(Ledger(tmp_path / "rung_0.trials.jsonl"), 0, _Bucket(fail=True),
                               "rungs/rung_0.trials.jsonl")
    _result(callback, 2)
    with pytest.raises(StorageUnavailable, match="s3://b/runs/run/rungs/rung_0.trials.jsonl"):
        callback.on_experiment_end([])
    assert isinstance(callback.error, StorageUnavailable)


def test_tune_log_records_lose_their_traceback_but_keep_the_error():
    try:
        raise OSError("AWS Error NETWORK_CONNECTION during PutObject\nConnection refused")
    except OSError:
        record = logging.LogRecord("ray.tune", logging.ERROR, __file__, 1, "Saving to %r failed with exception: ",
                                   ("s3://b",), sys.exc_info())
    assert without_traceback(record)
    assert logging.Formatter().format(record) == "Saving to 's3://b' failed with exception: OSError: Connection refused"


def test_progress_line_counts_trials_and_tracks_the_best():
    stream = io.StringIO()
    line = ProgressLine(rung=1, n_rungs=3, n=6667, total=4, stopped=8, already_done=1, interval=0, stream=stream)
    first, second = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    line.on_trial_start(0, [], first)
    line.on_trial_start(0, [], second)
    line.on_trial_result(0, [], first, {"silhouette": 0.41, "model": "kmeans", "k": 17})
    line.on_trial_result(0, [], second, {"silhouette": float("nan"), "model": "gmm", "k": 99})
    line.on_trial_complete(0, [], first)
    line.on_trial_error(0, [], second)
    assert line.line() == ("[raysweep] rung 2/3 n=6,667 | 2/4 done, 0 running, 1 failed | 8 stopped | "
                           "best silhouette: kmeans k=17 0.410")
    assert stream.getvalue().splitlines()[-1] == line.line()


def test_error_status_of_a_ray_task_error_is_one_plain_line(ray_local):
    import ray

    @ray.remote
    def fails():
        raise ValueError("Fitting the mixture model failed\nsecond line")

    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        ray.get(fails.remote())
    assert "\x1b[" in str(caught.value) or "ray::" in str(caught.value)  # what a raw status used to carry
    assert error_status(caught.value) == "error: ValueError: Fitting the mixture model failed"
