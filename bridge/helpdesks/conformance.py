"""The conformance kit: pytest tests every helpdesk adapter passes against its own fake.

An adapter's package proves it keeps the bridge's promises (nothing lost, nothing
duplicated, order kept, no echoes) by running these tests against a local fake of its
helpdesk. Subclass `HelpdeskConformance` in a test module and give it a `harness` fixture
returning your `DeskHarness`:

    from bridge.helpdesks.conformance import DeskHarness, HelpdeskConformance

    class MyDeskHarness(DeskHarness):
        ...  # drives your fake: acts as its agents, reads what it holds

    class TestMyDesk(HelpdeskConformance):
        @pytest.fixture
        def harness(self) -> Iterator[MyDeskHarness]:
            fake = MyFakeDesk().start()
            yield MyDeskHarness(fake)
            fake.stop()

The kit loads the adapter the way the bridge does, by its `HELPDESK` name through the
`hitl_bridge.helpdesks` entry points, and keeps the bridge's records in a Redis the
`store` fixture gives (fakeredis by default; override it to use a real one). It needs
pytest, and fakeredis for the default store: the bridge's `test` extra has both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Webhook:
    """One webhook delivery as the helpdesk would post it to the bridge.

    `url_token` is the last segment of `/webhooks/<name>/<token>` when the helpdesk puts a
    secret in the URL instead of signing; None posts to `/webhooks/<name>`.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    url_token: str | None = None


class DeskHarness(ABC):
    """One helpdesk's fake, as the kit drives it: its agents' actions and what it holds.

    Ticket ids are the ones the adapter's `create_ticket` returned.
    """

    #: Whether consecutive messages may land as fewer writes than messages (one comment).
    coalesces: ClassVar[bool] = False
    #: Whether the helpdesk tells the bridge of changes by webhook (else polling only).
    webhooks: ClassVar[bool] = True

    @abstractmethod
    def env(self) -> dict[str, str]:
        """The environment that points the adapter at the fake: `HELPDESK` and its
        credentials. The kit adds BRIDGE_SECRET and ADMIN_TOKEN."""

    @abstractmethod
    def ticket_count(self) -> int:
        """How many tickets (conversations) the helpdesk holds."""

    @abstractmethod
    def user_count(self) -> int:
        """How many end users (contacts) the helpdesk holds."""

    @abstractmethod
    def texts(self, ticket_id: str) -> list[str]:
        """The text of every message on the ticket, oldest first, as the helpdesk holds
        it: the first (description, history) and what the bridge and agents wrote,
        private notes included."""

    @abstractmethod
    def is_closed(self, ticket_id: str) -> bool:
        """The ticket is solved, resolved or closed on the helpdesk."""

    @abstractmethod
    def agent_reply(self, ticket_id: str, text: str) -> str:
        """An agent replies publicly on the ticket; returns the agent's id."""

    @abstractmethod
    def agent_note(self, ticket_id: str, text: str) -> None:
        """An agent writes a private note on the ticket (never for the end user)."""

    @abstractmethod
    def assign(self, ticket_id: str) -> str:
        """An agent takes the ticket; returns the agent's id."""

    @abstractmethod
    def agent_closes(self, ticket_id: str) -> None:
        """An agent solves (resolves) the ticket."""

    def foreign_ticket(self) -> str:
        """A ticket someone other than the bridge made (an e-mail, another channel);
        returns its id. Needed when `webhooks` is true."""
        raise NotImplementedError

    def webhook(self, ticket_id: str) -> Webhook:
        """A genuine webhook saying the ticket changed. Needed when `webhooks` is true."""
        raise NotImplementedError

    def forgeries(self, ticket_id: str) -> list[Webhook]:
        """Webhooks about the ticket that must be refused: unsigned, signed with another
        secret, a changed body under a signature, a wrong URL token, a stale timestamp...
        The kit always adds the genuine one with every header and the token taken away."""
        return []

    def writes(self) -> int:
        """How many write requests (any method but GET) the fake has answered. Needed when
        `coalesces` is true."""
        raise NotImplementedError
