"""The built-in inbox passes the conformance kit (bridge/helpdesks/conformance.py)."""

from __future__ import annotations

import json
from typing import cast

import pytest

from bridge.helpdesks.conformance import DeskHarness, HelpdeskConformance
from bridge.helpdesks.inbox.desk import Desk
from bridge.storage import Store

AGENT = "alice"


class InboxHarness(DeskHarness):
    """Agents act through the inbox's desk (what the console and the bearer API call)."""

    webhooks = False  # the inbox rings its own doorbells: nothing to verify

    def __init__(self, store: Store) -> None:
        self.desk = Desk(store)
        self.redis = store.redis

    def env(self) -> dict[str, str]:
        return {"HELPDESK": "inbox"}

    def ticket_count(self) -> int:
        return int(self.redis.zcard(self.desk.k("tickets")))

    def user_count(self) -> int:
        return int(self.redis.hlen(self.desk.k("users")))

    def texts(self, ticket_id: str) -> list[str]:
        log = cast(list[str], self.redis.lrange(self.desk.k("log", ticket_id), 0, -1))
        ticket = self.desk.ticket(ticket_id) or {}
        first = [str(ticket.get("description", "")), str(ticket.get("history", ""))]
        return first + [json.loads(e).get("text", "") for e in log]

    def is_closed(self, ticket_id: str) -> bool:
        return (self.desk.ticket(ticket_id) or {}).get("status") == "closed"

    def agent_reply(self, ticket_id: str, text: str) -> str:
        self.desk.act(ticket_id, "message", AGENT, text=text)
        return AGENT

    def agent_note(self, ticket_id: str, text: str) -> None:
        self.desk.act(ticket_id, "note", AGENT, text=text)

    def assign(self, ticket_id: str) -> str:
        self.desk.act(ticket_id, "assign", AGENT)
        return AGENT

    def agent_closes(self, ticket_id: str) -> None:
        self.desk.act(ticket_id, "close", AGENT)


class TestInboxConformance(HelpdeskConformance):
    @pytest.fixture
    def harness(self, store: Store) -> InboxHarness:
        return InboxHarness(store)
