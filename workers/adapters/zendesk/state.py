"""What the adapter remembers: its cursor format and its own Redis keys (P:adapter:zendesk:*).

P:adapter:zendesk:written:<ticket>       set     ids of the comments the bridge wrote
P:adapter:zendesk:closed:<ticket>        string  "1": the bridge solved the ticket itself
P:adapter:zendesk:me                     string  the API user's id (a day)
P:adapter:zendesk:export                 string  the incremental export's cursor
P:adapter:zendesk:private_attachments    string  "1"/"0": the account's setting (an hour)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from bridge.storage import Store

# Long enough to outlive any hand-off; refreshed on every write.
TTL_SECONDS = 90 * 24 * 3600
# An admin may change the account's settings: read again this often.
SETTINGS_TTL = 3600


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


class AdapterState:
    """The adapter's keys in the bridge's Redis."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis

    def _key(self, *parts: str) -> str:
        return self.store.key("adapter", "zendesk", *parts)

    def remember_written(self, ticket_id: str, comment_ids: Iterable[int]) -> None:
        """Comments the bridge itself wrote on a ticket: never echoed back to Botpress."""
        ids = [str(i) for i in comment_ids]
        if not ids:
            return
        key = self._key("written", ticket_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(key, *ids)
        pipe.expire(key, TTL_SECONDS)
        pipe.execute()

    def written(self, ticket_id: str) -> set[int]:
        return {
            int(i) for i in cast(set[str], self.redis.smembers(self._key("written", ticket_id)))
        }

    def mark_closed_by_bridge(self, ticket_id: str) -> None:
        self.redis.set(self._key("closed", ticket_id), "1", ex=TTL_SECONDS)

    def clear_closed_by_bridge(self, ticket_id: str) -> None:
        self.redis.delete(self._key("closed", ticket_id))

    def closed_by_bridge(self, ticket_id: str) -> bool:
        return bool(self.redis.exists(self._key("closed", ticket_id)))

    def api_user_id(self) -> str | None:
        return cast(str | None, self.redis.get(self._key("me")))

    def set_api_user_id(self, user_id: str) -> None:
        self.redis.set(self._key("me"), user_id, ex=24 * 3600)

    def export_cursor(self) -> str | None:
        return cast(str | None, self.redis.get(self._key("export")))

    def set_export_cursor(self, cursor: str) -> None:
        self.redis.set(self._key("export"), cursor)

    def private_attachments(self) -> bool | None:
        """The account's `tickets.private_attachments`, None when not read lately."""
        raw = cast(str | None, self.redis.get(self._key("private_attachments")))
        return None if raw is None else raw == "1"

    def set_private_attachments(self, value: bool) -> None:
        self.redis.set(self._key("private_attachments"), "1" if value else "0", ex=SETTINGS_TTL)
