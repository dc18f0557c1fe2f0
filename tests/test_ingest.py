"""Tests of ingest: exact round trip of generated slices, determinism, and one message per kind of bad input."""

import csv
import json
import shutil

import orjson
import pyarrow.dataset as ds
import pytest

from raysweep import ingest as ingest_module
from raysweep.ingest import RejectedInputError, ingest, main
from raysweep.mpd import slice_files
from raysweep.synth import generate

PLAYLIST_COLUMNS = ["pid", "name", "name_normalized", "collaborative", "modified_at", "num_tracks", "num_albums",
                    "num_artists", "num_followers", "num_edits", "duration_ms", "description"]
TRACK_COLUMNS = ["track_id", "track_uri", "track_name", "artist_uri", "artist_name", "album_uri", "album_name",
                 "duration_ms"]


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    """300 generated playlists in 3 slices of 100."""
    out = tmp_path_factory.mktemp("mpd") / "mpd"
    generate(out, 300, slice_size=100, seed=1, workers=1)
    return out / "data"


@pytest.fixture(scope="module")
def dataset(slices, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset") / "dataset"
    return out, ingest(slices, out, workers=1)


@pytest.fixture
def src(slices, tmp_path):
    """A private copy of the slices that a test may damage."""
    return shutil.copytree(slices, tmp_path / "src")


def read(out, name):
    return ds.dataset(out / name).to_table().to_pandas()


def json_playlists(folder):
    return [p for path in slice_files(folder) for p in orjson.loads(path.read_bytes())["playlists"]]


def manifest(out):
    with open(out / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_columns_are_exactly_the_contract(dataset):
    out, _ = dataset
    assert read(out, "playlists").columns.tolist() == PLAYLIST_COLUMNS
    assert read(out, "tracks").columns.tolist() == TRACK_COLUMNS
    assert read(out, "playlist_tracks").columns.tolist() == ["pid", "pos", "track_id"]


def test_playlists_round_trip_exactly(slices, dataset):
    out, summary = dataset
    expected = json_playlists(slices)
    playlists = read(out, "playlists")
    assert summary["playlists"] == len(playlists) == 300
    assert playlists["pid"].tolist() == [p["pid"] for p in expected]
    assert playlists["name"].tolist() == [p["name"] for p in expected]
    assert playlists["collaborative"].tolist() == [p["collaborative"] == "true" for p in expected]
    descriptions = ds.dataset(out / "playlists").to_table(columns=["description"]).column(0).to_pylist()
    assert descriptions == [p.get("description") for p in expected]
    for column in ("modified_at", "num_tracks", "num_albums", "num_artists", "num_followers", "num_edits",
                   "duration_ms"):
        assert playlists[column].tolist() == [p[column] for p in expected], column


def test_track_lists_round_trip_exactly(slices, dataset):
    out, summary = dataset
    expected = json_playlists(slices)
    tracks = read(out, "tracks").set_index("track_id")
    entries = read(out, "playlist_tracks")
    assert summary["track_entries"] == len(entries) == sum(p["num_tracks"] for p in expected)
    uris = tracks.loc[entries["track_id"], "track_uri"].tolist()
    assert uris == [t["track_uri"] for p in expected for t in p["tracks"]]
    assert entries["pos"].tolist() == [t["pos"] for p in expected for t in p["tracks"]]
    assert entries["pid"].tolist() == [p["pid"] for p in expected for _ in p["tracks"]]
    # Sums: the playlists' durations equal their tracks' durations looked up through track_id.
    durations = tracks.loc[entries["track_id"], "duration_ms"].to_numpy()
    assert durations.sum() == sum(p["duration_ms"] for p in expected)


def test_track_ids_are_dense_in_first_occurrence_order(slices, dataset):
    out, summary = dataset
    tracks = read(out, "tracks")
    first_seen = list(dict.fromkeys(t["track_uri"] for p in json_playlists(slices) for t in p["tracks"]))
    assert tracks["track_id"].tolist() == list(range(len(first_seen)))
    assert tracks["track_uri"].tolist() == first_seen
    assert summary["tracks"] == len(first_seen)


def test_names_are_normalized_like_the_mpd(dataset):
    out, _ = dataset
    playlists = read(out, "playlists")
    assert (playlists["name_normalized"] == playlists["name"].str.lower().str.replace(
        r"[.,\/#!$%\^\*;:{}=\_`~()@]", " ", regex=True).str.split().str.join(" ")).all()


def test_manifest_has_one_clean_row_per_slice(dataset):
    out, _ = dataset
    assert manifest(out) == [
        {"file": f"mpd.slice.{i}-{i + 99}.json", "playlists_read": "100", "playlists_rejected": "0", "error": ""}
        for i in (0, 100, 200)]


def test_same_input_same_bytes_whatever_the_worker_count(slices, dataset, tmp_path):
    out, _ = dataset
    ingest(slices, tmp_path / "again", workers=2)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_truncated_slice_is_salvaged_and_named(src, tmp_path):
    damaged = src / "mpd.slice.100-199.json"
    text = damaged.read_text()
    damaged.write_text(text[: text.index('"pid": 150,')])
    summary = ingest(src, tmp_path / "out", workers=1, allow_rejects=True)
    row = manifest(tmp_path / "out")[1]
    assert row["file"] == "mpd.slice.100-199.json" and row["playlists_read"] == "50"
    assert "malformed JSON" in row["error"] and "salvaged 50 complete playlists" in row["error"]
    assert summary["playlists"] == 250 and summary["files_with_errors"] == 1
    assert read(tmp_path / "out", "playlists")["pid"].max() == 299


def test_file_that_is_not_a_slice_is_skipped_and_named(src, tmp_path):
    (src / "mpd.slice.300-399.json").write_text('{"info": {}, "items": []}')
    ingest(src, tmp_path / "out", workers=1, allow_rejects=True)
    assert manifest(tmp_path / "out")[3] == {"file": "mpd.slice.300-399.json", "playlists_read": "0",
                                            "playlists_rejected": "0",
                                            "error": 'not a slice: no top-level "playlists" array'}


def test_playlist_breaking_an_invariant_is_rejected_with_its_reason(src, tmp_path):
    path = src / "mpd.slice.0-99.json"
    document = json.loads(path.read_text())
    document["playlists"][7]["num_tracks"] += 1
    path.write_text(json.dumps(document, indent=4, separators=(", ", ": ")))
    summary = ingest(src, tmp_path / "out", workers=1, allow_rejects=True)
    assert summary["playlists_rejected"] == 1 and summary["playlists"] == 299
    assert 7 not in read(tmp_path / "out", "playlists")["pid"].tolist()
    with open(tmp_path / "out" / "rejects.csv", newline="") as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["file"] == "mpd.slice.0-99.json" and reject["index"] == "7" and reject["pid"] == "7"
    assert "num_tracks is" in reject["reason"] and "but the playlist has" in reject["reason"]
    assert manifest(tmp_path / "out")[0]["error"].startswith("playlist 7 (pid 7): num_tracks is")


def test_rejects_fail_unless_allowed(src, tmp_path):
    path = src / "mpd.slice.0-99.json"
    document = json.loads(path.read_text())
    document["playlists"][0]["collaborative"] = "maybe"
    path.write_text(json.dumps(document))
    with pytest.raises(RejectedInputError, match=r"1 playlists rejected and 0 damaged files.*--allow-rejects"):
        ingest(src, tmp_path / "out", workers=1)
    assert main([str(src), str(tmp_path / "cli"), "--workers", "1"]) == 1
    assert main([str(src), str(tmp_path / "cli"), "--workers", "1", "--allow-rejects"]) == 0


def test_pid_in_two_slices_is_an_error_naming_both_files(src, tmp_path):
    path = src / "mpd.slice.100-199.json"
    document = json.loads(path.read_text())
    document["playlists"][0]["pid"] = 42  # also in mpd.slice.0-99.json; renamed so the range check passes
    path.unlink()
    (src / "mpd.slice.0-199.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"pid 42 appears more than once: in mpd\.slice\.0-99\.json and "
                                         r"mpd\.slice\.0-199\.json"):
        ingest(src, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_missing_or_empty_source_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="slice source .*nowhere does not exist"):
        ingest(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no slice files"):
        ingest(tmp_path / "empty", tmp_path / "out")
    assert main([str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "holds no slice files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def crash(*args):
    raise OSError("disk full")


def test_a_crash_leaves_no_output(slices, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "_write_csv", crash)
    with pytest.raises(OSError, match="disk full"):
        ingest(slices, tmp_path / "out", workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_the_previous_output(slices, dataset, tmp_path, monkeypatch):
    out, _ = dataset
    previous = shutil.copytree(out, tmp_path / "out")
    monkeypatch.setattr(ingest_module, "_check_unique_pids", crash)
    with pytest.raises(OSError, match="disk full"):
        ingest(slices, previous, workers=1)
    assert (previous / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()
