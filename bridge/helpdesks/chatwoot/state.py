"""What the Chatwoot adapter remembers: its cursor format and its own Redis keys.

Keys, under `P:adapter:chatwoot:` (bridge/storage.py lists every prefix):

    written:<conversation id>
                   set     ids of the messages the bridge itself wrote there (expires)
    closed:<conversation id>
                   string  the bridge resolved the conversation itself (expires)
    ticket:<bridge conversation id>
                   string  the Chatwoot conversation created for it, written as soon as
                           Chatwoot answered (a retry finds it before asking Chatwoot)
    source:<contact id>
                   string  the contact's source_id in the bridge's API inbox (expires)
    me             string  the id of the Chatwoot user the API token acts as (a day)
    webhook_secret string  the signing secret Chatwoot gave the bridge's webhook, stored by
                           `hitl-bridge chatwoot setup` (no expiry; never printed)
    budget         hash    the account's API budget when CHATWOOT_RATE_LIMIT is set
                           (bridge/helpdesks/budget.py)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from bridge.helpdesks.ticket_state import TTL_SECONDS, TicketState


@dataclass(frozen=True)
class Cursor:
    """Where `changes_since` stopped on one conversation (serialised as compact JSON)."""

    message_id: int = 0
    assignee: str = ""
    resolved: bool = False

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        if not raw:
            return cls()
        try:
            d = json.loads(raw)
            return cls(int(d.get("m", 0)), str(d.get("a", "")), bool(d.get("r", False)))
        except (ValueError, TypeError, AttributeError):
            # An unreadable cursor restarts from the beginning; the echo filters still apply.
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {"m": self.message_id, "a": self.assignee, "r": self.resolved}, separators=(",", ":")
        )


class AdapterState(TicketState):
    """The adapter's keys in the bridge's Redis."""

    helpdesk = "chatwoot"

    def ticket_of(self, bridge_conversation: str) -> str | None:
        return cast(str | None, self.redis.get(self.key("ticket", bridge_conversation)))

    def set_ticket_of(self, bridge_conversation: str, conversation_id: str) -> None:
        self.redis.set(self.key("ticket", bridge_conversation), conversation_id, ex=TTL_SECONDS)

    def source_id(self, contact_id: str) -> str | None:
        return cast(str | None, self.redis.get(self.key("source", contact_id)))

    def set_source_id(self, contact_id: str, source_id: str) -> None:
        self.redis.set(self.key("source", contact_id), source_id, ex=TTL_SECONDS)

    def api_user_id(self) -> str | None:
        return cast(str | None, self.redis.get(self.key("me")))

    def set_api_user_id(self, user_id: str) -> None:
        self.redis.set(self.key("me"), user_id, ex=24 * 3600)

    def webhook_secret(self) -> str:
        return cast(str | None, self.redis.get(self.key("webhook_secret"))) or ""

    def set_webhook_secret(self, secret: str) -> None:
        self.redis.set(self.key("webhook_secret"), secret)
