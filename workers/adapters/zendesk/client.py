"""An authenticated caller of the Zendesk REST API (API token, OAuth token or OAuth client)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from bridge.errors import DeliveryError, PermanentError, TransientError
from workers import http
from workers.adapters.zendesk.config import OAUTH_SCOPE, ZendeskConfig

Json = dict[str, Any]

#: The most of an answer's body an error keeps (it goes to the dead letters and the CLI).
ERROR_BODY_MAX = 2000
REDACTED = "[redacted]"
#: A secret's tail left at the end of an already cut body is redacted from this many
#: characters on (shorter tails match too much ordinary text to say anything).
_MIN_TAIL = 4


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
            headers={"Accept": "application/json"},
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
        secrets = [*self.secrets(), *also]
        reason = redact(exc.reason, secrets)
        if reason != exc.reason:
            exc.reason = reason
            exc.args = (reason,)
        if exc.response:
            exc.response = trim(redact(exc.response, secrets))

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
        """One request; a JSON `body` is sent as canonical bytes (see `dumps`).

        A failure's body is trimmed and never holds the client's credentials (see `scrub`).
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
                        self.scrub(exc, bearer or "")  # while the token is still known
                        self._forget_token()
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
    ) -> Json:
        """Like `send`, returning the decoded JSON object ({} for an empty answer)."""
        resp = self.send(
            method, path, what=what, params=params, body=body, data=data, headers=headers
        )
        try:
            return _json(resp, what)
        except DeliveryError as exc:
            self.scrub(exc)
            raise


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets`, nor their JSON-, URL- or base64-encoded forms.

    A body may come already cut (workers/http.py keeps 4000 characters), so a secret's
    first characters left at its very end are redacted too.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            b64 = base64.b64encode(secret.encode()).decode()
            forms |= {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), b64}
            forms.add(b64.rstrip("="))  # unpadded, as some encoders write it
    # Longest first: a secret inside another one's encoding is redacted with it.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    for form in forms:
        for k in range(len(form) - 1, _MIN_TAIL - 1, -1):
            if text.endswith(form[:k]):
                return text[:-k] + REDACTED
    return text


def trim(text: str, limit: int = ERROR_BODY_MAX) -> str:
    """At most `limit` characters of `text`, saying so when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
