"""What every ticket-based adapter remembers of its own writes, under its own prefix.

Keys, under `P:adapter:<helpdesk>:` (each adapter's state module lists the rest):

    written:<ticket id>  set     ids of the entries (comments, messages, notes) the bridge
                                 itself wrote on the ticket: never read back as an agent's
                                 (DESIGN.md invariant 6); expires
    closed:<ticket id>   string  the bridge ended the ticket itself: its close is not read
                                 back as an agent's; expires
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, cast

from bridge.storage import Store

# Long enough to outlive any hand-off; refreshed on every write.
TTL_SECONDS = 90 * 24 * 3600


class TicketState:
    """An adapter's keys in the bridge's Redis; subclasses name the helpdesk."""

    helpdesk: ClassVar[str]

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis

    def key(self, *parts: str) -> str:
        return self.store.key("adapter", self.helpdesk, *parts)

    def remember_written(self, ticket_id: str, ids: Iterable[int]) -> None:
        """Entries the bridge itself wrote on a ticket: never echoed back to Botpress."""
        found = [str(i) for i in ids]
        if not found:
            return
        key = self.key("written", ticket_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(key, *found)
        pipe.expire(key, TTL_SECONDS)
        pipe.execute()

    def written(self, ticket_id: str) -> set[int]:
        raw = cast(set[str], self.redis.smembers(self.key("written", ticket_id)))
        return {int(i) for i in raw if i.isdigit()}

    def mark_closed_by_bridge(self, ticket_id: str) -> None:
        self.redis.set(self.key("closed", ticket_id), "1", ex=TTL_SECONDS)

    def clear_closed_by_bridge(self, ticket_id: str) -> None:
        self.redis.delete(self.key("closed", ticket_id))

    def closed_by_bridge(self, ticket_id: str) -> bool:
        return bool(self.redis.exists(self.key("closed", ticket_id)))
