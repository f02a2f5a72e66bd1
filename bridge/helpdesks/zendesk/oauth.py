"""OAuth with Zendesk's token endpoint: its grants, and the stored token pair of the
authorization-code grant, renewed ahead of expiry by one process at a time."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from bridge import http_client as http
from bridge.errors import PermanentError, TransientError
from bridge.helpdesks.zendesk.config import OAUTH_SCOPE, ZendeskConfig
from bridge.helpdesks.zendesk.state import AdapterState, TokenPair

log = logging.getLogger(__name__)

Json = dict[str, Any]
AUTHORIZE_AGAIN = "run `hitl-bridge zendesk authorize` again"
#: How often a process waiting for another's renewal looks at the stored pair again.
POLL_SECONDS = 0.05
#: A token this close to its expiry is not sent any more, even while another renews it.
LAST_SECONDS = 5.0


def authorize_url(config: ZendeskConfig, redirect_uri: str, state: str) -> str:
    """The page where a Zendesk admin lets the bridge act as them (authorization code)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": redirect_uri,
            "scope": OAUTH_SCOPE,
            "state": state,
        },
        quote_via=quote,
    )
    return f"{config.base_url}/oauth/authorizations/new?{query}"


def request_token(
    config: ZendeskConfig, body: Json, *, timeout: float, transport: http.Transport | None
) -> Json:
    """POST /oauth/tokens: `body` plus the client's credentials; Zendesk's answer."""
    # The token endpoint takes no credentials but the client's own.
    resp = http.request(
        http.Client(transport=transport),
        "POST",
        f"{config.base_url}/oauth/tokens",
        what="Zendesk OAuth token",
        timeout=timeout,
        json={**body, "client_id": config.client_id, "client_secret": config.client_secret},
        headers={"Accept": "application/json"},
    )
    try:
        data = resp.json()
    except ValueError as exc:
        # A proxy's HTML error page with a 2xx: worth another try later.
        raise TransientError(
            "Zendesk OAuth token: answer is not JSON", response=resp.text[:4000]
        ) from exc
    if not isinstance(data, dict):
        raise TransientError("Zendesk OAuth token: answer is not a JSON object")
    return data


def grant_pair(
    config: ZendeskConfig,
    body: Json,
    *,
    timeout: float,
    transport: http.Transport | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenPair:
    """A token pair from the authorization-code or refresh-token grant (`body` names it)."""
    asked = clock()
    data = request_token(
        config,
        {**body, "scope": OAUTH_SCOPE, "expires_in": config.oauth_token_ttl},
        timeout=timeout,
        transport=transport,
    )
    access, refresh = data.get("access_token"), data.get("refresh_token")
    # The answer holds tokens: never copied into an error.
    if not isinstance(access, str) or not access:
        raise PermanentError("Zendesk OAuth token: the answer has no access_token")
    if not isinstance(refresh, str) or not refresh:
        raise PermanentError(
            "Zendesk OAuth token: the answer has no refresh_token (does the OAuth client "
            "issue expiring tokens?)"
        )
    lifetime = _seconds(data.get("expires_in")) or float(config.oauth_token_ttl)
    refresh_life = _seconds(data.get("refresh_token_expires_in"))
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        # Counted from before the request: the token cannot outlive what this says.
        expires_at=asked + lifetime,
        lifetime=lifetime,
        refresh_expires_at=asked + refresh_life if refresh_life else None,
        scope=str(data.get("scope") or ""),
        obtained_at=asked,
        grant=str(body["grant_type"]),
    )


def exchange_code(
    config: ZendeskConfig,
    code: str,
    redirect_uri: str,
    *,
    timeout: float,
    transport: http.Transport | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenPair:
    """The token pair an authorization code is worth (Zendesk takes a code once, for 120 s)."""
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return grant_pair(config, body, timeout=timeout, transport=transport, clock=clock)


def refused_grant(exc: PermanentError) -> str:
    """Zendesk's description when `exc` is its refusal of a code or refresh token
    (`invalid_grant`: used, expired or revoked), else ''."""
    try:
        body = json.loads(exc.response or "")
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("error") != "invalid_grant":
        return ""
    return str(body.get("error_description") or "invalid_grant")


def _sleep(seconds: float) -> None:
    # Looked up at each call: gevent's patched sleep when the worker runs under gevent.
    time.sleep(seconds)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return 0.0
    return float(value)


class TokenPairs:
    """The stored token pair of one OAuth client, renewed ahead of its expiry.

    One process renews at a time (a short Redis lock, released only by its holder); the
    others keep sending the old access token while it lives, then take the renewed pair
    from Redis. A renewed pair replaces the stored one only while that still holds the
    refresh token the renewal used, and a refusal of the refresh token never deletes it.
    """

    def __init__(
        self,
        state: AdapterState,
        config: ZendeskConfig,
        *,
        timeout: float,
        transport: http.Transport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        settle: float = 1.0,
    ) -> None:
        self.state = state
        self.config = config
        self.client_id = config.client_id
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self.sleep = sleep or _sleep
        # Outlives one renewal (a request and a few Redis commands) with room to spare.
        self.lock_seconds = 2 * timeout + 5
        # How long a refused refresh token waits for a racing renewal's pair to appear.
        self.settle = settle

    def current(self, refused: str = "") -> TokenPair | None:
        """The stored pair, renewed first when it is due or its access token is `refused`
        (Zendesk answered 401 to it); None when no pair is stored for the client."""
        pair = self.state.token_pair(self.client_id)
        if pair is None or self._good(pair, refused):
            return pair
        return self._renew(refused)

    def _good(self, pair: TokenPair, refused: str) -> bool:
        return pair.access_token != refused and self.clock() < pair.renew_at

    def _alive(self, pair: TokenPair, refused: str) -> bool:
        return pair.access_token != refused and self.clock() < pair.expires_at - LAST_SECONDS

    def _renew(self, refused: str) -> TokenPair | None:
        give_up = time.monotonic() + 2 * self.lock_seconds
        while True:
            token = self.state.take_renewal(self.client_id, self.lock_seconds)
            if token is not None:
                try:
                    return self._renew_holding(refused)
                finally:
                    self.state.end_renewal(self.client_id, token)
            # Another process is renewing: its pair will do, and the old token until then.
            pair = self.state.token_pair(self.client_id)
            if pair is None or self._good(pair, refused) or self._alive(pair, refused):
                return pair
            if time.monotonic() >= give_up:
                raise TransientError(
                    "Zendesk OAuth: another process has been renewing the token pair for "
                    f"{2 * self.lock_seconds:g}s"
                )
            self.sleep(POLL_SECONDS)

    def _renew_holding(self, refused: str) -> TokenPair | None:
        # Read again under the lock: the previous holder may have renewed it already.
        pair = self.state.token_pair(self.client_id)
        if pair is None or self._good(pair, refused):
            return pair
        body = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
        try:
            new = grant_pair(
                self.config,
                body,
                timeout=self.timeout,
                transport=self.transport,
                clock=self.clock,
            )
        except PermanentError as exc:
            why = refused_grant(exc)
            if not why:
                raise
            return self._after_refusal(pair, why, exc)
        if self.state.put_token_pair(self.client_id, new, replacing=pair.refresh_token):
            log.info(
                "zendesk: OAuth token pair renewed",
                extra={"expires_in": round(new.lifetime), "client": self.client_id},
            )
            return new
        # Replaced meanwhile (a new authorization): the stored pair is the newer one.
        return self.state.token_pair(self.client_id)

    def _after_refusal(self, used: TokenPair, why: str, exc: PermanentError) -> TokenPair:
        """Zendesk refused the refresh token: a renewal racing this one (whose lock had
        expired) may have used it first, and its pair is as good; otherwise the bridge's
        authorization is gone. The stored pair is left as it is either way."""
        give_up = time.monotonic() + self.settle
        while True:
            pair = self.state.token_pair(self.client_id)
            if pair is not None and pair.refresh_token != used.refresh_token:
                return pair
            if time.monotonic() >= give_up:
                break
            self.sleep(POLL_SECONDS)
        raise PermanentError(
            f"Zendesk refused the bridge's OAuth refresh token ({why}): the authorization "
            f"was revoked or has expired; {AUTHORIZE_AGAIN}",
            response=exc.response,
            status=exc.status,
        )
