"""Delivery counters (P:stats) and conversation history (P:hist:<cid>) written by the scripts."""

from __future__ import annotations

import time

from bridge import events as ev
from bridge import stats
from bridge.storage import Store


def msg(stream: str = "hd:c_1", at: float | None = None) -> ev.Event:
    e = ev.Event(ev.MESSAGE, stream, {"author": "BOT", "payload": {"text": "secret words"}})
    return e if at is None else ev.Event(e.kind, e.stream, e.data, e.id, at)


def deliver(store: Store, stream: str, n: int = 1, now: float | None = None) -> list[ev.Event]:
    token = store.acquire_lease(stream, 10)
    assert token
    events = store.peek(stream, n)
    head = store.begin(stream, token, events[0].id, 10, time.time())
    acked = store.ack(
        stream, token, events[0].id, n, delivered=events, attempts=head.attempts, now=now
    )
    assert acked is not None and acked[0] == ""  # produced nothing, so woke nothing
    store.release_lease(stream, token)
    return events


def test_ack_counts_deliveries_and_latency_in_the_same_script(store: Store) -> None:
    now = time.time()
    store.append(msg(at=now - 3))
    store.append(msg(at=now - 0.01))
    events = deliver(store, "hd:c_1", 2, now=now)
    s = store.stats()
    assert stats.delivered(s, "hd") == 2 and "d:hd" not in s
    assert s[stats.bucket_field("hd", stats.bucket_index(3))] == "1"
    assert s[stats.bucket_field("hd", 0)] == "1"
    assert abs(float(s["ls:hd"]) - 3.01) < 0.001
    assert [
        (h["event_id"], h["outcome"], h["attempts"], h["direction"]) for h in store.history("c_1")
    ] == [(e.id, "delivered", 1, "to_helpdesk") for e in events]


def test_defer_counts_a_retry_and_dead_letter_records_attempts(store: Store) -> None:
    store.append(msg())
    stream = "hd:c_1"
    token = store.acquire_lease(stream, 10)
    assert token
    head = store.peek(stream, 1)[0]
    for _ in range(2):
        store.begin(stream, token, head.id, 10, time.time())
        assert store.defer(stream, token, head.id, 0, "HTTP 503", "", time.time())
    store.begin(stream, token, head.id, 10, time.time())
    assert store.dead_letter(stream, token, head.id, "HTTP 422", "{}", time.time(), event=head)
    assert store.stats() == {"r:hd": "2", "x:hd": "1"}
    [entry] = store.history("c_1")
    assert (entry["event_id"], entry["outcome"], entry["attempts"]) == (
        head.id,
        "dead_lettered",
        3,
    )
    store.release_lease(stream, token)
    assert store.replay(f"d_{head.id}", lease_seconds=10) == stream
    assert store.stats()["p:hd"] == "1"
    assert [h["outcome"] for h in store.history("c_1")] == ["dead_lettered", "replayed"]


def test_history_is_capped_compact_and_free_of_content(store: Store) -> None:
    for _ in range(stats.HISTORY_CAP + 15):
        store.append(msg())
    for _ in range(stats.HISTORY_CAP + 15):
        deliver(store, "hd:c_1")
    raw = store.redis.lrange(store.key("hist", "c_1"), 0, -1)
    assert len(raw) == stats.HISTORY_CAP
    assert all(len(r) <= 64 and "secret" not in r for r in raw)
    assert sum(map(len, raw)) < 2048


def test_rings_and_user_streams_leave_no_history(store: Store) -> None:
    store.ring(ev.Event(ev.RING, "in:c_1"))
    deliver(store, "in:c_1")
    store.append(ev.Event(ev.USER_UPSERT, "hu:u_1", {"user": "u_1"}))
    deliver(store, "hu:u_1")
    assert store.history("c_1") == []
    assert store.redis.keys(store.key("hist", "*")) == []
    assert stats.delivered(store.stats(), "in") == 1 and stats.delivered(store.stats(), "hu") == 1
