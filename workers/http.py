"""Outbound HTTP shared by every external service: one place decides what is retryable."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bridge import __version__
from bridge.errors import PermanentError, TransientError

USER_AGENT = f"botpress-hitl-bridge/{__version__}"


#: Keep-alive connections kept per host, at least: one per pool thread that may call it at
#: once (requests keeps 10 and drops the rest after each use, so a busier worker would open
#: a new connection for every call above that).
POOL_SIZE = 64


def session(concurrency: int = POOL_SIZE) -> requests.Session:
    """A session keeping a keep-alive connection per host for each of `concurrency` sends
    in flight at once (a worker's pumps), and never fewer than POOL_SIZE."""
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(pool_maxsize=max(POOL_SIZE, concurrency))
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def raise_for_status(resp: requests.Response, what: str) -> None:
    """Turn an unsuccessful answer into TransientError (429, 5xx) or PermanentError (4xx)."""
    if resp.status_code < 400:
        return
    body = resp.text[:4000]
    reason = f"{what}: HTTP {resp.status_code}"
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TransientError(
            reason,
            response=body,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )
    if resp.status_code == 408:
        raise TransientError(reason, response=body, status=408)
    raise PermanentError(reason, response=body, status=resp.status_code)


def request(
    s: requests.Session, method: str, url: str, *, what: str, timeout: float, **kwargs: Any
) -> requests.Response:
    """Send one request; network failures become TransientError, statuses are classified."""
    try:
        resp = s.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectTimeout as exc:
        raise TransientError(f"{what}: could not connect within {timeout:g}s") from exc
    except requests.Timeout as exc:
        # Sent, then no answer in time: the other side may well have applied it.
        raise TransientError(f"{what}: timed out after {timeout:g}s", maybe_applied=True) from exc
    except requests.ConnectionError as exc:
        # Dropped after the request went out (not refused before it): the same doubt.
        sent = "aborted" in str(exc) or "RemoteDisconnected" in str(exc)
        raise TransientError(
            f"{what}: connection failed ({type(exc).__name__})", maybe_applied=sent
        ) from exc
    except requests.RequestException as exc:
        raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc
    raise_for_status(resp, what)
    return resp
