"""The inbox helpdesk: the embedded default, so the whole loop runs with no helpdesk account.

Its keys (under `P:adapter:inbox:`, see bridge/storage.py):

    ticket:<tid>   hash   conversation, subject, description, requester, status, assignee
    log:<tid>      list   the ticket's timeline, oldest first (JSON entries, see `_entry`)
    tickets        zset   ticket ids by creation time
    users          hash   bridge user id -> JSON profile
    agents         hash   agent name -> password hash and version (agents.py)

A ticket's id is its conversation id. Entries written for Botpress carry the event id,
which makes every write idempotent; agent entries are what `changes_since` reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.redis_client import Script
from bridge.storage import Conversation, Store, User
from workers.adapters.base import (
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

if TYPE_CHECKING:
    from flask import Blueprint

#: How far back an idempotency check looks for an event already written.
LOOKBACK = 200


def _str(value: Any) -> str:
    """A payload field as text: strings as they are, numbers written out, anything else ''.

    Payloads are kept as Botpress sent them, and an end user's client can put any JSON in
    any field: the agent's view must not fail on a title that is a number or a list.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def render(message_type: str, payload: dict[str, Any]) -> str:
    """A one-line, human-readable text of a Botpress message for the agent's view."""
    p = payload
    if message_type in ("text", "markdown"):
        return _str(p.get(message_type))
    if message_type in ("image", "audio", "video", "file"):
        url = _str(p.get(f"{message_type}Url"))
        title = _str(p.get("title"))
        return f"[{message_type}] {title + ': ' if title else ''}{url}"
    if message_type == "location":
        label = _str(p.get("title")) or _str(p.get("address"))
        where = f"({_str(p.get('latitude'))}, {_str(p.get('longitude'))})"
        return f"[location] {label} {where}" if label else f"[location] {where}"
    if message_type in ("choice", "dropdown"):
        labels = ", ".join(
            _str(o.get("label")) or _str(o.get("value"))
            for o in _list(p.get("options"))
            if isinstance(o, dict)
        )
        return f"{_str(p.get('text'))} [options: {labels}]".strip()
    if message_type == "card":
        return f"[card] {_str(p.get('title'))}"
    if message_type in ("carousel", "bloc"):
        return f"[{message_type}] {len(_list(p.get('items')))} items"
    return json.dumps(p, ensure_ascii=False)


# KEYS: ticket, log; ARGV: requester to record ('' for none), entries... -> 0: no ticket
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'requester', ARGV[1]) end
return 1
"""


class InboxHelpdesk(Helpdesk):
    name = "inbox"
    max_batch = 50

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, store)
        self._append = Script(store.redis, _APPEND)

    # -- keys ---------------------------------------------------------------------------
    def _k(self, *parts: str) -> str:
        return self.store.key("adapter", "inbox", *parts)

    @property
    def _redis(self) -> Any:
        return self.store.redis

    def _entry(self, kind: str, by: str, author: str, **fields: Any) -> str:
        return json.dumps(
            {"kind": kind, "by": by, "author": author, "at": time.time(), **fields},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def _written(self, tid: str, event_id: str) -> bool:
        tail = cast(list[str], self._redis.lrange(self._k("log", tid), -LOOKBACK, -1))
        return any(json.loads(e).get("event") == event_id for e in tail)

    # -- Botpress -> inbox --------------------------------------------------------------
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        profile = {"name": user.name, "email": user.email, "picture_url": user.picture_url}
        self._redis.hset(self._k("users"), user.id, json.dumps(profile))
        return user.id

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        tid = conv.id
        pipe = self._redis.pipeline(transaction=True)
        pipe.hsetnx(self._k("ticket", tid), "conversation", conv.id)
        fields = {
            "subject": request.title or "Conversation from Botpress",
            "description": request.description,
            "status": "open",
            "created_at": repr(conv.created_at),
        }
        if request.requester:
            fields["requester"] = request.requester.id
        pipe.hset(self._k("ticket", tid), mapping=fields)
        pipe.zadd(self._k("tickets"), {tid: conv.created_at})
        created = pipe.execute()[0]
        if created and request.history:
            entries = [
                self._entry(
                    "message",
                    "history",
                    h.author or "",
                    text=h.text,
                    type="text",
                    payload={"text": h.text},
                )
                for h in request.history
            ]
            self._redis.rpush(self._k("log", tid), *entries)
        return tid

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
            messages = [m for m in messages if not self._written(tid, m.event_id)]
        if not messages:
            return
        by = "bot" if author.kind == "bot" else "end_user"
        name = "BOT" if author.user is None else (author.user.name or author.user.id)
        entries = [
            self._entry(
                "message",
                by,
                name,
                event=m.event_id,
                type=m.message_type,
                payload=dict(m.payload),
                text=render(m.message_type, dict(m.payload)),
            )
            for m in messages
        ]
        requester = author.user.id if author.user is not None and not conv.requester else ""
        keys = [self._k("ticket", tid), self._k("log", tid)]
        if not self._append(keys=keys, args=[requester, *entries]):
            raise PermanentError(f"inbox ticket {tid} does not exist")

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        tid = conv.ticket_id
        if maybe_applied and self._written(tid, event_id):
            return
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._k("ticket", tid), "status", "closed")
        pipe.rpush(
            self._k("log", tid),
            self._entry(
                "close", "bridge", "BOT", event=event_id, text="The bot closed the hand-off."
            ),
        )
        pipe.execute()

    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        start = int(cursor or 0)
        raw = cast(list[str], self._redis.lrange(self._k("log", conv.ticket_id), start, -1))
        items: list[Change] = []
        for entry in map(json.loads, raw):
            if entry["by"] != "agent":
                continue  # what the bridge wrote is never echoed back (invariant 6)
            if entry["kind"] == "message":
                items.append(
                    AgentMessage(
                        entry["author"], "text", {"text": entry["text"]}, agent_name=entry["author"]
                    )
                )
            elif entry["kind"] == "assign":
                items.append(AgentAssigned(entry["author"], agent_name=entry["author"]))
            elif entry["kind"] == "close":
                items.append(TicketClosed())
        return Changes(items, str(start + len(raw)))

    # -- the agent's side ---------------------------------------------------------------
    def tickets(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Tickets, newest first, each with its timeline."""
        tids = cast(list[str], self._redis.zrevrange(self._k("tickets"), 0, limit - 1))
        found = [t for t in (self.ticket(tid) for tid in tids) if t is not None]
        return [t for t in found if status is None or t["status"] == status]

    def ticket(self, tid: str) -> dict[str, Any] | None:
        h = cast(dict[str, str], self._redis.hgetall(self._k("ticket", tid)))
        if not h:
            return None
        log = [
            json.loads(e) for e in cast(list[str], self._redis.lrange(self._k("log", tid), 0, -1))
        ]
        return {
            "id": tid,
            "conversation": h.get("conversation", tid),
            "subject": h.get("subject", ""),
            "description": h.get("description", ""),
            "status": h.get("status", "open"),
            "requester": h.get("requester", ""),
            "assignee": h.get("assignee", ""),
            "messages": log,
        }

    def agent_action(self, tid: str, kind: str, agent: str, text: str = "") -> dict[str, Any]:
        """Record what an agent did on a ticket; the caller rings the doorbell after.

        Raises LookupError for an unknown ticket and ValueError for a closed one.
        """
        h = cast(dict[str, str], self._redis.hgetall(self._k("ticket", tid)))
        if not h:
            raise LookupError(f"no inbox ticket {tid}")
        if h.get("status") == "closed":
            raise ValueError(f"ticket {tid} is closed")
        entry = self._entry(kind, "agent", agent, text=text)
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(self._k("log", tid), entry)
        if kind == "assign":
            pipe.hset(self._k("ticket", tid), "assignee", agent)
        elif kind == "close":
            pipe.hset(self._k("ticket", tid), "status", "closed")
        pipe.execute()
        return cast(dict[str, Any], json.loads(entry))

    def blueprint(self) -> Blueprint:
        from workers.adapters.inbox.api import blueprint

        return blueprint
