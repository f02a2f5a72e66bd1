"""A scripted helpdesk and Botpress for fast tests of the drain loop, and helpers around them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bridge import events as ev
from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.helpdesks.base import Author, Changes, Helpdesk, OutboundMessage, TicketRequest
from bridge.storage import Conversation, Store, User
from workers.context import Context
from workers.retry import RetryPolicy


class ScriptedHelpdesk(Helpdesk):
    name = "scripted"
    max_batch = 3

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, store)
        self.calls: list[tuple[str, Any]] = []
        self.failures: list[Exception] = []
        self.changes: list[Changes] = []

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        self._maybe_fail()
        self.calls.append(("user", user.id))
        return f"hd-{user.id}"

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        self._maybe_fail()
        self.calls.append(("ticket", (conv.id, request.title, maybe_applied)))
        return f"T-{conv.id}"

    def append_messages(
        self,
        conv: Conversation,
        author: Author,
        messages: Sequence[OutboundMessage],
        *,
        maybe_applied: bool,
    ) -> None:
        self._maybe_fail()
        self.calls.append(("messages", [m.payload["text"] for m in messages]))

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        self._maybe_fail()
        self.calls.append(("close", conv.id))

    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        self._maybe_fail()
        self.calls.append(("read", cursor))
        return self.changes.pop(0) if self.changes else Changes([], cursor)


class ScriptedBotpress:
    def __init__(self) -> None:
        self.delivered: list[ev.Event] = []
        self.failures: list[Exception] = []

    def deliver(self, event: ev.Event) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(event)

    def external_ids(self, bp_id: str) -> list[str]:
        raise PermanentError("no token")


def make_ctx(settings: Settings, store: Store, dispatch: Any) -> Context:
    """A worker's context with the scripted helpdesk and Botpress on `store`."""
    return Context(
        settings=settings,
        store=store,
        helpdesk=ScriptedHelpdesk(settings, store),
        dispatch=dispatch,
        botpress=ScriptedBotpress(),  # type: ignore[arg-type]
        retry=RetryPolicy(base=10, cap=100, window=1000),
    )


def helpdesk(ctx: Context) -> ScriptedHelpdesk:
    assert isinstance(ctx.helpdesk, ScriptedHelpdesk)
    return ctx.helpdesk


def open_conversation(ctx: Context, cid: str = "c_1") -> str:
    conv = Conversation(id=cid, created_at=time.time(), title="Help")
    ctx.store.create_conversation(
        conv, ev.Event(ev.CONVERSATION_CREATE, f"hd:{cid}", {"title": "Help"})
    )
    return f"hd:{cid}"


def say(ctx: Context, cid: str, author: str, text: str) -> None:
    ctx.store.append(
        ev.Event(
            ev.MESSAGE, f"hd:{cid}", {"author": author, "type": "text", "payload": {"text": text}}
        )
    )
