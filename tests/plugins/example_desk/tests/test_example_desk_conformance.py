"""Example Desk, a plug-in installed from its own package, passes the conformance kit."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest
from fake_desk import FakeDesk  # this folder is on sys.path (no __init__.py)

from bridge.helpdesks.conformance import DeskHarness, HelpdeskConformance, Webhook

TOKEN = "example-token-5c2e9d0a71"
SECRET = "example-webhook-secret-8b41f3"
AGENT = 7


class ExampleHarness(DeskHarness):
    def __init__(self, fake: FakeDesk) -> None:
        self.fake = fake

    def env(self) -> dict[str, str]:
        return {
            "HELPDESK": "example",
            "EXAMPLE_DESK_URL": self.fake.url,
            "EXAMPLE_DESK_TOKEN": TOKEN,
            "EXAMPLE_DESK_WEBHOOK_SECRET": SECRET,
        }

    def ticket_count(self) -> int:
        return len(self.fake.tickets)

    def user_count(self) -> int:
        return len(self.fake.contacts)

    def texts(self, ticket_id: str) -> list[str]:
        ticket = self.fake.tickets[int(ticket_id)]
        return [ticket["body"], *(m["body"] for m in ticket["messages"])]

    def is_closed(self, ticket_id: str) -> bool:
        return bool(self.fake.tickets[int(ticket_id)]["status"] == "closed")

    def agent_reply(self, ticket_id: str, text: str) -> str:
        self.fake.agent(ticket_id, "message", text, AGENT)
        return str(AGENT)

    def agent_note(self, ticket_id: str, text: str) -> None:
        self.fake.agent(ticket_id, "note", text, AGENT)

    def assign(self, ticket_id: str) -> str:
        self.fake.agent(ticket_id, "assigned", agent_id=AGENT)
        return str(AGENT)

    def agent_closes(self, ticket_id: str) -> None:
        self.fake.agent(ticket_id, "closed", agent_id=AGENT)

    def foreign_ticket(self) -> str:
        return self.fake.new_ticket("By e-mail")

    def webhook(self, ticket_id: str) -> Webhook:
        return Webhook(*self.fake.webhook(ticket_id))

    def forgeries(self, ticket_id: str) -> list[Webhook]:
        headers, body = self.fake.webhook(ticket_id)
        other = self.fake.webhook(ticket_id, secret="someone-else-entirely")
        return [Webhook(*other), Webhook(headers, body.replace(b"}", b', "x": 1}'))]


def test_the_adapter_is_found_through_its_entry_point_not_the_bridges_builtins() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="hitl_bridge.helpdesks")}
    assert found.get("example") == "example_desk:ExampleDesk", (
        "install the example plug-in: pip install -e tests/plugins/example_desk (scripts/test does)"
    )


class TestExampleDeskConformance(HelpdeskConformance):
    @pytest.fixture
    def harness(self) -> Iterator[ExampleHarness]:
        fake = FakeDesk(TOKEN, SECRET).start()
        try:
            yield ExampleHarness(fake)
        finally:
            fake.stop()
