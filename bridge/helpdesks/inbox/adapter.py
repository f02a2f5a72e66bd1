"""The inbox helpdesk: the embedded default, so the whole loop runs with no helpdesk account.

Its keys are written down in timeline.py, beside the scripts that write them. Agents work
it from the console (console.py) or the bearer API (api.py), both through desk.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    Change,
    Changes,
    Helpdesk,
    OutboundMessage,
    TicketClosed,
    TicketRequest,
)
from bridge.helpdesks.inbox.desk import Desk
from bridge.helpdesks.inbox.timeline import Timeline, entry
from bridge.helpdesks.render import one_line
from bridge.storage import Conversation, Store, User

if TYPE_CHECKING:
    from flask import Blueprint


class InboxHelpdesk(Helpdesk):
    name = "inbox"
    max_batch = 50

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, store)
        self.timeline = Timeline(store)
        self.desk = Desk(store)

    # -- Botpress -> inbox --------------------------------------------------------------
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        profile = {"name": user.name, "email": user.email, "picture_url": user.picture_url}
        self.store.redis.hset(self.timeline.k("users"), user.id, json.dumps(profile))
        return user.id

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        fields = {
            "conversation": conv.id,
            "subject": request.title or "Conversation from Botpress",
            "description": request.description,
        }
        if request.requester:
            fields["requester"] = request.requester.id
        history = [
            entry(
                "message",
                "history",
                h.author or "",
                text=h.text,
                type="text",
                payload={"text": h.text},
            )
            for h in request.history
        ]
        self.timeline.create(conv.id, fields, conv.created_at, history)
        return conv.id

    def append_messages(
        self,
        conv: Conversation,
        author: Author,
        messages: Sequence[OutboundMessage],
        *,
        maybe_applied: bool,
    ) -> None:
        tid = conv.ticket_id
        if maybe_applied:
            messages = [m for m in messages if not self.timeline.written(tid, m.event_id)]
        if not messages:
            return
        by = "bot" if author.kind == "bot" else "end_user"
        name = "BOT" if author.user is None else (author.user.name or author.user.id)
        entries = [
            entry(
                "message",
                by,
                name,
                event=m.event_id,
                type=m.message_type,
                payload=dict(m.payload),
                text=one_line(m.message_type, m.payload),
            )
            for m in messages
        ]
        requester = author.user.id if author.user is not None else ""
        if not self.timeline.record(tid, entries, requester=requester):
            raise PermanentError(f"inbox ticket {tid} does not exist")

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        tid = conv.ticket_id
        if maybe_applied and self.timeline.written(tid, event_id):
            return
        closing = entry(
            "close", "bridge", "BOT", event=event_id, text="The bot closed the hand-off."
        )
        self.timeline.record(tid, [closing], close=True)

    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        start = int(cursor or 0)
        log = self.timeline.k("log", conv.ticket_id)
        raw = cast(list[str], self.store.redis.lrange(log, start, -1))
        items: list[Change] = []
        for e in map(json.loads, raw):
            if e["by"] != "agent":
                continue  # what the bridge wrote is never echoed back (invariant 6)
            if e["kind"] == "message":
                payload = e.get("payload") or {"text": e.get("text", "")}
                kind = e.get("type") or "text"
                items.append(AgentMessage(e["author"], kind, payload, agent_name=e["author"]))
            elif e["kind"] == "assign":
                assignee = e.get("assignee") or e["author"]
                items.append(AgentAssigned(assignee, agent_name=assignee))
            elif e["kind"] == "close":
                items.append(TicketClosed())
            # Notes stay in the inbox: agents only, never sent to Botpress.
        return Changes(items, str(start + len(raw)))

    def blueprint(self) -> Blueprint:
        """The agents' routes: the console (/console/), its files, and the bearer API."""
        from flask import Blueprint

        from bridge.helpdesks.inbox import api, console

        routes = Blueprint("inbox_web", __name__)
        routes.register_blueprint(api.blueprint)
        routes.register_blueprint(console.blueprint)
        routes.register_blueprint(console.files_blueprint)
        return routes
