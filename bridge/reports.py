"""What operators see of a conversation or a dead letter: one shape for the CLI and the API."""

from __future__ import annotations

import json
import time
from typing import Any

from bridge import events as ev
from bridge.runtime import Runtime
from bridge.storage import DeadLetter

#: Waiting events listed per stream (the rest are counted).
WAITING_SHOWN = 100
#: Dead letters looked through for a conversation's own (the store keeps no per-conversation
#: index of them; operators purge or replay them long before this matters).
DEAD_LETTERS_SCANNED = 100_000


def dead_letter_summary(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "at": d.at,
        "stream": d.stream,
        "kind": d.event.kind,
        "event_id": d.event.id,
        "attempts": d.attempts,
        "reason": d.reason,
    }


def dead_letter_detail(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "stream": d.stream,
        "reason": d.reason,
        "response": d.response,
        "attempts": d.attempts,
        "at": d.at,
        "event": json.loads(d.event.to_json()),
    }


def _waiting(rt: Runtime, stream: str, now: float) -> dict[str, Any]:
    store = rt.store
    events = store.peek(stream, WAITING_SHOWN)
    head = store.head_state(stream)
    listed = []
    for i, e in enumerate(events):
        status = "waiting"
        item: dict[str, Any] = {"event_id": e.id, "kind": e.kind, "age": round(now - e.at, 3)}
        if i == 0 and head.get("id") == e.id:
            due = float(head.get("due") or 0)
            if head.get("sending"):
                status = "sending"
            elif due > now:
                status = "retrying"
                item["retry_in"] = round(due - now, 3)
            item["attempts"] = int(head.get("attempts") or 0)
            if head.get("error"):
                item["error"] = head["error"]
                item["response"] = head.get("response", "")
        item["status"] = status
        listed.append(item)
    return {"stream": stream, "length": store.length(stream), "events": listed}


def conversation_report(rt: Runtime, cid: str) -> dict[str, Any] | None:
    """Mapping, delivery history, waiting events and dead letters of one conversation."""
    store = rt.store
    conv = store.conversation(cid)
    if conv is None:
        return None
    now = time.time()
    requester = store.user(conv.requester) if conv.requester else None
    streams = [ev.stream(k, cid) for k in (ev.TO_HELPDESK, ev.INBOUND, ev.TO_BOTPRESS)]
    if conv.requester:
        streams.append(ev.stream(ev.USER, conv.requester))
    if conv.botpress_conversation_id:
        streams.append(ev.stream(ev.RESOLVE, conv.botpress_conversation_id))
    return {
        "mapping": {
            "conversation_id": conv.id,
            "helpdesk": rt.settings.helpdesk,
            "ticket_id": conv.ticket_id or None,
            "requester": conv.requester or None,
            "requester_helpdesk_id": (requester.helpdesk_id or None) if requester else None,
            "botpress_conversation_id": conv.botpress_conversation_id or None,
        },
        "conversation": {
            "status": conv.status,
            "created_at": conv.created_at,
            "title": conv.title,
            "cursor": conv.cursor,
        },
        "history": store.history(cid),
        "waiting": [w for w in (_waiting(rt, s, now) for s in streams) if w["length"]],
        "dead_letters": [
            dead_letter_summary(d)
            for d in store.dead_letters(limit=DEAD_LETTERS_SCANNED)
            if d.stream in streams
        ],
    }
