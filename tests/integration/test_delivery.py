"""Delivery guarantees through real workers: retries, ordering under concurrency, close."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import BridgeClient
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.processes import Process

pytestmark = pytest.mark.integration


def inbox_texts(redis_url: str, cid: str) -> list[str]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    return [json.loads(e)["text"] for e in r.lrange(f"hb:adapter:inbox:log:{cid}", 0, -1)]


def ticketed_conversation(bridge: BridgeClient) -> str:
    """A new conversation, once its inbox ticket exists."""
    cid = bridge.conversation()
    wait_until(
        lambda: bridge.agent("GET", f"/conversations/{cid}").status_code == 200, what="ticket"
    )
    return cid


def test_botpress_failing_twice_still_gets_each_event_exactly_once(
    bridge: BridgeClient, fake_botpress: FakeBotpress, workers: Callable[..., Process]
) -> None:
    workers()
    cid = ticketed_conversation(bridge)
    fake_botpress.fail_next(2, status=503)
    for text in ("one", "two", "three"):
        bridge.agent("POST", f"/conversations/{cid}/messages", {"agent": "bob", "text": text})
    got = fake_botpress.wait_for(3)
    assert [r["body"]["payload"]["text"] for r in got] == ["one", "two", "three"]
    assert len(fake_botpress.attempts) == 5  # two failures, then each once
    assert [a["body"]["payload"]["text"] for a in fake_botpress.attempts[:3]] == ["one"] * 3


def test_429_retry_after_is_honoured(
    bridge: BridgeClient, fake_botpress: FakeBotpress, workers: Callable[..., Process]
) -> None:
    workers()
    cid = ticketed_conversation(bridge)
    fake_botpress.fail_next(1, status=429, retry_after="2")
    bridge.agent("POST", f"/conversations/{cid}/messages", {"agent": "bob", "text": "hello"})
    [got] = fake_botpress.wait_for(1)
    first_try = fake_botpress.attempts[0]
    assert first_try["body"]["payload"]["text"] == "hello"
    # The retry came no sooner than the server asked.
    assert got["at"] - fake_botpress.attempt_times[0] >= 1.9


def test_two_workers_keep_every_conversations_order(
    bridge: BridgeClient, redis_url: str, workers: Callable[..., Process]
) -> None:
    workers()  # the Procfile's default: 256 greenlets
    workers(WORKER_POOL="prefork", WORKER_CONCURRENCY="2")  # and processes, side by side
    workers(WORKER_POOL="threads", WORKER_CONCURRENCY="4")  # and threads
    uid = bridge.user("Ada")
    conversations = [bridge.conversation(f"c{i}") for i in range(50)]
    expected: dict[str, list[str]] = {cid: [] for cid in conversations}
    for n in range(20):
        for cid in conversations:
            author = uid if n % 3 else "BOT"  # alternate authors so batches break up
            text = f"{cid}-{n}"
            bridge.say(cid, author, {"text": text})
            expected[cid].append(text)

    def all_delivered() -> bool:
        return all(len(inbox_texts(redis_url, cid)) == 20 for cid in conversations)

    wait_until(all_delivered, timeout=120, what="1,000 messages in the inbox")
    for cid in conversations:
        assert inbox_texts(redis_url, cid) == expected[cid]


def test_close_is_resolved_through_the_botpress_api(
    bridge_env: dict[str, str],
    fake_botpress: FakeBotpress,
    workers: Callable[..., Process],
    redis_url: str,
) -> None:
    from bridge.app import create_app
    from bridge.config import Settings

    env = {
        **bridge_env,
        "BOTPRESS_TOKEN": fake_botpress.token,
        "BOTPRESS_BOT_ID": fake_botpress.bot_id,
    }
    client = BridgeClient(create_app(Settings.from_env(env)).test_client())
    workers(**env)
    cid = client.conversation()
    fake_botpress.conversations["bp-conv-1"] = {
        "id": "bp-conv-1",
        "channel": "hitl",
        "integration": "plus/hitl-api",
        "tags": {"plus/hitl-api:externalId": cid},
    }
    r = client.call(
        "closeRemoteTicket",
        {"type": "closeRemoteTicket", "payload": {"botpressConversationId": "bp-conv-1"}},
    )
    assert r.status_code == 200

    def closed() -> Any:
        t = client.agent("GET", f"/conversations/{cid}").get_json()
        return t.get("status") == "closed"

    wait_until(closed, what="the inbox ticket to close")
    assert inbox_texts(redis_url, cid)[-1] == "The bot closed the hand-off."
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.get("hb:bpconv:bp-conv-1") == cid  # cached: the next close needs no API call


def test_close_that_cannot_be_resolved_is_a_visible_dead_letter(
    bridge: BridgeClient, workers: Callable[..., Process], redis_url: str
) -> None:
    workers()
    bridge.call(
        "closeRemoteTicket",
        {"type": "closeRemoteTicket", "payload": {"botpressConversationId": "bp-conv-x"}},
    )
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: r.hlen("hb:dlq") == 1, what="a dead letter")
    [raw] = r.hvals("hb:dlq")
    entry = json.loads(raw)
    assert entry["stream"] == "rs:bp-conv-x"
    assert "BOTPRESS_TOKEN" in entry["reason"] and "never guesses" in entry["reason"]
