"""An authenticated caller of the Zendesk REST API (API token, OAuth token or OAuth client)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from bridge.errors import PermanentError, TransientError
from workers import http
from workers.adapters.zendesk.config import OAUTH_SCOPE, ZendeskConfig

Json = dict[str, Any]
#: Redirects followed to an attachment's file (Zendesk answers its content_url with one).
MAX_FILE_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def dumps(body: Any) -> bytes:
    """The canonical bytes of a JSON body: a retry must send exactly the same bytes."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ZendeskClient:
    """Sends requests to one Zendesk account; failures become TransientError/PermanentError."""

    def __init__(
        self,
        config: ZendeskConfig,
        *,
        timeout: float,
        concurrency: int = http.POOL_SIZE,
        transport: http.Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.base_url = config.base_url
        self.timeout = timeout
        auth = (f"{config.email}/token", config.api_token) if config.auth == "api_token" else None
        self.http = http.Client(concurrency, auth=auth, transport=transport)
        self.clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._token_expires = 0.0

    # -- authentication -----------------------------------------------------------------
    def _bearer(self) -> str | None:
        if self.config.auth == "oauth_token":
            return self.config.oauth_token
        if self.config.auth != "oauth_client":
            return None
        with self._lock:
            if not self._token or self.clock() >= self._token_expires:
                self._fetch_token()
            return self._token

    def _fetch_token(self) -> None:
        body = {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "scope": OAUTH_SCOPE,
            "expires_in": self.config.oauth_token_ttl,
        }
        # The token endpoint takes no credentials but the client's own.
        resp = http.request(
            http.Client(transport=self.http.transport),
            "POST",
            f"{self.base_url}/oauth/tokens",
            what="Zendesk OAuth token",
            timeout=self.timeout,
            json=body,
        )
        data = _json(resp, "Zendesk OAuth token")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError("Zendesk OAuth token: no access_token", response=resp.text[:4000])
        lifetime = float(data.get("expires_in") or self.config.oauth_token_ttl)
        # Renew well before expiry so a request never carries a token that dies in flight.
        margin = max(60.0, lifetime * 0.1)
        self._token = token
        self._token_expires = self.clock() + max(lifetime - margin, 1.0)

    def _forget_token(self) -> None:
        with self._lock:
            self._token = ""
            self._token_expires = 0.0

    # -- requests -----------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> http.Response:
        """One request; a JSON `body` is sent as canonical bytes (see `dumps`)."""
        hdrs = dict(headers or {})
        if body is not None:
            data = dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            bearer = self._bearer()
            if bearer:
                hdrs["Authorization"] = f"Bearer {bearer}"
            try:
                return http.request(
                    self.http,
                    method,
                    self.url(path),
                    what=what,
                    timeout=self.timeout,
                    params=params,
                    data=data,
                    headers=hdrs,
                )
            except PermanentError as exc:
                # A fetched token can be revoked before it expires: fetch a new one once.
                if self.config.auth == "oauth_client" and exc.status == 401:
                    self._forget_token()
                    if attempt == 1:
                        continue
                raise
        raise AssertionError("unreachable")

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Json:
        """Like `send`, returning the decoded JSON object ({} for an empty answer)."""
        resp = self.send(
            method, path, what=what, params=params, body=body, data=data, headers=headers
        )
        return _json(resp, what)

    def open_file(self, url: str, *, what: str) -> http.Streamed:
        """GET an attachment's `content_url`, following Zendesk's redirects to where the file
        is (a temporary download URL); the 200 answer, its body still unread.

        Credentials go to the account's own origin only: the file may be hosted elsewhere
        (Zendesk's "working with url properties"). Failures are TransientError or
        PermanentError, as for `send`.
        """
        for _ in range(MAX_FILE_REDIRECTS + 1):
            # As a browser would: spaces and non-ASCII escaped, existing escapes kept.
            url = quote(url, safe="/%!$&'()*+,;=:@~?#[]")
            own = _origin(url) == _origin(self.base_url)
            hdrs: dict[str, str] = {}
            if own and (bearer := self._bearer()):
                hdrs["Authorization"] = f"Bearer {bearer}"
            try:
                got = self.http.stream(url, timeout=self.timeout, headers=hdrs, credentials=own)
            except http.ConnectError as exc:
                raise TransientError(f"{what}: could not connect ({exc})") from exc
            except http.TransportError as exc:
                raise TransientError(f"{what}: no answer ({exc})") from exc
            location = got.headers.get("Location", "")
            if got.status_code in REDIRECTS and location:
                got.close()
                url = urljoin(url, location)
                continue
            if got.status_code != 200:
                try:
                    head = got.read(4000)
                except http.TransportError:
                    head = b""
                got.close()
                http.raise_for_status(http.Response(got.status_code, got.headers, head), what)
                raise PermanentError(f"{what}: HTTP {got.status_code} instead of the file")
            return got
        raise PermanentError(f"{what}: more than {MAX_FILE_REDIRECTS} redirects")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _json(resp: http.Response, what: str) -> Json:
    if not resp.content:
        return {}
    try:
        data = resp.json()
    except ValueError as exc:
        # A proxy's HTML error page with a 2xx: worth another try later.
        raise TransientError(f"{what}: answer is not JSON", response=resp.text[:4000]) from exc
    if not isinstance(data, dict):
        raise TransientError(f"{what}: answer is not a JSON object", response=resp.text[:4000])
    return data
