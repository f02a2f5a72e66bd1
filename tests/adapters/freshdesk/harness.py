"""The conformance kit's harness for the fake Freshdesk (bridge/helpdesks/conformance.py)."""

from __future__ import annotations

import json

import requests

from bridge.helpdesks.conformance import BASE_ENV, DeskHarness, Webhook
from bridge.helpdesks.freshdesk.webhook import derived_token
from tests.support.fake_freshdesk import FakeFreshdesk


class FreshdeskHarness(DeskHarness):
    """Agents act in the fake's agent UI; the automation rule's webhook carries the token
    derived from the kit's BRIDGE_SECRET in its URL."""

    coalesces = True  # one note per batch of one author's messages

    def __init__(self, fake: FakeFreshdesk, env: dict[str, str]) -> None:
        self.fake, self._env = fake, env
        self.agent = fake.add_agent("Grace Agent")

    def env(self) -> dict[str, str]:
        return self._env

    def ticket_count(self) -> int:
        return len(self.fake.tickets)

    def user_count(self) -> int:
        return len(self.fake.contacts)

    def texts(self, ticket_id: str) -> list[str]:
        first = str(self.fake.tickets[int(ticket_id)]["description_text"])
        return [first, *(str(c["body_text"]) for c in self.fake.notes(ticket_id))]

    def is_closed(self, ticket_id: str) -> bool:
        return self.fake.tickets[int(ticket_id)]["status"] in (4, 5)

    def agent_reply(self, ticket_id: str, text: str) -> str:
        self.fake.agent_reply(ticket_id, self.agent, text)
        return str(self.agent)

    def agent_note(self, ticket_id: str, text: str) -> None:
        self.fake.agent_note(ticket_id, self.agent, text, private=True)

    def assign(self, ticket_id: str) -> str:
        self.fake.assign(ticket_id, self.agent)
        return str(self.agent)

    def agent_closes(self, ticket_id: str) -> None:
        self.fake.resolve(ticket_id)

    def foreign_ticket(self) -> str:
        """A ticket made through the public API by another integration (an e-mail)."""
        auth = (self.fake.api_key, "X")
        contact = requests.post(
            f"{self.fake.url}/api/v2/contacts",
            json={"name": "Someone", "email": f"someone{len(self.fake.contacts)}@example.com"},
            auth=auth,
            timeout=5,
        )
        contact.raise_for_status()
        resp = requests.post(
            f"{self.fake.url}/api/v2/tickets",
            json={
                "subject": "By e-mail",
                "description": "Hello?",
                "requester_id": contact.json()["id"],
                "source": 1,
                "status": 2,
                "priority": 1,
            },
            auth=auth,
            timeout=5,
        )
        resp.raise_for_status()
        return str(resp.json()["id"])

    def webhook(self, ticket_id: str) -> Webhook:
        token = derived_token(self._env.get("BRIDGE_SECRET") or BASE_ENV["BRIDGE_SECRET"])
        body = json.dumps({"ticket_id": int(ticket_id)}).encode()
        return Webhook({"Content-Type": "application/json"}, body, token)

    def forgeries(self, ticket_id: str) -> list[Webhook]:
        genuine = self.webhook(ticket_id)
        headers, body = genuine.headers, genuine.body
        other = derived_token("someone-elses-secret-0123456789")
        assert genuine.url_token is not None
        altered = genuine.url_token[:-1] + ("A" if genuine.url_token[-1] != "A" else "B")
        return [
            Webhook(headers, body, other),
            Webhook(headers, body, altered),
            Webhook(headers, body, genuine.url_token + "x"),
        ]

    def writes(self) -> int:
        return self.fake.writes()
