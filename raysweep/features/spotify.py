"""Fetching track audio features from the Spotify Web API through spotipy, with our own retry policy.

spotipy's default urllib3 retry obeys Retry-After silently (a 429 with ``Retry-After: 3600`` sleeps an hour) and
raises without the header once its retries run out, so the client here gets a plain requests session (no
urllib3 retries at all) and this module decides: 429 waits Retry-After up to ``max_wait`` seconds, beyond it
progress is already saved and :class:`RateLimited` says how many tracks remain and when to retry; 401/403 stop
at once (:class:`AccessDenied`: Spotify closed audio-features to new apps on 2024-11-27); 5xx and connection
errors are retried a bounded number of times with exponential backoff. Every batch of 100 tracks is committed
to the cache before the next request, so a killed run loses at most the batch in flight.

Credentials come only from ``SPOTIPY_CLIENT_ID`` / ``SPOTIPY_CLIENT_SECRET`` and never appear in messages:
spotipy's own DEBUG log lines carry the authorization headers, so its logger is capped at WARNING, and the
access token is kept in memory (spotipy's default token cache is a ``.cache`` file in the working directory).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyOauthError
from tqdm import tqdm

from raysweep.features.audio_cache import AudioFeatureCache

API_PREFIX = "https://api.spotify.com/v1/"
TOKEN_URL = "https://accounts.spotify.com/api/token"
MAX_IDS_PER_REQUEST = 100  # the audio-features endpoint's limit

ACCESS_DENIED_HELP = (
    "Spotify refused the audio-features request (HTTP {status}). Since 2024-11-27 Spotify no longer serves "
    "audio-features to apps registered on or after that date, nor to older apps still in development mode; only "
    "apps that already had extended-mode access keep it. Nothing more will be fetched; {done} tracks fetched in "
    "this run are saved in the cache. Alternatives: pass --table PATH with a Parquet/CSV of track audio features you "
    "already have (track_uri + the 13 fields), or build the offline embedding with "
    "`python -m raysweep.features cooccurrence --dataset DATASET --out EMB.parquet`.")

log = logging.getLogger(__name__)


class FetchStopped(RuntimeError):
    """Fetching stopped early; everything fetched so far is in the cache. ``str()`` is the user's message."""


class AccessDenied(FetchStopped):
    """401/403 from the API."""


class RateLimited(FetchStopped):
    """A 429 asked to wait longer than the cap.

    Attributes
    ----------
    remaining : int, tracks still to fetch
    retry_after : float, seconds the API asked to wait
    """

    def __init__(self, message: str, remaining: int, retry_after: float):
        super().__init__(message)
        self.remaining = remaining
        self.retry_after = retry_after


class ServiceUnavailable(FetchStopped):
    """5xx or connection errors persisted through every retry."""


@dataclass
class FetchReport:
    """What one fetch did: requests sent (all attempts), tracks stored with features and as null."""

    requests: int = 0
    tracks_ok: int = 0
    tracks_null: int = 0
    waited_seconds: float = 0.0


def spotify_client(timeout: float = 10.0, api_prefix: str = API_PREFIX, token_url: str = TOKEN_URL) -> spotipy.Spotify:
    """A spotipy client using client credentials from the environment, with no urllib3 retries.

    ``api_prefix`` and ``token_url`` point it elsewhere (a proxy, or the fake API of the tests).
    Raises ValueError naming the environment variables when credentials are absent.
    """
    absent = [name for name in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET") if not os.environ.get(name)]
    if absent:
        raise ValueError(f"--spotify needs client credentials: set {' and '.join(absent)} in the environment "
                         "(from an app at developer.spotify.com)")
    # spotipy's DEBUG lines print the Authorization headers (client secret, bearer token)
    logging.getLogger("spotipy").setLevel(logging.WARNING)
    auth = spotipy.SpotifyClientCredentials(
        client_id=os.environ["SPOTIPY_CLIENT_ID"], client_secret=os.environ["SPOTIPY_CLIENT_SECRET"],
        requests_session=requests.Session(), requests_timeout=timeout, cache_handler=MemoryCacheHandler())
    auth.OAUTH_TOKEN_URL = token_url
    # a plain Session has no urllib3 Retry: every status reaches us with its headers
    client = spotipy.Spotify(auth_manager=auth, requests_session=requests.Session(), requests_timeout=timeout)
    client.prefix = api_prefix if api_prefix.endswith("/") else api_prefix + "/"
    return client


def _retry_after_seconds(headers) -> float:
    """Retry-After in seconds (Spotify sends an integer); 1 s when absent or unreadable."""
    try:
        return max(float((headers or {}).get("Retry-After", 1)), 0.0)
    except (TypeError, ValueError):
        return 1.0


def fetch_audio_features(cache: AudioFeatureCache, uris: list[str], client: spotipy.Spotify,
                         max_wait: float = 60.0, max_retries: int = 5, backoff: float = 1.0,
                         sleep=time.sleep, progress: bool | None = None) -> FetchReport:
    """Fetch the features of the ``uris`` not yet cached, 100 per request, committing each batch.

    Parameters
    ----------
    cache : the cache to fill
    uris : track URIs (``spotify:track:ID``); those already cached are skipped
    client : from :func:`spotify_client`
    max_wait : longest Retry-After (seconds, summed over the 429s of one batch) to wait before stopping
    max_retries : retries of one batch after a 5xx or connection error, waiting ``backoff * 2**attempt`` s
    sleep : the wait function (tests pass a fake)
    progress : tqdm bar (tracks/s, ETA); None shows it only on a terminal

    Returns
    -------
    report : FetchReport

    Raises
    ------
    AccessDenied, RateLimited, ServiceUnavailable : with a message for the user; fetched batches are saved.
    """
    if max_wait < 0 or max_retries < 0 or backoff < 0:
        raise ValueError(f"max_wait={max_wait}, max_retries={max_retries}, backoff={backoff}: must be >= 0")
    missing = cache.missing(uris)
    report = FetchReport()
    bar = tqdm(total=len(missing), unit="track", desc="audio features", disable=None if progress is None
               else not progress)
    try:
        for start in range(0, len(missing), MAX_IDS_PER_REQUEST):
            batch = missing[start:start + MAX_IDS_PER_REQUEST]
            results = _fetch_batch(client, batch, report, max_wait, max_retries, backoff, sleep,
                                   remaining=len(missing) - start)
            cache.store(list(zip(batch, results)), source="spotify")
            n_ok = sum(result is not None for result in results)
            report.tracks_ok += n_ok
            report.tracks_null += len(batch) - n_ok
            bar.update(len(batch))
    finally:
        bar.close()
    return report


def _fetch_batch(client, batch, report, max_wait, max_retries, backoff, sleep, remaining):
    """One batch with the retry policy; returns the API's list (a dict or None per id, in order)."""
    waited, failures = 0.0, 0
    while True:
        report.requests += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # spotipy flags the endpoint as deprecated
                results = client.audio_features(batch)
        except spotipy.SpotifyException as exc:
            status = exc.http_status
            if status in (401, 403):
                raise AccessDenied(ACCESS_DENIED_HELP.format(status=status, done=report.tracks_ok
                                                             + report.tracks_null)) from None
            if status == 429:
                retry_after = _retry_after_seconds(exc.headers)
                if waited + retry_after > max_wait:
                    retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=retry_after)
                    raise RateLimited(
                        f"Spotify rate limit: asked to wait {retry_after:.0f} s, more than --max-wait "
                        f"{max_wait:.0f} s. Progress is saved in the cache; {remaining} tracks remain. Rerun the "
                        f"same command after {retry_at:%Y-%m-%d %H:%M:%S} UTC to fetch only those.",
                        remaining=remaining, retry_after=retry_after) from None
                log.warning("rate limited: waiting %.0f s (Retry-After)", retry_after)
                sleep(retry_after)
                waited += retry_after
                report.waited_seconds += retry_after
                continue
            if status >= 500:
                failures = _back_off(failures, max_retries, backoff, sleep, report, f"HTTP {status}", remaining)
                continue
            raise FetchStopped(f"Spotify answered HTTP {status} to an audio-features request of {len(batch)} "
                               f"ids ({exc.msg.splitlines()[-1].strip()}); {remaining} tracks remain") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            failures = _back_off(failures, max_retries, backoff, sleep, report, type(exc).__name__, remaining)
            continue
        except SpotifyOauthError as exc:
            raise FetchStopped(f"Spotify refused the client credentials ({exc.error}: {exc.error_description}); "
                               "check SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET") from None
        if not isinstance(results, list) or len(results) != len(batch):
            raise FetchStopped(f"Spotify answered an audio-features request of {len(batch)} ids with "
                               f"{len(results) if isinstance(results, list) else 'no'} results")
        return results


def _back_off(failures, max_retries, backoff, sleep, report, what, remaining) -> int:
    """Sleep before retry number ``failures + 1``, or raise ServiceUnavailable when retries are spent."""
    if failures >= max_retries:
        raise ServiceUnavailable(f"Spotify unavailable ({what}) after {max_retries} retries; progress is saved "
                                 f"in the cache, {remaining} tracks remain: rerun later to fetch only those")
    delay = backoff * 2 ** failures
    log.warning("%s: retry %d of %d in %.1f s", what, failures + 1, max_retries, delay)
    sleep(delay)
    report.waited_seconds += delay
    return failures + 1


def requests_needed(n_tracks: int) -> int:
    """API requests for ``n_tracks`` uncached tracks at 100 ids per request."""
    return math.ceil(n_tracks / MAX_IDS_PER_REQUEST)
