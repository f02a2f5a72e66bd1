"""What the adapter remembers: its cursor format and its own Redis keys.

Keys, under `P:adapter:zendesk:` (bridge/storage.py lists every prefix):

    written:<tid>  set     ids of the comments the bridge itself wrote on a ticket (expires)
    closed:<tid>   string  the bridge solved the ticket itself (expires)
    malware:<tid>  hash    attachment id -> file name: attachments held back for malware
                           that no internal note names yet (its write failed; expires)
    me             string  the id of the Zendesk user the bridge authenticates as (a day)
    export         string  the incremental ticket export's cursor (polling)
    private_attachments
                   string  "1"/"0": the account's tickets.private_attachments (an hour)
    budget         hash    the account's API budget, shared by every process
                           (bridge/helpdesks/budget.py)
    updated        hash    ticket id -> its updated_at as the last show_many poll saw it
                           (agents' tokens, which may not use the incremental export)
    oauth:<client id>
                   hash    the OAuth token pair of the authorization-code grant for that
                           client (`TokenPair`): access_token, refresh_token, expires_at
                           (epoch seconds when the access token dies), lifetime (its
                           expires_in), refresh_expires_at ('' when Zendesk named none),
                           scope, obtained_at, grant (authorization_code or refresh_token).
                           Written whole by one script; a renewal replaces it only while it
                           still holds the refresh token the renewal used. No expiry.
    oauth:<client id>:renewing
                   string  token of the process renewing that pair (expires): one renewal
                           at a time across every process
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from bridge.helpdesks.ticket_state import TTL_SECONDS, TicketState
from bridge.redis_client import Script
from bridge.storage import Store

# An admin may change the account's settings: read again this often.
SETTINGS_TTL = 3600

# Store a token pair whole. KEYS: pair; ARGV: the refresh token the pair must still hold
# ('' = whatever it holds), then field, value, ... Returns 1 written, 0 left alone.
_PUT_PAIR = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'refresh_token') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""

# Release a lock only while it is still the caller's. KEYS: lock; ARGV: the caller's token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class TokenPair:
    """An OAuth access token with the refresh token that renews it (times: epoch seconds)."""

    access_token: str
    refresh_token: str
    expires_at: float
    lifetime: float
    refresh_expires_at: float | None = None
    scope: str = ""
    obtained_at: float = 0.0
    grant: str = ""

    @property
    def renew_at(self) -> float:
        """When to renew: ahead of expiry, so no request carries a token that dies in flight."""
        margin = min(max(60.0, self.lifetime * 0.1), self.lifetime / 2)
        return self.expires_at - margin

    def fields(self) -> dict[str, str]:
        return {k: "" if v is None else str(v) for k, v in asdict(self).items()}

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> TokenPair | None:
        """The pair a hash holds; None when it holds none (or one unreadable)."""
        try:
            refresh_expires = raw.get("refresh_expires_at", "")
            pair = cls(
                access_token=raw["access_token"],
                refresh_token=raw["refresh_token"],
                expires_at=float(raw["expires_at"]),
                lifetime=float(raw["lifetime"]),
                refresh_expires_at=float(refresh_expires) if refresh_expires else None,
                scope=raw.get("scope", ""),
                obtained_at=float(raw.get("obtained_at") or 0),
                grant=raw.get("grant", ""),
            )
        except (KeyError, ValueError):
            return None
        return pair if pair.access_token and pair.refresh_token else None


@dataclass(frozen=True)
class Cursor:
    """Where `changes_since` stopped on one ticket (serialised as compact JSON)."""

    comment_id: int = 0
    assignee: str = ""
    closed: bool = False

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        if not raw:
            return cls()
        try:
            d = json.loads(raw)
            return cls(int(d.get("c", 0)), str(d.get("a", "")), bool(d.get("s", False)))
        except (ValueError, TypeError, AttributeError):
            # An unreadable cursor restarts from the beginning; the echo filters still apply.
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {"c": self.comment_id, "a": self.assignee, "s": self.closed}, separators=(",", ":")
        )


class AdapterState(TicketState):
    """The adapter's keys in the bridge's Redis."""

    helpdesk = "zendesk"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._put_pair = Script(self.redis, _PUT_PAIR)
        self._release = Script(self.redis, _RELEASE)

    def hold_malware_note(self, ticket_id: str, attachments: Mapping[int, str]) -> None:
        """Attachments an internal note must still name (the note was not written)."""
        if not attachments:
            return
        key = self.key("malware", ticket_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={str(k): v for k, v in attachments.items()})
        pipe.expire(key, TTL_SECONDS)
        pipe.execute()

    def malware_notes_due(self, ticket_id: str) -> dict[int, str]:
        raw = cast(dict[str, str], self.redis.hgetall(self.key("malware", ticket_id)))
        return {int(k): v for k, v in raw.items() if k.isdigit()}

    def malware_noted(self, ticket_id: str, attachment_ids: Iterable[int]) -> None:
        ids = [str(i) for i in attachment_ids]
        if ids:
            self.redis.hdel(self.key("malware", ticket_id), *ids)

    def api_user_id(self) -> str | None:
        return cast(str | None, self.redis.get(self.key("me")))

    def set_api_user_id(self, user_id: str) -> None:
        self.redis.set(self.key("me"), user_id, ex=24 * 3600)

    def export_cursor(self) -> str | None:
        return cast(str | None, self.redis.get(self.key("export")))

    def set_export_cursor(self, cursor: str) -> None:
        self.redis.set(self.key("export"), cursor)

    def forget_api_user_id(self) -> None:
        self.redis.delete(self.key("me"))

    # -- OAuth token pairs (authorization-code grant) -----------------------------------
    def token_pair_key(self, client_id: str) -> str:
        return self.key("oauth", client_id)

    def token_pair(self, client_id: str) -> TokenPair | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.token_pair_key(client_id)))
        return TokenPair.parse(raw) if raw else None

    def put_token_pair(self, client_id: str, pair: TokenPair, *, replacing: str = "") -> bool:
        """Store `pair` whole. With `replacing` (a refresh token), only while the stored pair
        still holds that refresh token: a renewal never overwrites a newer pair. Returns
        whether it was stored."""
        args = [replacing]
        for name, value in pair.fields().items():
            args += [name, value]
        return bool(self._put_pair(keys=[self.token_pair_key(client_id)], args=args))

    def take_renewal(self, client_id: str, seconds: float) -> str | None:
        """The right to renew the client's pair for `seconds` (a token to give back), or
        None while another process holds it."""
        token = secrets.token_urlsafe(16)
        key = self.key("oauth", client_id, "renewing")
        return token if self.redis.set(key, token, nx=True, px=int(seconds * 1000)) else None

    def end_renewal(self, client_id: str, token: str) -> None:
        """Give the right back, unless it expired and someone else holds it now."""
        self._release(keys=[self.key("oauth", client_id, "renewing")], args=[token])

    def seen_updates(self, ticket_ids: list[str]) -> dict[str, str]:
        """Each ticket's `updated_at` as the last poll saw it ("" when never seen)."""
        if not ticket_ids:
            return {}
        got = cast(list[str | None], self.redis.hmget(self.key("updated"), ticket_ids))
        return {t: v or "" for t, v in zip(ticket_ids, got, strict=True)}

    def remember_updates(self, updated: dict[str, str]) -> None:
        if updated:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.key("updated"), mapping=dict[Any, Any](updated))
            pipe.expire(self.key("updated"), TTL_SECONDS)
            pipe.execute()

    def private_attachments(self) -> bool | None:
        """The account's `tickets.private_attachments`, None when not read lately."""
        raw = cast(str | None, self.redis.get(self.key("private_attachments")))
        return None if raw is None else raw == "1"

    def set_private_attachments(self, value: bool) -> None:
        self.redis.set(self.key("private_attachments"), "1" if value else "0", ex=SETTINGS_TTL)
