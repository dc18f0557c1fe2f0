"""The README's Python examples run as doctests."""

import doctest
import re
from pathlib import Path

import pytest

from test_finalize import make_run

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(name):
    """The README's text between ``<!-- name -->`` and ``<!-- /name -->``, its code fences blanked, and its line.

    A fence closing a block would otherwise read as the last example's expected output.
    """
    text = README.read_text()
    found = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, flags=re.S)
    assert found, f"README.md has no {name} section"
    return re.sub(r"^```.*$", "", found.group(1), flags=re.M), text.count("\n", 0, found.start(1))


def test_finalize_notebook_example_runs(tmp_path):
    run, _, _ = make_run(tmp_path)  # 2,000 playlists in 4 blobs, winner kmeans k=4
    text, line = _section("finalize")
    test = doctest.DocTestParser().get_doctest(text, {"run": run}, "README.md (finalize)", str(README), line)
    assert len(test.examples) >= 5
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


@pytest.mark.slow
def test_sweep_notebook_example_runs(ray_local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes blobs.parquet and results/ in the working directory
    text, line = _section("sweep-api")
    test = doctest.DocTestParser().get_doctest(text, {}, "README.md (sweep-api)", str(README), line)
    assert len(test.examples) >= 7
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
