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
    ) -> None:
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
                # A fetched token can be revoked before it expires: fetch a new one once.
                if self.config.auth == "oauth_client" and exc.status == 401:
                    self._forget_token()
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
