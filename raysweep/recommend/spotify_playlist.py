"""Reading a public Spotify playlist (``--playlist``) through spotipy, as a recommendation seed.

The client is :func:`raysweep.features.spotify.spotify_client` (client credentials from SPOTIPY_CLIENT_ID /
SPOTIPY_CLIENT_SECRET, no urllib3 retries), so a 429 reaches us instead of sleeping for its Retry-After: reading
a playlist is interactive, so it stops with a message saying when to retry. Items come 100 per page
(``GET /v1/playlists/{id}/items``), followed by their ``next`` URL; episodes and local files are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
import spotipy
from spotipy.oauth2 import SpotifyOauthError

from raysweep.features.spotify import API_PREFIX, TOKEN_URL, spotify_client

PAGE = 100  # the items endpoint's largest page


@dataclass
class SpotifyPlaylist:
    """A playlist as read: its id, name, track URIs in playlist order, and the items skipped (episodes, local
    files, removed tracks)."""

    id: str
    name: str
    track_uris: list
    skipped: int


def playlist_client(api_url: str | None = None, token_url: str | None = None) -> spotipy.Spotify:
    """A client for ``--playlist``; ValueError naming the environment variables when credentials are absent."""
    try:
        return spotify_client(api_prefix=api_url or API_PREFIX, token_url=token_url or TOKEN_URL)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--spotify", "--playlist")) from None


def read_playlist(playlist: str, client: spotipy.Spotify) -> SpotifyPlaylist:
    """Read ``playlist`` (URL, ``spotify:playlist:`` URI or id) with ``client``.

    Raises
    ------
    ValueError : one line naming the playlist: not a playlist reference, not found (404), rate limited (429, with
        the wait asked), access refused, credentials refused, Spotify unreachable or another HTTP error.
    """
    if client is None:
        raise ValueError(f"--playlist {playlist}: no Spotify client (see playlist_client)")
    try:
        meta = client.playlist(playlist, fields="id,name")
        page = client.playlist_items(playlist, limit=PAGE, fields="items(track(uri,type,is_local)),next,total",
                                     additional_types=("track",))
        uris, skipped = [], 0
        while page:
            for item in page.get("items") or []:
                track = (item or {}).get("track") or {}
                if track.get("type", "track") == "track" and not track.get("is_local") and track.get("uri"):
                    uris.append(track["uri"])
                else:
                    skipped += 1
            page = client.next(page) if page.get("next") else None
    except spotipy.SpotifyException as exc:
        raise ValueError(_http_message(playlist, exc)) from None
    except SpotifyOauthError as exc:
        raise ValueError(f"--playlist {playlist}: Spotify refused the client credentials ({exc.error}); check "
                         "SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ValueError(f"--playlist {playlist}: cannot reach Spotify ({type(exc).__name__})") from None
    return SpotifyPlaylist(id=meta.get("id", playlist), name=meta.get("name") or "", track_uris=uris,
                           skipped=skipped)


def _http_message(playlist: str, exc: spotipy.SpotifyException) -> str:
    status = exc.http_status
    if status == 404:
        return f"--playlist {playlist}: not found (HTTP 404); is the id right and the playlist public?"
    if status == 429:
        wait = (exc.headers or {}).get("Retry-After", "?")
        return f"--playlist {playlist}: Spotify rate limit (HTTP 429), asked to wait {wait} s; retry after that"
    if status in (401, 403):
        return f"--playlist {playlist}: Spotify refused access (HTTP {status})"
    if status == 400 and exc.code == -1:  # spotipy's own check of the reference, before any request
        return f"--playlist {playlist}: not a Spotify playlist URL, URI or id"
    return f"--playlist {playlist}: Spotify answered HTTP {status}"
