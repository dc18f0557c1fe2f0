"""The co-occurrence embedding: the streamed playlist x track matrix, and separation of planted profiles."""

import numpy as np
import pytest

from raysweep.feature_matrix import read_feature_matrix
from raysweep.features.__main__ import main
from raysweep.features.cooccurrence import build_cooccurrence_embedding, playlist_track_matrix
from handmade_datasets import write_dataset


def planted_playlists(n_playlists=600, n_profiles=6, seed=0):
    """Playlists whose tracks come 60% from their profile's catalogue, 40% from a shared popular pool."""
    rng = np.random.default_rng(seed)
    catalogues = [[f"spotify:track:p{p}t{i}" for i in range(150)] for p in range(n_profiles)]
    popular = [f"spotify:track:pop{i}" for i in range(300)]
    popularity = 1.0 / np.arange(1, len(popular) + 1)  # Zipf: a few hits in everyone's playlists
    popularity /= popularity.sum()
    playlists, profile = {}, {}
    for pid in range(n_playlists):
        p = int(rng.integers(n_profiles))
        size = int(rng.integers(10, 40))
        own = int(rng.binomial(size, 0.6))
        tracks = list(rng.choice(catalogues[p], size=own, replace=False))
        tracks += list(rng.choice(popular, size=size - own, replace=False, p=popularity))
        playlists[pid], profile[pid] = [str(t) for t in rng.permutation(tracks)], p
    return playlists, profile


def knn_purity(vectors, labels, k=10):
    """Mean share of each point's k nearest neighbours (cosine) with its label; chance is sum of p_c^2."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    return float((labels[neighbours] == labels[:, None]).mean())


def test_matrix_counts_each_playlist_track_pair(tmp_path):
    playlists = {7: ["spotify:track:a", "spotify:track:b", "spotify:track:a"], 3: ["spotify:track:c"]}
    counts, pid = playlist_track_matrix(write_dataset(tmp_path / "d", playlists))
    assert pid.tolist() == [3, 7]
    # track ids: a=0, b=1, c=2 (first occurrence)
    np.testing.assert_array_equal(counts.toarray(), [[0, 0, 1], [2, 1, 0]])
    assert counts.dtype == np.float32


def test_embedding_separates_planted_profiles(tmp_path):
    playlists, profile = planted_playlists()
    dataset = write_dataset(tmp_path / "d", playlists)
    build_cooccurrence_embedding(dataset, tmp_path / "emb.parquet", dim=16, seed=0)
    matrix = read_feature_matrix(tmp_path / "emb.parquet")
    labels = np.array([profile[p] for p in matrix.pid])
    chance = float(((np.bincount(labels) / len(labels)) ** 2).sum())
    assert chance < 0.2
    assert knn_purity(matrix.values, labels) > 0.9


def test_vectors_are_unit_length_and_metadata_says_no_scaling(tmp_path):
    playlists, _ = planted_playlists(n_playlists=200)
    dataset = write_dataset(tmp_path / "d", playlists)
    build_cooccurrence_embedding(dataset, tmp_path / "emb.parquet", dim=8, seed=0)
    matrix = read_feature_matrix(tmp_path / "emb.parquet")
    np.testing.assert_allclose(np.linalg.norm(matrix.values, axis=1), 1.0, rtol=1e-5)
    assert matrix.columns == [f"cooc_{j:02d}" for j in range(8)]
    assert matrix.metadata["scaling"] == {"kind": "none"}
    assert matrix.metadata["source"] == "cooccurrence"
    assert matrix.metadata["dim"] == 8
    ratio = matrix.metadata["explained_variance_ratio"]
    assert len(ratio) == 8 and 0 < sum(ratio) < 1


def test_same_seed_gives_the_same_embedding(tmp_path):
    playlists, _ = planted_playlists(n_playlists=200)
    dataset = write_dataset(tmp_path / "d", playlists)
    build_cooccurrence_embedding(dataset, tmp_path / "a.parquet", dim=8, seed=3)
    build_cooccurrence_embedding(dataset, tmp_path / "b.parquet", dim=8, seed=3)
    np.testing.assert_array_equal(read_feature_matrix(tmp_path / "a.parquet").values,
                                  read_feature_matrix(tmp_path / "b.parquet").values)


def test_playlists_of_single_use_tracks_are_left_out_and_counted(tmp_path):
    playlists, _ = planted_playlists(n_playlists=200)
    playlists[999] = ["spotify:track:only-here-1", "spotify:track:only-here-2"]
    dataset = write_dataset(tmp_path / "d", playlists)
    summary = build_cooccurrence_embedding(dataset, tmp_path / "emb.parquet", dim=8, min_playlists=2)
    matrix = read_feature_matrix(tmp_path / "emb.parquet")
    assert 999 not in matrix.pid
    assert summary["n_playlists_left_out"] == matrix.metadata["n_playlists_left_out"] == 1


def test_dim_not_below_the_matrix_size_is_an_error(tmp_path):
    playlists, _ = planted_playlists(n_playlists=20)
    dataset = write_dataset(tmp_path / "d", playlists)
    with pytest.raises(ValueError, match="dim=20: must be smaller than both the 20 playlists"):
        build_cooccurrence_embedding(dataset, tmp_path / "emb.parquet", dim=20)


def test_cli_cooccurrence(tmp_path, capsys):
    playlists, _ = planted_playlists(n_playlists=200)
    dataset = write_dataset(tmp_path / "d", playlists)
    status = main(["cooccurrence", "--dataset", str(dataset), "--out", str(tmp_path / "emb.parquet"),
                   "--dim", "4"])
    assert status == 0
    assert '"n_playlists": 200' in capsys.readouterr().out
    assert read_feature_matrix(tmp_path / "emb.parquet").values.shape == (200, 4)


def test_cli_missing_dataset_exits_1_naming_it(tmp_path, capsys):
    status = main(["cooccurrence", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e.parquet")])
    assert status == 1
    assert "nowhere: no playlists/ folder" in capsys.readouterr().err


@pytest.mark.slow
def test_embedding_of_generated_data_separates_its_planted_profiles(generated_mpd, tmp_path):
    import pyarrow.parquet as pq

    build_cooccurrence_embedding(generated_mpd / "dataset", tmp_path / "emb.parquet", dim=16, seed=0)
    matrix = read_feature_matrix(tmp_path / "emb.parquet")
    planted = pq.read_table(generated_mpd / "mpd" / "planted_profiles.parquet").to_pandas().set_index("pid")["profile"]
    labels = planted.loc[matrix.pid].to_numpy()
    chance = float(((np.bincount(labels) / len(labels)) ** 2).sum())
    assert chance < 0.25
    assert knn_purity(matrix.values, labels) > 0.9
