"""The README's Python examples run as written (doctest)."""

import doctest
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_examples_run(ray_local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write blobs.parquet and results/ in the working directory
    failed, attempted = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert attempted >= 7 and failed == 0
