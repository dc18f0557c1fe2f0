"""Charts of a sweep; matplotlib is optional."""

import sys

import numpy as np
import pandas as pd

from raysweep.plots import write_plots


def _leaderboard():
    rows = []
    for rung, n, ks in ((0, 300, range(2, 9)), (1, 900, range(3, 6))):
        for model in ("kmeans", "gmm"):
            for k in ks:
                rows.append({"model": model, "k": k, "rung": rung, "n": n, "silhouette": 1 / k,
                             "davies_bouldin": k / 10, "calinski_harabasz": 100.0 * k})
    return pd.DataFrame(rows)


RUNGS = [{"rung": 0, "n": 300, "configs": 14, "promoted": 6}, {"rung": 1, "n": 900, "configs": 6, "promoted": 0}]


def test_write_plots_writes_both_pngs(tmp_path):
    paths = write_plots(_leaderboard(), RUNGS, tmp_path / "plots")
    assert [p.name for p in paths] == ["scores_vs_k.png", "survivors_per_rung.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_plots_replaces_previous_plots(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "stale.png").write_bytes(b"old")
    write_plots(_leaderboard(), RUNGS, tmp_path / "plots")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["scores_vs_k.png", "survivors_per_rung.png"]


def test_write_plots_without_matplotlib_skips_with_a_message(tmp_path, monkeypatch, capsys):
    # A None entry in sys.modules makes the import raise ImportError, as if matplotlib were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert write_plots(_leaderboard(), RUNGS, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()
    assert "matplotlib is not installed: plots skipped" in capsys.readouterr().err


def test_write_plots_handles_nan_scores(tmp_path):
    leaderboard = _leaderboard()
    leaderboard.loc[0, ["silhouette", "davies_bouldin", "calinski_harabasz"]] = np.nan
    assert len(write_plots(leaderboard, RUNGS, tmp_path / "plots")) == 2
