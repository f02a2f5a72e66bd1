"""What the adapter remembers: its cursor format and its own Redis keys (P:adapter:zendesk:*)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from bridge.storage import Store

# Long enough to outlive any hand-off; refreshed on every write.
TTL_SECONDS = 90 * 24 * 3600


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

    def seen_updates(self, ticket_ids: list[str]) -> dict[str, str]:
        """Each ticket's `updated_at` as the last poll saw it ("" when never seen)."""
        if not ticket_ids:
            return {}
        got = cast(list[str | None], self.redis.hmget(self._key("updated"), ticket_ids))
        return {t: v or "" for t, v in zip(ticket_ids, got, strict=True)}

    def remember_updates(self, updated: dict[str, str]) -> None:
        if updated:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self._key("updated"), mapping=dict[Any, Any](updated))
            pipe.expire(self._key("updated"), TTL_SECONDS)
            pipe.execute()
