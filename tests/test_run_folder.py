"""The run folder: its records and their formats, the JSON encoder, library versions, the trial ledger."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysweep import run_folder as rf
from raysweep.run_folder import FORMAT, Ledger, RunRecord, SweepResult, Winner, json_default

# A run folder written by raysweep before run.json, winner.json and settings.json had a "format" (commit 96b9e72:
# kmeans and birch, k = 2..4, on 600 blob rows; Ray's trial folders, plots and TensorBoard files left out).
FORMAT_1 = Path(__file__).parent / "fixtures" / "run_format1"


# --------------------------------------------------------------------------------------------- records and formats


def test_a_format_1_run_record_is_read():
    record = RunRecord.read(FORMAT_1 / rf.RUN_RECORD)
    assert (record.name, record.n_total, record.seed, record.feature_columns) == ("format1", 600, 0,
                                                                                   ["f0", "f1", "f2", "f3"])
    assert record.scaling["kind"] == "standard" and record.birch_threshold["0"] > 0


def test_a_format_1_winner_is_read():
    winner = Winner.read(FORMAT_1 / rf.WINNER)
    assert (winner.model, winner.k, winner.rung) == ("kmeans", 3, 0)
    assert "successive halving" in winner.promotion["rule"] and winner.scores["silhouette"] > 0.5


def test_records_are_written_with_the_format_and_read_back_equal(tmp_path):
    record = RunRecord.read(FORMAT_1 / rf.RUN_RECORD)
    record.write(tmp_path / rf.RUN_RECORD)
    assert json.loads((tmp_path / rf.RUN_RECORD).read_text())["format"] == FORMAT
    assert RunRecord.read(tmp_path / rf.RUN_RECORD) == record


@pytest.mark.parametrize("name, read", [(rf.RUN_RECORD, RunRecord.read), (rf.WINNER, Winner.read),
                                        (rf.SETTINGS, rf.read_settings)])
def test_an_unknown_format_is_one_line_naming_the_file(tmp_path, name, read):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**json.loads((FORMAT_1 / name).read_text()), "format": 99}))
    with pytest.raises(ValueError, match=rf"^{path}: run folder format 99; this raysweep reads formats 1, 2 ") as err:
        read(path)
    assert "\n" not in str(err.value)


def test_a_run_record_without_the_finalizer_contract_is_refused(tmp_path):
    (tmp_path / rf.RUN_RECORD).write_text(json.dumps({"features": "f.parquet", "seed": 0}))
    with pytest.raises(ValueError, match="run.json: missing keys feature_columns, scaling, n_total"):
        RunRecord.read(tmp_path / rf.RUN_RECORD)


def test_a_missing_record_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run.json: no such file"):
        RunRecord.read(tmp_path / rf.RUN_RECORD)


def test_settings_are_read_without_their_format(tmp_path):
    rf.write_settings(tmp_path / rf.SETTINGS, {"k_max": 9})
    assert json.loads((tmp_path / rf.SETTINGS).read_text()) == {"k_max": 9, "format": FORMAT}
    assert rf.read_settings(tmp_path / rf.SETTINGS) == {"k_max": 9}
    assert rf.read_settings(tmp_path / "absent.json") is None


def test_winner_from_selection_refuses_a_key_it_does_not_hold():
    with pytest.raises(TypeError, match="keys Winner does not hold: runner_up; add them to raysweep.run_folder"):
        Winner.from_selection({"model": "kmeans", "k": 3, "runner_up": "gmm"}, promotion={})


def test_sweep_result_reads_a_finished_folder():
    result = SweepResult.read(FORMAT_1)
    assert (result.winner.model, result.winner.k, len(result.leaderboard)) == ("kmeans", 3, 6)
    assert list(result.leaderboard.columns) == rf.LEADERBOARD_COLUMNS


# --------------------------------------------------------------------------------------------- writing


def test_json_default_keeps_numpy_values_and_paths():
    record = {"n": np.int64(3), "share": np.float32(0.5), "centre": np.array([1.0, 2.0]), "path": Path("a/b")}
    assert json.loads(json.dumps(record, default=json_default)) == {"n": 3, "share": 0.5, "centre": [1.0, 2.0],
                                                                    "path": "a/b"}


def test_json_default_refuses_an_object_instead_of_writing_its_repr():
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        json.dumps({"estimator": object()}, default=json_default)


def test_library_versions_name_python_raysweep_and_the_libraries():
    from raysweep import __version__

    versions = rf.library_versions()
    assert versions["raysweep"] == __version__ and versions["numpy"] == np.__version__
    assert {"python", "ray", "scikit-learn", "scipy", "pandas", "pyarrow", "joblib"} <= set(versions)


def test_leaderboard_frame_fills_missing_columns_and_sorts():
    frame = rf.leaderboard_frame([{"model": "kmeans", "k": 3, "rung": 0}, {"model": "birch", "k": 2, "rung": 0}])
    assert list(frame.columns) == rf.LEADERBOARD_COLUMNS and list(frame["model"]) == ["birch", "kmeans"]
    assert frame["status"].tolist() == ["", ""] and frame["silhouette"].isna().all()


def test_the_fixture_is_a_whole_old_folder(tmp_path):
    """What the resume test in test_tune copies: every rung file and no format anywhere."""
    copy = shutil.copytree(FORMAT_1, tmp_path / "run")
    for name in (rf.RUN_RECORD, rf.WINNER, rf.SETTINGS):
        assert "format" not in json.loads((copy / name).read_text())
    assert len(pd.read_parquet(copy / rf.rung_rows(0))) == len(Ledger(copy / rf.rung_ledger(0)).read()[0]) == 6


# --------------------------------------------------------------------------------------------- the ledger


def test_ledger_ignores_a_last_line_cut_by_a_crash(tmp_path):
    ledger = Ledger(tmp_path / "rung_0.trials.jsonl")
    ledger.append({"event": "attempt", "attempt": 0})
    ledger.append({"event": "result", "model": "kmeans", "k": 2, "silhouette": 0.5})
    with open(ledger.path, "a") as handle:
        handle.write('{"event": "result", "model": "kmeans", "k"')
    results, attempts = ledger.read()
    assert list(results) == ["kmeans:2"] and attempts == 1


def test_ledger_repair_removes_a_cut_last_line_so_appends_stay_readable(tmp_path):
    ledger = Ledger(tmp_path / "rung_0.trials.jsonl")
    ledger.append({"event": "attempt", "attempt": 0})
    with open(ledger.path, "a") as handle:
        handle.write('{"event": "result", "model": "kmeans", "k"')
    assert ledger.repair() == len('{"event": "result", "model": "kmeans", "k"')
    ledger.append({"event": "result", "model": "kmeans", "k": 3})
    assert list(ledger.read()[0]) == ["kmeans:3"]


def test_ledger_repair_keeps_a_whole_last_line_that_lost_only_its_newline(tmp_path):
    path = tmp_path / "rung_0.trials.jsonl"
    path.write_text('{"event": "attempt", "attempt": 0}\n{"event": "result", "model": "gmm", "k": 2}')
    ledger = Ledger(path)
    assert ledger.repair() == 0
    ledger.append({"event": "result", "model": "gmm", "k": 3})
    assert list(ledger.read()[0]) == ["gmm:2", "gmm:3"]


def test_ledger_rejects_a_corrupt_line_before_the_last(tmp_path):
    path = tmp_path / "rung_0.trials.jsonl"
    path.write_text('not json\n{"event": "attempt", "attempt": 0}\n')
    with pytest.raises(ValueError, match="line 1 is not valid JSON"):
        Ledger(path).read()
