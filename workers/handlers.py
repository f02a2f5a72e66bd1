"""What delivering the events of each kind of stream means (bridge/events.py names them).

A handler receives the first events of a stream (the head first) and returns an Outcome:
how many of them it delivered, and what that produced. It raises TransientError or
PermanentError about the head event when it could not deliver it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bridge import events as ev
from bridge.errors import PermanentError
from bridge.events import Event
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    HistoryMessage,
    OutboundMessage,
    TicketClosed,
    TicketRequest,
)
from bridge.storage import Conversation, Head, User
from workers.context import Context


@dataclass
class Outcome:
    consumed: int = 1
    outputs: list[Event] = field(default_factory=list)
    record: str = ""  # full key of the hash `updates` go to
    updates: dict[str, str] = field(default_factory=dict)
    index: tuple[str, str] | None = None  # (key, value) to SET
    closed: str = ""  # conversation id that this outcome closed


Handler = Callable[[Context, Sequence[Event], Head], Outcome]


def _conversation(ctx: Context, cid: str) -> Conversation:
    conv = ctx.store.conversation(cid)
    if conv is None:
        raise PermanentError(f"conversation {cid} does not exist")
    return conv


def _ticketed(ctx: Context, cid: str, conv: Conversation | None = None) -> Conversation:
    if conv is None:
        conv = _conversation(ctx, cid)
    if not conv.ticket_id:
        # Its creation is either still ahead in this stream (impossible: order) or dead-lettered.
        raise PermanentError(
            f"conversation {cid} has no helpdesk ticket: its creation failed (see dead letters)"
        )
    return conv


def user_upsert(ctx: Context, events: Sequence[Event], head: Head) -> Outcome:
    user = ctx.store.user(events[0].data["user"])
    if user is None:
        raise PermanentError(f"user {events[0].data['user']} does not exist")
    helpdesk_id = ctx.helpdesk.upsert_user(user, maybe_applied=head.maybe_applied)
    return Outcome(record=ctx.store.user_key(user.id), updates={"helpdesk_id": helpdesk_id})


def to_helpdesk(ctx: Context, events: Sequence[Event], head: Head) -> Outcome:
    first = events[0]
    _, cid = ev.split_stream(first.stream)
    if first.kind == ev.CONVERSATION_CREATE:
        conv = _conversation(ctx, cid)
        d = first.data
        requester = ctx.store.user(d["user_id"]) if d.get("user_id") else None
        request = TicketRequest(
            title=d.get("title") or "",
            description=d.get("description") or "",
            history=[
                HistoryMessage(
                    text=h.get("text", ""),
                    author=h.get("author") or "",
                    timestamp=str(h.get("timestamp") or ""),
                )
                for h in d.get("history") or []
            ],
            requester=requester,
        )
        ticket_id = ctx.helpdesk.create_ticket(
            conv, request, idempotency_key=first.id, maybe_applied=head.maybe_applied
        )
        updates = {"ticket_id": ticket_id}
        if requester:
            updates["requester"] = requester.id
        return Outcome(
            record=ctx.store.conv_key(cid),
            updates=updates,
            index=(ctx.store.key("ticket", ticket_id), cid),
        )
    if first.kind == ev.MESSAGE:
        author_id = first.data["author"]
        # Both records came with the head (the drain's take), or in one round trip here:
        # this is the hot path of every message.
        if head.conversation is not None and head.author is not None:
            found, user = ctx.store.records_of(cid, author_id, head.conversation, head.author)
        else:
            found, user = ctx.store.conversation_and_user(cid, author_id)
        if found is None:
            raise PermanentError(f"conversation {cid} does not exist")
        conv = _ticketed(ctx, cid, found)
        batch = [first]
        for nxt in events[1 : ctx.helpdesk.max_batch]:
            if nxt.kind != ev.MESSAGE or nxt.data["author"] != author_id:
                break
            batch.append(nxt)
        author = _author(author_id, user)
        ctx.helpdesk.append_messages(
            conv,
            author,
            [OutboundMessage(e.id, e.data["type"], e.data["payload"], e.at) for e in batch],
            maybe_applied=head.maybe_applied,
        )
        outcome = Outcome(consumed=len(batch))
        if author.kind == "end_user" and not conv.requester:
            outcome.record, outcome.updates = ctx.store.conv_key(cid), {"requester": author_id}
        return outcome
    if first.kind == ev.CONVERSATION_CLOSE:
        conv = _ticketed(ctx, cid)
        ctx.helpdesk.close_ticket(conv, event_id=first.id, maybe_applied=head.maybe_applied)
        return Outcome(record=ctx.store.conv_key(cid), updates={"status": "closed"}, closed=cid)
    raise PermanentError(f"unknown event kind {first.kind!r} on {first.stream}")


def _author(remote_user_id: str, user: User | None) -> Author:
    if remote_user_id == "BOT":
        return Author("bot")
    if user is None:
        raise PermanentError(f"user {remote_user_id} does not exist")
    return Author("end_user", user)


def resolve_close(ctx: Context, events: Sequence[Event], head: Head) -> Outcome:
    bp_cid = events[0].data["botpress_conversation_id"]
    cid = ctx.store.conversation_for_botpress(bp_cid)
    if cid is None:
        candidates = ctx.botpress.external_ids(bp_cid)
        cid = next((c for c in candidates if ctx.store.conversation(c) is not None), None)
        if cid is None:
            raise PermanentError(
                f"Botpress conversation {bp_cid} points at {', '.join(candidates)}, none of "
                "which is a conversation this bridge knows"
            )
    close = Event(
        ev.CONVERSATION_CLOSE, ev.stream(ev.TO_HELPDESK, cid), {"botpress_conversation_id": bp_cid}
    )
    return Outcome(
        outputs=[close],
        record=ctx.store.conv_key(cid),
        updates={"botpress_conversation_id": bp_cid},
        index=(ctx.store.key("bpconv", bp_cid), cid),
    )


def read_changes(ctx: Context, events: Sequence[Event], head: Head) -> Outcome:
    """A doorbell ring: read the ticket, queue what agents did since the cursor."""
    _, cid = ev.split_stream(events[0].stream)
    conv = _conversation(ctx, cid)
    if not conv.ticket_id:
        return Outcome()  # no ticket yet: nothing an agent could have done
    changes = ctx.helpdesk.changes_since(conv, conv.cursor)
    to_bp = ev.stream(ev.TO_BOTPRESS, cid)
    outputs: list[Event] = []
    closed = ""
    for item in changes.items:
        if isinstance(item, AgentMessage):
            outputs.append(
                Event(
                    ev.AGENT_MESSAGE,
                    to_bp,
                    {
                        "agent_id": item.agent_id,
                        "message_type": item.message_type,
                        "payload": dict(item.payload),
                    },
                )
            )
        elif isinstance(item, AgentAssigned):
            outputs.append(Event(ev.AGENT_ASSIGNED, to_bp, {"agent_id": item.agent_id}))
        elif isinstance(item, TicketClosed):
            outputs.append(Event(ev.HITL_STOP, to_bp, {}))
            closed = cid
    updates = {"cursor": changes.cursor}
    if closed:
        updates["status"] = "closed"
    # One read answers one ring. A ring refused while two waited is answered by the second
    # one's read, which starts after this one ends, so after that ring's change was made.
    return Outcome(
        consumed=1,
        outputs=outputs,
        record=ctx.store.conv_key(cid),
        updates=updates,
        closed=closed,
    )


def to_botpress(ctx: Context, events: Sequence[Event], head: Head) -> Outcome:
    ctx.botpress.deliver(events[0])
    return Outcome()


HANDLERS: dict[str, Handler] = {
    ev.USER: user_upsert,
    ev.TO_HELPDESK: to_helpdesk,
    ev.RESOLVE: resolve_close,
    ev.INBOUND: read_changes,
    ev.TO_BOTPRESS: to_botpress,
}

# How many events of a stream a handler is shown at once (one where not named).
PEEK = {ev.TO_HELPDESK: 50}
