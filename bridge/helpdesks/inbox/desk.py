"""What the inbox's agents see and do: queues, conversations, replies, notes, assignment.

Shared by the console (console.py), the bearer API (api.py) and the CLI; every write goes
through timeline.py, and the caller rings the conversation's doorbell after an action that
Botpress must hear of (`Action.rings`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from bridge.errors import Refused
from bridge.helpdesks.inbox.timeline import Timeline, entry
from bridge.storage import Store

VIEWS = ("unassigned", "mine", "open", "closed")
View = Literal["unassigned", "mine", "open", "closed"]
ACTIONS = ("message", "note", "assign", "close")
MAX_TEXT = 65536
MAX_REPLY_TITLE = 100
MAX_SAVED_REPLIES = 200
#: What a ticket id can be (the bridge mints `c_<url-safe>`): anything else names no ticket
#: and is never looked up (a request's path must not pick arbitrary Redis keys).
TICKET_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
#: Rows a queue shows; closed tickets are the most recently closed.
QUEUE_LIMIT = 200


class DeskError(Refused):
    """An agent's request that cannot be carried out; `status` is the HTTP answer."""


class UnknownTicket(DeskError, LookupError):
    status = 404


class TicketIsClosed(DeskError):
    status = 409


class Invalid(DeskError):
    """The request itself is wrong; the message names the field."""


@dataclass(frozen=True)
class Action:
    """What an agent did: the timeline entry, and whether Botpress must hear of it."""

    entry: dict[str, Any]

    @property
    def rings(self) -> bool:
        return bool(self.entry["kind"] != "note")


def check_text(text: object, field: str = "text") -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise Invalid(f"{field}: a non-empty text of at most {MAX_TEXT} characters is required")
    return text


class Desk:
    """The inbox as its agents work it."""

    def __init__(self, store: Store) -> None:
        self.timeline = Timeline(store)
        self.redis: Any = store.redis

    def k(self, *parts: str) -> str:
        return self.timeline.k(*parts)

    def version(self) -> int:
        """Moves on with every change: what open consoles poll."""
        return self.timeline.version()

    # -- reading ------------------------------------------------------------------------
    def queue(self, view: View, agent: str, limit: int = QUEUE_LIMIT) -> list[dict[str, Any]]:
        """The rows of one queue view for `agent`: longest-waiting first, closed ones most
        recently closed first."""
        if view == "closed":
            tids = cast(list[str], self.redis.zrevrange(self.k("closed"), 0, limit - 1))
        else:
            tids = cast(list[str], self.redis.zrange(self.k("open"), 0, -1))
        rows = [
            r
            for r in self._rows(tids, agent)
            if r["status"] == ("closed" if view == "closed" else "open")
        ]
        return _queue(rows, view, agent, limit)

    def counts(self, agent: str) -> dict[str, dict[str, int]]:
        """For each open view: how many conversations, and how many have unread messages."""
        return self.board("open", agent)[1]

    def board(
        self,
        view: View,
        agent: str,
        limit: int = QUEUE_LIMIT,
        summaries: list[dict[str, Any]] | None = None,
        opened: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]], bool]:
        """`queue(view, agent)` and `counts(agent)` together, the open tickets read once,
        and whether the ticket `opened` (shown as read) had unread messages.

        `summaries` are the open tickets as `open_summaries` read them (the live process
        reads them once per inbox version for every console); only the agent's own read
        marks are read here."""
        if summaries is None:
            summaries = self.open_summaries()
        rows = self._unread(summaries, agent)
        was_unread = any(r["unread"] for r in rows if r["id"] == opened)
        if opened is not None:
            rows = [{**r, "unread": 0} if r["id"] == opened else r for r in rows]
        counts = _counts(rows, agent)
        if view == "closed":
            return self.queue(view, agent, limit), counts, was_unread
        return _queue(rows, view, agent, limit), counts, was_unread

    def open_summaries(self) -> list[dict[str, Any]]:
        """Every open ticket's summary with its end user's profile, without read marks."""
        tids = cast(list[str], self.redis.zrange(self.k("open"), 0, -1))
        return [r for r in self._summaries(tids) if r["status"] == "open"]

    def _summaries(self, tids: list[str]) -> list[dict[str, Any]]:
        if not tids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for tid in tids:
            pipe.hgetall(self.k("ticket", tid))
        tickets = pipe.execute()
        requesters = [cast(dict[str, str], t).get("requester", "") for t in tickets]
        profiles = self._profiles(requesters)
        rows = []
        for tid, h in zip(tids, tickets, strict=True):
            if h:
                row = _summary(tid, cast(dict[str, str], h))
                row["user"] = profiles.get(row["requester"], {})
                rows.append(row)
        return rows

    def _unread(self, summaries: list[dict[str, Any]], agent: str) -> list[dict[str, Any]]:
        if not summaries:
            return []
        seen = self.redis.hmget(self.k("seen", agent), [r["id"] for r in summaries])
        return [
            {**r, "unread": max(0, r["incoming"] - int(s or 0))}
            for r, s in zip(summaries, seen, strict=True)
        ]

    def _rows(self, tids: list[str], agent: str) -> list[dict[str, Any]]:
        return self._unread(self._summaries(tids), agent)

    def _profiles(self, user_ids: list[str]) -> dict[str, dict[str, str]]:
        ids = sorted({u for u in user_ids if u})
        if not ids:
            return {}
        raw = cast(list[str | None], self.redis.hmget(self.k("users"), ids))
        return {u: _profile(r) for u, r in zip(ids, raw, strict=True) if r}

    def ticket(self, tid: str, *, since: int | None = None) -> dict[str, Any] | None:
        """A ticket with its summary, its end user's profile and its whole timeline.

        With `since` (an inbox version), a ticket that has not changed since comes without
        its profile and timeline: `messages` is None (live updates need not redraw it)."""
        if not TICKET_ID.fullmatch(tid):
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.k("ticket", tid))
        if since is None:
            pipe.lrange(self.k("log", tid), 0, -1)
        h, *log = pipe.execute()
        if not h:
            return None
        t = _summary(tid, cast(dict[str, str], h))
        if since is not None:
            changed = int(_num(cast(dict[str, str], h).get("v")))
            if changed and changed <= since:
                t["messages"] = None
                return t
            log = [self.redis.lrange(self.k("log", tid), 0, -1)]
        t["user"] = self._profiles([t["requester"]]).get(t["requester"], {})
        t["messages"] = [json.loads(e) for e in cast(list[str], log[0])]
        return t

    def tickets(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Tickets, newest first, each with its timeline (the bearer API and the CLI)."""
        tids = cast(list[str], self.redis.zrevrange(self.k("tickets"), 0, limit - 1))
        found = [t for t in (self.ticket(tid) for tid in tids) if t is not None]
        return [t for t in found if status is None or t["status"] == status]

    def mark_seen(self, tid: str, agent: str, incoming: int | None = None) -> None:
        """The agent has read the ticket up to now (`incoming`: its count, when just read)."""
        if incoming is None:
            incoming = int(_num(self.redis.hget(self.k("ticket", tid), "incoming")))
        self.redis.hset(self.k("seen", agent), tid, str(incoming))

    # -- acting -------------------------------------------------------------------------
    def act(
        self,
        tid: str,
        kind: str,
        agent: str,
        *,
        text: str = "",
        assignee: str = "",
        message_type: str = "text",
        payload: dict[str, Any] | None = None,
    ) -> Action:
        """Record what `agent` did on an open ticket: a message (text, or an image or file
        `payload`), an internal note, an assignment (to `assignee`, the agent by default)
        or the close."""
        if not TICKET_ID.fullmatch(tid):
            raise UnknownTicket(f"no conversation {tid[:100]}")
        if kind not in ACTIONS:
            raise Invalid(f"kind: one of {', '.join(ACTIONS)}")
        fields: dict[str, Any] = {}
        if kind == "message":
            if payload is None:
                payload = {"text": check_text(text)}
            fields = {"text": text or _describe(message_type, payload), "type": message_type}
            fields["payload"] = payload
        elif kind == "note":
            fields = {"text": check_text(text)}
        elif kind == "assign":
            assignee = assignee or agent
            said = f"{agent} took it" if assignee == agent else f"{agent} gave it to {assignee}"
            fields = {"assignee": assignee, "text": said}
        else:
            fields = {"text": f"{agent} closed it"}
        e = entry(kind, "agent", agent, **fields)
        done = self.timeline.record(
            tid,
            [e],
            assignee=assignee if kind == "assign" else "",
            close=kind == "close",
            open_only=True,
        )
        if done == 0:
            raise UnknownTicket(f"no conversation {tid}")
        if done < 0:
            raise TicketIsClosed(f"conversation {tid} is closed")
        if kind == "message":
            self.mark_seen(tid, agent)  # answering reads what came before
        return Action(e)

    # -- saved replies, shared by the team ----------------------------------------------
    def saved_replies(self) -> dict[str, str]:
        return dict(sorted(cast(dict[str, str], self.redis.hgetall(self.k("replies"))).items()))

    def save_reply(self, title: str, text: str) -> None:
        title = title.strip()
        if not title or len(title) > MAX_REPLY_TITLE:
            raise Invalid(f"title: a name of 1 to {MAX_REPLY_TITLE} characters is required")
        check_text(text)
        known = self.redis.hexists(self.k("replies"), title)
        if not known and self.redis.hlen(self.k("replies")) >= MAX_SAVED_REPLIES:
            raise Invalid(f"title: the team keeps at most {MAX_SAVED_REPLIES} saved replies")
        self.redis.hset(self.k("replies"), title, text)
        self.redis.incr(self.k("version"))

    def delete_reply(self, title: str) -> bool:
        gone = bool(self.redis.hdel(self.k("replies"), title))
        if gone:
            self.redis.incr(self.k("version"))
        return gone


def _queue(rows: list[dict[str, Any]], view: View, agent: str, limit: int) -> list[dict[str, Any]]:
    if view == "unassigned":
        rows = [r for r in rows if not r["assignee"]]
    elif view == "mine":
        rows = [r for r in rows if r["assignee"] == agent]
    if view != "closed":
        rows = sorted(rows, key=lambda r: (r["waiting_since"] or float("inf"), -r["last_at"]))
    return rows[:limit]


def _counts(open_rows: list[dict[str, Any]], agent: str) -> dict[str, dict[str, int]]:
    views: dict[str, list[dict[str, Any]]] = {
        "unassigned": [r for r in open_rows if not r["assignee"]],
        "mine": [r for r in open_rows if r["assignee"] == agent],
        "open": open_rows,
    }
    return {
        v: {"total": len(rs), "unread": sum(1 for r in rs if r["unread"])}
        for v, rs in views.items()
    }


def _num(raw: str | None) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


def _summary(tid: str, h: dict[str, str]) -> dict[str, Any]:
    return {
        "id": tid,
        "conversation": h.get("conversation", tid),
        "subject": h.get("subject", ""),
        "description": h.get("description", ""),
        "status": h.get("status", "open"),
        "requester": h.get("requester", ""),
        "assignee": h.get("assignee", ""),
        "created_at": _num(h.get("created_at")),
        "closed_at": _num(h.get("closed_at")),
        "last_text": h.get("last_text", ""),
        "last_by": h.get("last_by", ""),
        "last_author": h.get("last_author", ""),
        "last_at": _num(h.get("last_at")) or _num(h.get("created_at")),
        "waiting_since": _num(h.get("waiting_since")),
        "incoming": int(_num(h.get("incoming"))),
    }


def _profile(raw: str) -> dict[str, str]:
    try:
        p = json.loads(raw)
    except ValueError:
        return {}
    return {k: v for k, v in p.items() if isinstance(v, str)} if isinstance(p, dict) else {}


def _describe(message_type: str, payload: dict[str, Any]) -> str:
    name = payload.get("title") or payload.get(f"{message_type}Url", "")
    return f"[{message_type}] {name}"


def waited(since: float, now: float | None = None) -> str:
    """How long someone has been waiting, the way a queue says it: '45 s', '12 min', '3 h'."""
    if not since:
        return ""
    s = max(0, int((now or time.time()) - since))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
