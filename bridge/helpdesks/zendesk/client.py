"""An authenticated caller of the Zendesk REST API (API token, OAuth token or OAuth client)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from bridge import http_client as http
from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.helpdesks import budget, redaction
from bridge.helpdesks.budget import Budget
from bridge.helpdesks.zendesk.config import OAUTH_SCOPE, ZendeskConfig
from bridge.helpdesks.zendesk.oauth import TokenPairs, request_token
from bridge.helpdesks.zendesk.state import AdapterState

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
        budget: Budget | None = None,
        patient: bool = False,
        clock: Callable[[], float] = time.time,
        tokens: AdapterState | None = None,
    ) -> None:
        """`tokens`: where `hitl-bridge zendesk authorize` stored a token pair for the OAuth
        client; while one is stored the bridge uses (and renews) it instead of the
        client-credentials grant."""
        self.config = config
        self.base_url = config.base_url
        self.timeout = timeout
        auth = (f"{config.email}/token", config.api_token) if config.auth == "api_token" else None
        self.http = http.Client(concurrency, auth=auth, transport=transport)
        # The account's requests per minute, shared with every other process (None: tests
        # that count requests exactly).
        self.budget = budget
        self.patient = patient  # every request waits its turn however long (the CLI)
        self.clock = clock
        self.pairs = (
            TokenPairs(tokens, config, timeout=timeout, transport=self.http.transport, clock=clock)
            if tokens is not None and config.auth == "oauth_client"
            else None
        )
        self._lock = threading.Lock()
        self._token = ""
        self._token_expires = 0.0
        self._refused = ""  # the access token Zendesk last answered 401 to

    # -- authentication -----------------------------------------------------------------
    def _bearer(self) -> str | None:
        if self.config.auth == "oauth_token":
            return self.config.oauth_token
        if self.config.auth != "oauth_client":
            return None
        with self._lock:
            if not self._token or self.clock() >= self._token_expires:
                pair = self.pairs.current(self._refused) if self.pairs is not None else None
                if pair is not None:
                    self._token, self._token_expires = pair.access_token, pair.renew_at
                else:
                    self._fetch_token()
                self._refused = ""
            return self._token

    def _fetch_token(self) -> None:
        data = request_token(
            self.config,
            {
                "grant_type": "client_credentials",
                "scope": OAUTH_SCOPE,
                "expires_in": self.config.oauth_token_ttl,
            },
            timeout=self.timeout,
            transport=self.http.transport,
        )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError("Zendesk OAuth token: no access_token")
        lifetime = float(data.get("expires_in") or self.config.oauth_token_ttl)
        # Renew well before expiry so a request never carries a token that dies in flight.
        margin = max(60.0, lifetime * 0.1)
        self._token = token
        self._token_expires = self.clock() + max(lifetime - margin, 1.0)

    def _forget_token(self, refused: str) -> None:
        with self._lock:
            if self._token == refused:
                self._token, self._token_expires, self._refused = "", 0.0, refused

    # -- secrets ------------------------------------------------------------------------
    def secrets(self) -> list[str]:
        """Every credential this client holds or sends, as it may appear in an answer."""
        found = [
            self.config.api_token,
            self.config.oauth_token,
            self.config.client_secret,
            self.config.webhook_secret,
            self._token,
        ]
        basic = self.http.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            found.append(basic.removeprefix("Basic "))
        return [s for s in found if s]

    def scrub(self, exc: DeliveryError, *also: str) -> None:
        """Take the credentials out of a failure's reason and body, and trim the body."""
        redaction.scrub(exc, [*self.secrets(), *also])

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
        patient: bool = False,
    ) -> http.Response:
        """One request; a JSON `body` is sent as canonical bytes (see `dumps`).

        Within the account's budget: a request waits for its turn, up to MAX_WAIT seconds
        (a delivery is retried later rather than hold its worker), or, `patient` (the reads
        of a poll round), until PATIENCE has passed, through 429s too. A failure's body is
        trimmed and never holds the client's credentials (see `scrub`).
        """
        hdrs = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            data = dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        try:
            for attempt in (1, 2):
                bearer = self._bearer()
                if bearer:
                    hdrs["Authorization"] = f"Bearer {bearer}"
                try:
                    return budget.request(
                        self.budget,
                        self.http,
                        method,
                        self.url(path),
                        what=what,
                        timeout=self.timeout,
                        patient=patient or self.patient,
                        params=params,
                        data=data,
                        headers=hdrs,
                    )
                except PermanentError as exc:
                    # A token can die before its time (revoked, or a renewal by another
                    # process rotated it): take a new one and try once more.
                    if self.config.auth == "oauth_client" and exc.status == 401 and bearer:
                        self.scrub(exc, bearer)  # while the token is still known
                        self._forget_token(bearer)
                        if attempt == 1:
                            continue
                    raise
        except DeliveryError as exc:
            self.scrub(exc)
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
        patient: bool = False,
    ) -> Json:
        """Like `send`, returning the decoded JSON object ({} for an empty answer)."""
        resp = self.send(
            method,
            path,
            what=what,
            params=params,
            body=body,
            data=data,
            headers=headers,
            patient=patient,
        )
        try:
            return _json(resp, what)
        except DeliveryError as exc:
            self.scrub(exc)
            raise

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
