from __future__ import annotations

import time

import pytest

from bridge import events as ev
from bridge.storage import NotFound, Store


def msg(cid: str = "c_1", n: int = 0) -> ev.Event:
    return ev.Event(ev.MESSAGE, ev.stream(ev.TO_HELPDESK, cid), {"n": n})


def test_append_wakes_a_stream_once_until_a_drain_takes_it(store: Store) -> None:
    pump = store.append(msg(n=1))
    assert pump  # the first wake-up reserves a pump to start
    assert store.append(msg(n=2)) == ""  # already waiting in P:ready
    assert store.ready_streams() == ["hd:c_1"]
    store.redis.delete(store.key("kick", "hd:c_1"))  # a drain took it
    second = store.append(msg(n=3))
    assert second and second != pump  # two pumps are allowed (Store.pumps = 2)
    assert store.ready_streams() == ["hd:c_1", "hd:c_1"]
    assert [e.data["n"] for e in store.peek("hd:c_1", 10)] == [1, 2, 3]
    assert store.pending_streams() == ["hd:c_1"]


def test_pumps_are_capped_and_a_retiring_pump_stays_for_late_work(store: Store) -> None:
    store.pumps = 2
    reserved = [store.append(msg(cid=f"c_{i}")) for i in range(4)]
    first, second = reserved[:2]
    assert first and second and reserved[2:] == ["", ""]  # four streams woken, two pumps
    assert store.next_ready(timeout=0.1) == "hd:c_0"
    assert store.retire_pump(first) is False  # three streams still wait: it stays
    assert [store.next_ready(timeout=0.1) for _ in range(3)] == ["hd:c_1", "hd:c_2", "hd:c_3"]
    assert store.retire_pump(first) is True
    assert store.next_ready(timeout=0.05) is None
    assert store.ensure_pump() == ""  # nothing waits
    assert store.append(msg(cid="c_9"))  # one pump left alive, room for another


def test_the_limit_a_worker_announced_wins_over_the_callers_own(store: Store) -> None:
    store.pumps = 1  # a web process that never saw the workers' concurrency
    store.announce_pumps(3)
    assert all(store.append(msg(cid=f"c_{i}")) for i in range(3))
    assert store.append(msg(cid="c_3")) == ""
    assert store.ensure_pump() == ""
    store.announce_pumps(4)  # a worker with more room started
    assert store.ensure_pump()


def test_dead_pumps_stop_counting_after_their_ttl(store: Store) -> None:
    store.pumps = 1
    assert store.append(msg(cid="c_a"))
    assert store.append(msg(cid="c_b")) == ""  # one pump is all we may have
    store.redis.zadd(
        store.key("pumps"), {m: 0 for m in store.redis.zrange(store.key("pumps"), 0, -1)}
    )
    assert store.ensure_pump()  # the old reservation is long dead: a new pump is due


def test_append_checks_required_keys_atomically(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.append(msg(), require=[("remoteConversationId", store.conv_key("c_1"))])
    assert info.value.what == "remoteConversationId"
    assert store.length("hd:c_1") == 0 and store.pending_streams() == []


def test_lease_is_exclusive_and_only_its_owner_releases_it(store: Store) -> None:
    token = store.acquire_lease("hd:c_1", 10)
    assert token and store.acquire_lease("hd:c_1", 10) is None
    store.release_lease("hd:c_1", "not-the-token")
    assert store.is_leased("hd:c_1")
    store.release_lease("hd:c_1", token)
    assert not store.is_leased("hd:c_1")


def test_begin_ack_consumes_in_order_and_appends_outputs(store: Store) -> None:
    events = [msg(n=i) for i in range(3)]
    for e in events:
        store.append(e)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    head = store.begin("hd:c_1", token, events[0].id, 10, time.time())
    assert (head.status, head.attempts) == (1, 1)
    out = ev.Event(ev.AGENT_MESSAGE, "bp:c_1", {})
    kicks = store.ack(
        "hd:c_1",
        token,
        events[0].id,
        2,
        outputs=[out],
        record=store.conv_key("c_1"),
        updates={"ticket_id": "t1"},
        index=(store.key("ticket", "t1"), "c_1"),
    )
    assert kicks is not None and kicks[0] and kicks[1] == 1  # bp:c_1 woke a pump; one left
    assert store.ready_streams()[-1] == "bp:c_1"
    assert [e.id for e in store.peek("hd:c_1", 10)] == [events[2].id]
    assert store.redis.hget(store.conv_key("c_1"), "ticket_id") == "t1"
    assert store.conversation_for_ticket("t1") == "c_1"
    assert [e.id for e in store.peek("bp:c_1", 10)] == [out.id]


def test_ack_refuses_without_the_lease_or_when_the_head_moved(store: Store) -> None:
    e = msg()
    store.append(e)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    assert store.ack("hd:c_1", "stolen", e.id, 1) is None
    assert store.ack("hd:c_1", token, "e_other", 1) is None
    assert store.length("hd:c_1") == 1


def test_a_send_that_never_finished_is_reported_on_the_next_begin(store: Store) -> None:
    e = msg()
    store.append(e)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    store.begin("hd:c_1", token, e.id, 10, time.time())
    # The worker dies here; the next one gets the lease after it expired.
    store.release_lease("hd:c_1", token)
    token2 = store.acquire_lease("hd:c_1", 10)
    assert token2
    head = store.begin("hd:c_1", token2, e.id, 10, time.time())
    assert head.maybe_applied and head.crashes == 1 and head.attempts == 2


def test_defer_holds_the_head_until_due_and_schedules_a_wake(store: Store) -> None:
    e = msg()
    store.append(e)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    now = time.time()
    store.begin("hd:c_1", token, e.id, 10, now)
    assert store.defer("hd:c_1", token, e.id, now + 60, "HTTP 503", "busy", now)
    assert store.begin("hd:c_1", token, e.id, 10, now + 1).status == 0
    assert store.deferred_until("hd:c_1") == pytest.approx(now + 60)
    assert store.due_streams(now + 61) == ["hd:c_1"]
    assert store.due_streams(now + 61) == []  # taken once
    head = store.begin("hd:c_1", token, e.id, 10, now + 61)
    assert head.status == 1 and head.attempts == 2 and head.first_failed == pytest.approx(now)


def test_dead_letter_and_replay_back_to_the_head(store: Store) -> None:
    a, b = msg(n=1), msg(n=2)
    store.append(a)
    store.append(b)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    store.begin("hd:c_1", token, a.id, 10, time.time())
    dlq_id = store.dead_letter("hd:c_1", token, a.id, "HTTP 422", '{"error":"x"}', time.time())
    assert dlq_id
    store.release_lease("hd:c_1", token)
    dl = store.get_dead_letter(dlq_id)
    assert dl and dl.reason == "HTTP 422" and dl.attempts == 1 and dl.event.id == a.id
    assert [e.id for e in store.peek("hd:c_1", 5)] == [b.id]
    assert store.replay(dlq_id, lease_seconds=10) == "hd:c_1"
    assert [e.id for e in store.peek("hd:c_1", 5)] == [a.id, b.id]
    assert store.count_dead_letters() == 0
    assert store.replay(dlq_id, lease_seconds=10) is None


def test_ring_keeps_at_most_two_waiting(store: Store) -> None:
    for _ in range(5):
        store.ring(ev.Event(ev.RING, "in:c_1"))
    assert store.length("in:c_1") == 2


def test_a_try_that_timed_out_after_sending_is_retried_as_maybe_applied(store: Store) -> None:
    e = msg()
    store.append(e)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    now = time.time()
    store.begin("hd:c_1", token, e.id, 10, now)
    store.defer("hd:c_1", token, e.id, now, "timed out", "", now, unsure=True)
    head = store.begin("hd:c_1", token, e.id, 10, now + 1)
    assert head.maybe_applied and head.crashes == 0  # a doubt, not a crash


def test_the_ack_that_empties_a_stream_lets_go_in_the_same_step(store: Store) -> None:
    """Issue 16: no round trip to let go after the last event; the next event wakes it."""
    e = msg()
    store.append(e)
    assert store.ready_streams() == ["hd:c_1"]
    store.redis.delete(store.key("ready"))  # a pump popped it
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    store.begin("hd:c_1", token, e.id, 10, time.time())
    acked = store.ack("hd:c_1", token, e.id, 1)
    assert acked is not None and acked[1] == 0
    assert not store.is_leased("hd:c_1") and store.pending_streams() == []
    assert not store.redis.exists(store.key("head", "hd:c_1"))
    # The kick marker went with the lease: the next event wakes the stream at once.
    store.append(msg(n=1))
    assert store.ready_streams() == ["hd:c_1"]


def test_an_ack_that_leaves_events_keeps_the_lease(store: Store) -> None:
    first, second = msg(n=0), msg(n=1)
    store.append(first)
    store.append(second)
    token = store.acquire_lease("hd:c_1", 10)
    assert token
    store.begin("hd:c_1", token, first.id, 10, time.time())
    acked = store.ack("hd:c_1", token, first.id, 1)
    assert acked is not None and acked[1] == 1
    assert store.is_leased("hd:c_1") and store.pending_streams() == ["hd:c_1"]


def test_take_reads_the_heads_conversation_and_author_in_the_same_step(store: Store) -> None:
    store.redis.hset(store.conv_key("c_1"), mapping={"title": "Refund", "ticket_id": "7"})
    store.redis.hset(store.user_key("u_1"), mapping={"name": "Ada"})
    e = ev.Event(ev.MESSAGE, "hd:c_1", {"author": "u_1", "type": "text", "payload": {}})
    store.append(e)
    token = "t" * 16
    taken = store.take("hd:c_1", token, 10, time.time(), 5, acquire=True, records=True)
    assert taken.head is not None and [x.id for x in taken.events] == [e.id]
    assert taken.head.conversation == {"title": "Refund", "ticket_id": "7"}
    assert taken.head.author == {"name": "Ada"}
    # Without asking, none are read; an unknown author is an empty record.
    plain = store.take("hd:c_1", token, 10, time.time(), 5, acquire=False)
    assert plain.head is not None and plain.head.conversation is None
    store.append(ev.Event(ev.MESSAGE, "hd:c_2", {"author": "BOT", "type": "text", "payload": {}}))
    other = store.take("hd:c_2", token, 10, time.time(), 5, acquire=True, records=True)
    assert other.head is not None and other.head.conversation == {} and other.head.author == {}


def test_an_ack_that_goes_on_takes_the_next_step_in_the_same_round_trip(store: Store) -> None:
    """Issue 16: a conversation's next event costs one round trip (ack + take), not two."""
    store.redis.hset(store.conv_key("c_1"), mapping={"ticket_id": "7"})
    store.redis.hset(store.user_key("u_1"), mapping={"name": "Ada"})
    events = [
        ev.Event(ev.MESSAGE, "hd:c_1", {"author": "u_1", "type": "text", "payload": {"n": n}})
        for n in range(3)
    ]
    for e in events:
        store.append(e)
    token = "t" * 16
    first = store.take("hd:c_1", token, 10, time.time(), 2, acquire=True, records=True)
    assert first.head is not None and first.head.attempts == 1
    acked = store.ack("hd:c_1", token, events[0].id, 1, then=2, lease_seconds=7, records=True)
    assert acked is not None and acked.left == 2 and acked.next is not None
    nxt = acked.next
    assert nxt.head is not None and (nxt.head.status, nxt.head.attempts) == (1, 1)
    assert [e.id for e in nxt.events] == [events[1].id, events[2].id]
    assert nxt.head.conversation == {"ticket_id": "7"} and nxt.head.author == {"name": "Ada"}
    head = store.redis.hgetall(store.key("head", "hd:c_1"))
    assert head["id"] == events[1].id and "sending" in head  # its attempt began
    assert 0 < store.redis.pttl(store.key("lease", "hd:c_1")) <= 7000  # renewed to 7 s
    # Not asked to go on (the drain stops here): nothing begun, the next take begins it.
    acked = store.ack("hd:c_1", token, events[1].id, 1)
    assert acked is not None and acked.left == 1 and acked.next is None
    assert not store.redis.exists(store.key("head", "hd:c_1"))
    # The last one: asked to go on, but nothing is left, so the lease is let go instead.
    store.take("hd:c_1", token, 10, time.time(), 2, acquire=False)
    acked = store.ack("hd:c_1", token, events[2].id, 1, then=2, lease_seconds=7)
    assert acked is not None and acked.left == 0 and acked.next is None
    assert not store.is_leased("hd:c_1")
