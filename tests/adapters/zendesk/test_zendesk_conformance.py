"""The Zendesk adapter passes the conformance kit against the strict fake Zendesk."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import requests

from bridge.config import Settings
from bridge.helpdesks.conformance import DeskHarness, HelpdeskConformance, Webhook
from tests.adapters.zendesk.conftest import WEBHOOK_SECRET
from tests.support.fake_zendesk import FakeZendesk

ENDED = ("solved", "closed")


class ZendeskHarness(DeskHarness):
    """Agents act in the fake's agent UI; webhooks are signed as Zendesk signs them."""

    coalesces = True

    def __init__(self, fake: FakeZendesk, env: dict[str, str]) -> None:
        self.fake, self._env = fake, env
        self.agent = fake.add_agent("Grace Agent")

    def env(self) -> dict[str, str]:
        return self._env

    def ticket_count(self) -> int:
        return len(self.fake.tickets)

    def user_count(self) -> int:
        return sum(1 for u in self.fake.users.values() if u["role"] == "end-user")

    def texts(self, ticket_id: str) -> list[str]:
        return [str(c["body"]) for c in self.fake.comments(ticket_id)]

    def is_closed(self, ticket_id: str) -> bool:
        return self.fake.tickets[int(ticket_id)]["status"] in ENDED

    def agent_reply(self, ticket_id: str, text: str) -> str:
        self.fake.agent_comment(ticket_id, self.agent, text, public=True)
        return str(self.agent)

    def agent_note(self, ticket_id: str, text: str) -> None:
        self.fake.agent_comment(ticket_id, self.agent, text, public=False)

    def assign(self, ticket_id: str) -> str:
        self.fake.assign(ticket_id, self.agent)
        return str(self.agent)

    def agent_closes(self, ticket_id: str) -> None:
        if not self.fake.tickets[int(ticket_id)].get("assignee_id"):
            self.fake.assign(ticket_id, self.agent)  # Zendesk solves assigned tickets only
        self.fake.solve(ticket_id)

    def foreign_ticket(self) -> str:
        """A ticket an end user opened by e-mail, through the public API."""
        resp = requests.post(
            f"{self.fake.url}/api/v2/tickets",
            json={"ticket": {"subject": "By e-mail", "comment": {"body": "Hello?"}}},
            auth=(f"{self.fake.email}/token", self.fake.api_token),
            timeout=5,
        )
        resp.raise_for_status()
        return str(resp.json()["ticket"]["id"])

    def webhook(self, ticket_id: str) -> Webhook:
        headers, body = self.fake.webhook_request(ticket_id, secret=WEBHOOK_SECRET)
        return Webhook(headers, body)

    def forgeries(self, ticket_id: str) -> list[Webhook]:
        other, body = self.fake.webhook_request(ticket_id, secret="c29tZW9uZSBlbHNlJ3M=")
        genuine, _ = self.fake.webhook_request(ticket_id, secret=WEBHOOK_SECRET)
        stale, _ = self.fake.webhook_request(
            ticket_id, secret=WEBHOOK_SECRET, at=time.time() - 3600
        )
        changed = json.dumps({"ticket_id": str(int(ticket_id) + 1)}).encode()
        return [Webhook(other, body), Webhook(genuine, changed), Webhook(stale, body)]

    def writes(self) -> int:
        return sum(1 for r in self.fake.requests if r.method != "GET")


class TestZendeskConformance(HelpdeskConformance):
    @pytest.fixture
    def harness(self, fake: FakeZendesk, make_settings: Callable[..., Settings]) -> ZendeskHarness:
        return ZendeskHarness(fake, dict(make_settings().environ))
