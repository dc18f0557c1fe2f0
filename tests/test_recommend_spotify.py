"""Reading a public playlist through spotipy against the local fake Spotify server."""

import pytest

from raysweep.recommend.spotify_playlist import playlist_client, read_playlist
from fake_spotify import FakeSpotify

URIS = [f"spotify:track:{i:022d}" for i in range(250)]  # three pages of at most 100


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "test-secret")


def test_reads_every_page_in_order(credentials):
    with FakeSpotify({}, playlists={"37i9dQZF1DXcBWIGoYBM5M": {"name": "Road Trip", "tracks": URIS}}) as fake:
        client = playlist_client(fake.api_url, fake.token_url)
        found = read_playlist("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M?si=x", client)
        assert (found.name, found.track_uris, found.skipped) == ("Road Trip", URIS, 0)
        assert fake.playlist_requests == 1 + 3  # the playlist, then three pages of items


def test_unknown_playlist_is_a_clear_404(credentials):
    with FakeSpotify({}) as fake:
        with pytest.raises(ValueError, match=r"--playlist spotify:playlist:0000000000000000000000: not found "
                                             r"\(HTTP 404\)"):
            read_playlist("spotify:playlist:0000000000000000000000", playlist_client(fake.api_url, fake.token_url))


def test_rate_limit_stops_at_once_and_says_how_long_to_wait(credentials):
    with FakeSpotify({}, playlists={"abc": {"name": "x", "tracks": URIS}}, playlist_rate_limit=3600) as fake:
        with pytest.raises(ValueError, match=r"--playlist abc: Spotify rate limit \(HTTP 429\), asked to wait 3600 s"):
            read_playlist("abc", playlist_client(fake.api_url, fake.token_url))
        assert fake.playlist_requests == 1  # no silent retry


def test_not_a_playlist_reference(credentials):
    with FakeSpotify({}) as fake:
        with pytest.raises(ValueError, match="not a Spotify playlist URL, URI or id"):
            read_playlist("spotify:album:4aawyAB9vmqN3uQ7FjRGTy", playlist_client(fake.api_url, fake.token_url))


def test_missing_credentials_name_the_variables(monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    with pytest.raises(ValueError, match="--playlist needs client credentials: set SPOTIPY_CLIENT_ID and "
                                         "SPOTIPY_CLIENT_SECRET"):
        playlist_client()
