"""What the Freshdesk adapter remembers: its cursor format and its own Redis keys.

Keys, under `P:adapter:freshdesk:` (`store.key("adapter", "freshdesk", ...)`):

    written:<tid>  set     ids of the conversations (notes) the bridge itself wrote on a
                           ticket: never sent back to Botpress (expires)
    closed:<tid>   string  the bridge resolved (or tried to resolve) the ticket itself, so
                           the resolution is no news to Botpress (expires)
    me             string  the id of the agent whose API key the bridge uses (a day)
    placeholder    string  the id of the contact that is a ticket's requester until the
                           end user first writes (a day)
    agents         hash    agent id -> name, for `agent-assigned` and replies (a day)
    poll           string  polling's cursor: the newest `updated_at` a poll has seen
    budget         hash    the account's API budget, shared by every process
                           (bridge/helpdesks/budget.py)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from bridge.helpdesks.ticket_state import TicketState

DAY = 24 * 3600


@dataclass(frozen=True)
class Cursor:
    """Where `changes_since` stopped on one ticket (compact JSON).

    `page`: the conversations page (100 a page, oldest first) that holds conversation
    `conversation_id`, so a read starts there rather than at the ticket's first page.
    """

    conversation_id: int = 0
    page: int = 1
    responder: str = ""
    closed: bool = False

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        if not raw:
            return cls()
        try:
            d = json.loads(raw)
            return cls(
                int(d.get("c", 0)),
                max(1, int(d.get("p", 1))),
                str(d.get("a", "")),
                bool(d.get("s", False)),
            )
        except (ValueError, TypeError, AttributeError):
            # An unreadable cursor restarts from the beginning; the echo filters still apply.
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {"c": self.conversation_id, "p": self.page, "a": self.responder, "s": self.closed},
            separators=(",", ":"),
        )


class AdapterState(TicketState):
    """The adapter's keys in the bridge's Redis."""

    helpdesk = "freshdesk"

    def cached(self, name: str) -> str | None:
        """`me` or `placeholder`."""
        return cast(str | None, self.redis.get(self.key(name)))

    def cache(self, name: str, value: str) -> None:
        self.redis.set(self.key(name), value, ex=DAY)

    def agent_name(self, agent_id: str) -> str | None:
        return cast(str | None, self.redis.hget(self.key("agents"), agent_id))

    def set_agent_name(self, agent_id: str, name: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key("agents"), agent_id, name)
        pipe.expire(self.key("agents"), DAY)
        pipe.execute()

    def poll_cursor(self) -> str | None:
        return cast(str | None, self.redis.get(self.key("poll")))

    def set_poll_cursor(self, value: str) -> None:
        self.redis.set(self.key("poll"), value)
