"""Atomic outputs: complete or absent, never half-written."""

import os

import pytest

from raysweep.storage import atomic_dir, atomic_file, filesystem_and_path, is_uri


def test_atomic_file_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_file(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_file_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_dir(tmp_path / "dataset") as tmp:
            (tmp / "part-0.parquet").write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_previous_output(tmp_path):
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "fresh.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["fresh.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


def test_outputs_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            pass
        with atomic_file(tmp_path / "f") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644


def test_uri_and_local_paths_are_told_apart(tmp_path):
    assert is_uri("s3://bucket/run?endpoint_override=127.0.0.1:9000")
    assert not is_uri(tmp_path / "x")
    assert not is_uri("C:/data")
    fs, path = filesystem_and_path(tmp_path / "x")
    assert fs.type_name == "local" and path == str((tmp_path / "x").resolve())
