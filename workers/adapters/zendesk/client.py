"""An authenticated caller of the Zendesk REST API (API token, OAuth token or OAuth client)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bridge.errors import PermanentError, TransientError
from workers import http
from workers.adapters.zendesk.budget import Budget
from workers.adapters.zendesk.config import OAUTH_SCOPE, ZendeskConfig
from workers.adapters.zendesk.oauth import TokenPairs, request_token
from workers.adapters.zendesk.state import AdapterState

Json = dict[str, Any]
#: Seconds a delivery's request waits for its turn in the API budget before the delivery
#: is put off instead (it holds its conversation's lease meanwhile).
MAX_WAIT = 5.0
#: Seconds a poll round's reads keep waiting for their turn, 429s included.
PATIENCE = 180.0


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
        of a poll round), until PATIENCE has passed, through 429s too.
        """
        hdrs = dict(headers or {})
        if body is not None:
            data = dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            bearer = self._bearer()
            if bearer:
                hdrs["Authorization"] = f"Bearer {bearer}"
            try:
                return self._within_budget(
                    method,
                    self.url(path),
                    what=what,
                    patient=patient or self.patient,
                    params=params,
                    data=data,
                    headers=hdrs,
                )
            except PermanentError as exc:
                # A token can die before its time (revoked, or a renewal by another process
                # rotated it): take a new one and try once more.
                if self.config.auth == "oauth_client" and exc.status == 401 and bearer:
                    self._forget_token(bearer)
                    if attempt == 1:
                        continue
                raise
        raise AssertionError("unreachable")

    def _within_budget(
        self, method: str, url: str, *, what: str, patient: bool, **kwargs: Any
    ) -> http.Response:
        give_up = time.monotonic() + PATIENCE
        while True:
            if self.budget is not None:
                left = give_up - time.monotonic()
                self.budget.spend(max_wait=max(0.0, left) if patient else MAX_WAIT)
            try:
                resp = http.request(
                    self.http, method, url, what=what, timeout=self.timeout, **kwargs
                )
            except TransientError as exc:
                if self.budget is not None and exc.status == 429:
                    after = "" if exc.retry_after is None else repr(exc.retry_after)
                    self.budget.observe(429, {"retry-after": after})
                    if patient and time.monotonic() < give_up:
                        continue  # the round waits for the window and goes on
                raise
            if self.budget is not None:
                self.budget.observe(resp.status_code, resp.headers)
            return resp

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
        return _json(resp, what)


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
