"""The one small interface every helpdesk adapter implements (DESIGN.md §4).

An adapter is a class registered under the entry-point group `hitl_bridge.helpdesks`.
Workers call it to push Botpress's side of a conversation into the helpdesk, and to
read what agents did since a cursor. It raises TransientError or PermanentError
(bridge.errors) for failures; anything else is treated as transient.

Every write receives `maybe_applied`: True when an earlier attempt of the same event
started and never reported back (a worker died mid-call, or the call timed out). An
adapter then checks whether the write already landed before writing again, so a retry
never duplicates a ticket, user or comment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bridge.errors import WebhookRejected

if TYPE_CHECKING:
    from flask import Blueprint

    from bridge.config import Settings
    from bridge.storage import Conversation, Store, User


@dataclass(frozen=True)
class HistoryMessage:
    """A message of the bot conversation before the hand-off, if Botpress passed any."""

    text: str
    author: str = ""
    timestamp: str = ""


@dataclass(frozen=True)
class TicketRequest:
    """What `createRemoteConversation` asked for."""

    title: str
    description: str
    history: Sequence[HistoryMessage] = ()
    requester: User | None = None


@dataclass(frozen=True)
class Author:
    """Who wrote a Botpress-side message: the end user (with their record) or the bot."""

    kind: Literal["end_user", "bot"]
    user: User | None = None


@dataclass(frozen=True)
class OutboundMessage:
    """One `botSendsMessage` payload, its Botpress type inferred (bridge.contract)."""

    event_id: str
    message_type: str
    payload: Mapping[str, Any]
    at: float


@dataclass(frozen=True)
class AgentMessage:
    """An agent's public reply; `message_type`/`payload` are in Botpress's shape."""

    agent_id: str
    message_type: str
    payload: Mapping[str, Any]
    agent_name: str = ""


@dataclass(frozen=True)
class AgentAssigned:
    agent_id: str
    agent_name: str = ""


@dataclass(frozen=True)
class TicketClosed:
    """The agent side ended the hand-off (solved, closed)."""


Change = AgentMessage | AgentAssigned | TicketClosed


@dataclass(frozen=True)
class Changes:
    """What happened on a ticket since a cursor, oldest first, and the cursor after it."""

    items: Sequence[Change] = field(default_factory=list)
    cursor: str = ""


class Helpdesk(ABC):
    """A helpdesk the bridge hands conversations to."""

    name: ClassVar[str]
    #: How many consecutive messages of one author `append_messages` may receive at once.
    max_batch: ClassVar[int] = 20

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def config_problems(cls, environ: Mapping[str, str]) -> list[str]:
        """One line per problem in this adapter's environment variables."""
        return []

    @property
    def poll_interval(self) -> float:
        """Seconds between polls of open tickets by beat; 0 disables polling."""
        return 0.0

    @abstractmethod
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        """Create or update the end user; returns the helpdesk's user id."""

    @abstractmethod
    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        """Create the ticket for `conv`; returns the helpdesk's ticket id."""

    @abstractmethod
    def append_messages(
        self,
        conv: Conversation,
        author: Author,
        messages: Sequence[OutboundMessage],
        *,
        maybe_applied: bool,
    ) -> None:
        """Add consecutive messages of one author to the ticket, in order."""

    @abstractmethod
    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        """End the hand-off on the helpdesk side because the bot closed it."""

    @abstractmethod
    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        """What agents did on the ticket after `cursor` ("" = from the start).

        Never returns what the bridge itself wrote (DESIGN.md invariant 6).
        """

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, url_token: str | None = None
    ) -> list[str]:
        """Check an inbound webhook; returns the ids of the tickets it says changed.

        `url_token` is the last segment of `/webhooks/<name>/<token>`, for helpdesks that
        cannot sign their webhooks; compare it in constant time (`hmac.compare_digest`).
        Raise WebhookRejected (401/403) for a forged one.
        """
        raise WebhookRejected(f"the {self.name} helpdesk takes no webhooks", status=404)

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """The id the helpdesk gives one webhook delivery and keeps across its retries, if
        any: a verified webhook whose id was seen in the last minutes rings nothing new."""
        return None

    def changed_tickets(self) -> list[str] | None:
        """For polling: ticket ids changed recently, or None to ring every open one."""
        return None

    def check(self) -> list[str]:
        """Verify credentials and reachability; one line per problem."""
        return []

    def blueprint(self) -> Blueprint | None:
        """Extra web routes this helpdesk serves (an agent API, a webhook setup page)."""
        return None
