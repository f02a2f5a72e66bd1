"""The drain loop against fakeredis, a scripted helpdesk and a scripted Botpress."""

from __future__ import annotations

import time

import pytest

from bridge import events as ev
from bridge.errors import PermanentError, TransientError
from bridge.helpdesks.base import AgentMessage, Changes
from bridge.storage import User
from tests.support.scripted import helpdesk, open_conversation, say
from tests.unit.conftest import Published
from workers.context import Context
from workers.drain import MAX_CRASHES, MAX_FAULTS, drain, pump
from workers.retry import RetryPolicy


def test_events_reach_the_helpdesk_in_order_batched_by_author(ctx: Context) -> None:
    stream = open_conversation(ctx)
    for i in range(4):
        say(ctx, "c_1", "BOT", f"b{i}")
    ctx.store.append(ev.Event(ev.CONVERSATION_CLOSE, stream, {}))
    assert drain(ctx, stream) == 6
    assert helpdesk(ctx).calls == [
        ("ticket", ("c_1", "Help", False)),
        ("messages", ["b0", "b1", "b2"]),  # max_batch = 3
        ("messages", ["b3"]),
        ("close", "c_1"),
    ]
    assert ctx.store.length(stream) == 0 and ctx.store.pending_streams() == []
    conv = ctx.store.conversation("c_1")
    assert conv and conv.ticket_id == "T-c_1" and conv.status == "closed"
    assert ctx.store.open_conversations() == []


def test_a_transient_failure_defers_only_its_own_conversation(
    ctx: Context, published: Published
) -> None:
    a, b = open_conversation(ctx, "c_a"), open_conversation(ctx, "c_b")
    helpdesk(ctx).failures = [TransientError("HTTP 503", retry_after=5)]
    assert drain(ctx, a) == 0
    assert drain(ctx, b) == 1  # the other conversation is not held back
    head = ctx.store.head_state(a)
    assert head["error"] == "HTTP 503" and float(head["due"]) > time.time() + 4
    assert published[-1][0] == a and 5 <= published[-1][1] <= 10  # Retry-After is a floor
    assert drain(ctx, a) == 0  # not due yet: nothing happens
    ctx.store.redis.hset(ctx.store.key("head", a), "due", "0")
    assert drain(ctx, a) == 1


def test_a_permanent_failure_is_dead_lettered_and_the_stream_goes_on(ctx: Context) -> None:
    stream = open_conversation(ctx)
    say(ctx, "c_1", "BOT", "after")
    helpdesk(ctx).failures = [PermanentError("HTTP 422", response='{"error":"RecordInvalid"}')]
    drain(ctx, stream)
    dl = ctx.store.dead_letters()[0]
    assert dl.reason == "HTTP 422" and dl.response == '{"error":"RecordInvalid"}'
    assert dl.event.kind == ev.CONVERSATION_CREATE
    # Without a ticket the message cannot go anywhere: it is set aside too, visibly.
    assert ctx.store.count_dead_letters() == 2
    assert "no helpdesk ticket" in ctx.store.dead_letters()[1].reason


def test_an_exhausted_retry_window_dead_letters_with_the_last_reason(ctx: Context) -> None:
    stream = open_conversation(ctx)
    ctx.retry = RetryPolicy(base=1, cap=1, window=60)
    helpdesk(ctx).failures = [TransientError("timed out")] * 2
    drain(ctx, stream)
    ctx.store.redis.hset(ctx.store.key("head", stream), mapping={"due": "0", "first_failed": "1"})
    drain(ctx, stream)
    [dl] = ctx.store.dead_letters()
    assert "gave up after 2 attempts" in dl.reason and "timed out" in dl.reason


def test_unexpected_exceptions_are_retried_not_lost(ctx: Context) -> None:
    stream = open_conversation(ctx)
    helpdesk(ctx).failures = [KeyError("boom")]
    assert drain(ctx, stream) == 0
    assert "unexpected error: KeyError" in ctx.store.head_state(stream)["error"]
    assert ctx.store.length(stream) == 1


def _due_now(ctx: Context, stream: str) -> None:
    ctx.store.redis.hset(ctx.store.key("head", stream), "due", "0")


def test_only_unexpected_failures_count_towards_setting_a_head_aside(ctx: Context) -> None:
    stream = open_conversation(ctx)
    # An outage before the bug: known transient failures never count towards the limit.
    helpdesk(ctx).failures = [TransientError("HTTP 503")] * 7 + [TypeError("bad title")] * 9
    for _ in range(7 + MAX_FAULTS - 1):
        assert drain(ctx, stream) == 0
        _due_now(ctx, stream)
    assert ctx.store.count_dead_letters() == 0
    assert ctx.store.head_state(stream)["faults"] == str(MAX_FAULTS - 1)
    drain(ctx, stream)
    [dl] = ctx.store.dead_letters()
    assert dl.event.kind == ev.CONVERSATION_CREATE
    assert "unexpected error: TypeError: bad title" in dl.reason
    assert f"{MAX_FAULTS} tries" in dl.reason and dl.attempts == 7 + MAX_FAULTS


def test_a_bad_message_is_set_aside_after_five_unexpected_failures(ctx: Context) -> None:
    stream = open_conversation(ctx)
    drain(ctx, stream)  # the ticket exists
    say(ctx, "c_1", "BOT", "poison")
    helpdesk(ctx).failures = [TypeError("unsupported operand")] * MAX_FAULTS
    for _ in range(MAX_FAULTS - 1):
        drain(ctx, stream)
        _due_now(ctx, stream)
    say(ctx, "c_1", "BOT", "later")
    drain(ctx, stream)
    [dl] = ctx.store.dead_letters()
    assert "TypeError: unsupported operand" in dl.reason
    # Only the failing batch was set aside; what came after it was delivered.
    assert helpdesk(ctx).calls[-1] == ("messages", ["later"])
    assert ctx.store.length(stream) == 0


def test_a_head_cut_short_repeatedly_is_set_aside(ctx: Context) -> None:
    stream = open_conversation(ctx)
    ctx.store.redis.hset(
        ctx.store.key("head", stream),
        mapping={
            "id": ctx.store.peek(stream, 1)[0].id,
            "sending": "1",
            "crashes": str(MAX_CRASHES - 1),
        },
    )
    drain(ctx, stream)
    [dl] = ctx.store.dead_letters()
    assert "cut short" in dl.reason


def test_a_busy_stream_is_left_to_its_lease_holder(ctx: Context) -> None:
    stream = open_conversation(ctx)
    assert ctx.store.acquire_lease(stream, 10)
    assert drain(ctx, stream) == 0
    assert ctx.store.length(stream) == 1


def test_doorbell_turns_agent_changes_into_botpress_events_once(ctx: Context) -> None:
    stream = open_conversation(ctx)
    drain(ctx, stream)
    helpdesk(ctx).changes = [Changes([AgentMessage("alice", "text", {"text": "hi"})], "1")]
    ctx.ring("c_1")
    ctx.ring("c_1")
    drain(ctx, "in:c_1")
    drain(ctx, "bp:c_1")
    botpress = ctx.botpress
    assert [e.data["payload"] for e in botpress.delivered] == [{"text": "hi"}]  # type: ignore[attr-defined]
    conv = ctx.store.conversation("c_1")
    assert conv and conv.cursor == "1"


def test_each_waiting_ring_gets_its_own_read(ctx: Context) -> None:
    """A third ring is refused while two wait: the second read must come after the first,
    so a change made during the first read is still seen."""
    drain(ctx, open_conversation(ctx))
    for _ in range(3):
        ctx.ring("c_1")
    assert ctx.store.length("in:c_1") == 2
    drain(ctx, "in:c_1")
    assert [c for c in helpdesk(ctx).calls if c[0] == "read"] == [("read", ""), ("read", "")]


def agent_replies(ctx: Context, n: int) -> None:
    """`n` agent messages to Botpress on conversation c_1, texts "0", "1", ..."""
    for i in range(n):
        data = {"agent_id": "a", "message_type": "text", "payload": {"text": str(i)}}
        ctx.store.append(ev.Event(ev.AGENT_MESSAGE, "bp:c_1", data))


def test_botpress_failures_retry_and_each_event_is_delivered_once(ctx: Context) -> None:
    agent_replies(ctx, 3)
    ctx.botpress.failures = [TransientError("HTTP 502"), TransientError("HTTP 502")]  # type: ignore[attr-defined]
    for _ in range(3):
        drain(ctx, "bp:c_1")
        ctx.store.redis.hset(ctx.store.key("head", "bp:c_1"), "due", "0")
    delivered = ctx.botpress.delivered  # type: ignore[attr-defined]
    assert [e.data["payload"]["text"] for e in delivered] == ["0", "1", "2"]


def test_user_upsert_records_the_helpdesk_id(ctx: Context) -> None:
    user = User(id="u_1", name="Ada")
    ctx.store.create_user(user, ev.Event(ev.USER_UPSERT, "hu:u_1", {"user": "u_1"}))
    drain(ctx, "hu:u_1")
    stored = ctx.store.user("u_1")
    assert stored and stored.helpdesk_id == "hd-u_1"


def test_close_without_a_botpress_token_is_a_visible_dead_letter(ctx: Context) -> None:
    ctx.store.append(
        ev.Event(ev.CLOSE_RESOLVE, "rs:bp-conv-9", {"botpress_conversation_id": "bp-conv-9"})
    )
    drain(ctx, "rs:bp-conv-9")
    [dl] = ctx.store.dead_letters()
    assert dl.reason == "no token" and dl.stream == "rs:bp-conv-9"


def test_a_pump_drains_every_woken_stream_then_leaves(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.drain

    monkeypatch.setattr(workers.drain, "PUMP_IDLE_SECONDS", 0.1)
    streams = [open_conversation(ctx, f"c_{i}") for i in range(3)]
    for i in range(3):
        say(ctx, f"c_{i}", "BOT", f"hello {i}")
    [pump_id, *_] = ctx.store.redis.zrange(ctx.store.key("pumps"), 0, -1)  # reserved by a wake
    assert pump(ctx, pump_id) == 6  # three tickets, three messages
    assert all(ctx.store.length(s) == 0 for s in streams)
    assert ctx.store.ready_streams() == []
    assert ctx.store.redis.zscore(ctx.store.key("pumps"), pump_id) is None  # retired


def test_told_to_stop_the_event_in_hand_is_finished_and_the_next_never_begun(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ack of a conversation's event takes the next step in the same round trip only
    while the drain goes on: begun and left, the next event would count as a send cut
    short and go out flagged as perhaps applied."""
    from workers import drain as drain_module

    agent_replies(ctx, 3)
    bp = ctx.botpress
    send = bp.deliver

    def deliver_then_sigterm(event: ev.Event) -> None:
        send(event)
        drain_module.STOPPING.set()  # SIGTERM while the first event is in flight

    monkeypatch.setattr(bp, "deliver", deliver_then_sigterm)
    try:
        assert drain(ctx, "bp:c_1") == 1
    finally:
        drain_module.STOPPING.clear()
    assert not ctx.store.redis.exists(ctx.store.key("head", "bp:c_1"))  # nothing begun
    monkeypatch.setattr(bp, "deliver", send)
    assert drain(ctx, "bp:c_1") == 2
    delivered = bp.delivered  # type: ignore[attr-defined]
    assert [e.data["payload"]["text"] for e in delivered] == ["0", "1", "2"]
