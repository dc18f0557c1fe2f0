"""A fake Spotify Web API for tests: a real HTTP server on 127.0.0.1 (token + audio-features endpoints).

It serves features from a ``{track_id: {field: value}}`` table, enforces the 100-id limit (400), answers null
for unknown ids, 429 with Retry-After on a schedule (by request number), 5xx on a schedule, 401/403 on
demand, and counts the requests it receives. ``hold_after=j`` makes request j+1 block until released, so a
test can kill the client at a known point between batches.

It also serves public playlists (``GET /v1/playlists/{id}`` and ``GET /v1/playlists/{id}/items`` with
``limit``/``offset`` paging and a ``next`` URL, at most 100 items a page, as the Web API does), 404 for an
unknown playlist and 429 with Retry-After on every playlist request when ``playlist_rate_limit`` is set.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ACCESS_TOKEN = "fake-access-token-0123456789"
_PLAYLIST_PATH = re.compile(r"^/v1/playlists/(?P<id>[^/]+)(?P<items>/(items|tracks))?/?$")
MAX_PLAYLIST_PAGE = 100


class FakeSpotify:
    """The server and its knobs.

    Parameters
    ----------
    features : dict mapping a track id (base62, as in ``spotify:track:ID``) to its audio-feature dict
    client_id, client_secret : the credentials the token endpoint accepts
    rate_limits : dict mapping an audio-features request number (1-based) to the Retry-After it gets (429)
    server_errors : set of request numbers answered 503
    forbidden : answer every audio-features request 403
    hold_after : block request ``hold_after + 1`` (and later) until :meth:`release`; ``held`` is set then
    playlists : dict mapping a playlist id to ``{"name": str, "tracks": [track URI, ...]}``
    playlist_rate_limit : Retry-After (seconds) of a 429 answered to every playlist request, None for none
    """

    def __init__(self, features: dict, client_id: str = "test-client-id", client_secret: str = "test-secret",
                 rate_limits: dict | None = None, server_errors: set | None = None, forbidden: bool = False,
                 hold_after: int | None = None, playlists: dict | None = None,
                 playlist_rate_limit: int | None = None):
        self.features = features
        self.client_id, self.client_secret = client_id, client_secret
        self.rate_limits = dict(rate_limits or {})
        self.server_errors = set(server_errors or ())
        self.forbidden = forbidden
        self.hold_after = hold_after
        self.held = threading.Event()
        self._release = threading.Event()
        self.requests = 0  # audio-features requests, all answers included
        self.token_requests = 0
        self.ids_requested: list[str] = []
        self.playlists = dict(playlists or {})
        self.playlist_rate_limit = playlist_rate_limit
        self.playlist_requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1/"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/token"

    def __enter__(self) -> "FakeSpotify":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self._release.set()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body, headers: dict | None = None):
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if urlparse(self.path).path != "/api/token":
                    return self._send(404, {"error": "not found"})
                with fake._lock:
                    fake.token_requests += 1
                expected = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    return self._send(400, {"error": "invalid_client", "error_description": "Invalid client"})
                self._send(200, {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600})

            def _playlist(self, url, match):
                with fake._lock:
                    fake.playlist_requests += 1
                if self.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
                    return self._send(401, {"error": {"status": 401, "message": "Invalid access token"}})
                if fake.playlist_rate_limit is not None:
                    return self._send(429, {"error": {"status": 429, "message": "API rate limit exceeded"}},
                                      {"Retry-After": str(fake.playlist_rate_limit)})
                playlist = fake.playlists.get(match.group("id"))
                if playlist is None:
                    return self._send(404, {"error": {"status": 404, "message": "Resource not found"}})
                if not match.group("items"):
                    return self._send(200, {"id": match.group("id"), "name": playlist["name"],
                                            "tracks": {"total": len(playlist["tracks"])}})
                query = parse_qs(url.query)
                limit = min(int(query.get("limit", ["100"])[0]), MAX_PLAYLIST_PAGE)
                offset = int(query.get("offset", ["0"])[0])
                page = playlist["tracks"][offset:offset + limit]
                following = offset + limit
                base = f"http://127.0.0.1:{fake._server.server_port}{url.path}"
                self._send(200, {
                    "items": [{"track": {"uri": uri, "type": "track", "is_local": False}} for uri in page],
                    "total": len(playlist["tracks"]), "limit": limit, "offset": offset,
                    "next": f"{base}?offset={following}&limit={limit}" if following < len(playlist["tracks"])
                    else None})

            def do_GET(self):
                url = urlparse(self.path)
                playlist_match = _PLAYLIST_PATH.match(url.path)
                if playlist_match:
                    return self._playlist(url, playlist_match)
                if url.path.rstrip("/") != "/v1/audio-features":
                    return self._send(404, {"error": {"status": 404, "message": "Service not found"}})
                with fake._lock:
                    fake.requests += 1
                    number = fake.requests
                if fake.hold_after is not None and number > fake.hold_after:
                    fake.held.set()
                    fake._release.wait()
                if self.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
                    return self._send(401, {"error": {"status": 401, "message": "Invalid access token"}})
                if fake.forbidden:
                    return self._send(403, {"error": {"status": 403, "message": "Forbidden"}})
                if number in fake.rate_limits:
                    return self._send(429, {"error": {"status": 429, "message": "API rate limit exceeded"}},
                                      {"Retry-After": str(fake.rate_limits[number])})
                if number in fake.server_errors:
                    return self._send(503, {"error": {"status": 503, "message": "Service unavailable"}})
                ids = [i for i in parse_qs(url.query).get("ids", [""])[0].split(",") if i]
                if not ids or len(ids) > 100:
                    return self._send(400, {"error": {"status": 400, "message": "invalid request: ids must "
                                                                                  "hold 1 to 100 ids"}})
                with fake._lock:
                    fake.ids_requested.extend(ids)
                answers = [None if i not in fake.features else
                           {**fake.features[i], "id": i, "uri": f"spotify:track:{i}", "type": "audio_features"}
                           for i in ids]
                self._send(200, {"audio_features": answers})

        return Handler
