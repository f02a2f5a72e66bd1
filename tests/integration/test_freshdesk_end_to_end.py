"""Botpress -> Freshdesk -> Botpress through real workers and the fake Freshdesk account."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.freshdesk.webhook import derived_token
from tests.conftest import SECRET, BridgeClient
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_freshdesk import FakeFreshdesk
from tests.support.processes import Process

pytestmark = [
    pytest.mark.integration,
    # One broker: it carries the same wake-ups whatever the helpdesk, and the core's and
    # Zendesk's end-to-end tests run with both (the suite stays under 30 minutes).
    pytest.mark.parametrize("bridge_env", ["redis-broker"], indirect=True),
]


@pytest.fixture
def freshdesk() -> Any:
    fake = FakeFreshdesk().start()
    yield fake
    fake.stop()


@pytest.fixture
def freshdesk_env(bridge_env: dict[str, str], freshdesk: FakeFreshdesk) -> dict[str, str]:
    return {
        **bridge_env,
        "HELPDESK": "freshdesk",
        "FRESHDESK_URL": freshdesk.url,
        "FRESHDESK_API_KEY": freshdesk.api_key,
        "FRESHDESK_POLL_INTERVAL": "0",
        "FRESHDESK_RATE_LIMIT": "100000",  # the fake enforces none; the budget has its tests
    }


@pytest.fixture
def fbridge(freshdesk_env: dict[str, str]) -> BridgeClient:
    return BridgeClient(create_app(Settings.from_env(freshdesk_env)).test_client())


def ring(bridge: BridgeClient, freshdesk: FakeFreshdesk, ticket_id: int) -> Any:
    """What the automation rule posts when an agent acts on the ticket."""
    return bridge.client.post(
        f"/webhooks/freshdesk/{derived_token(SECRET)}",
        data=freshdesk.webhook_body(ticket_id),
        headers={"Content-Type": "application/json"},
    )


def start(fbridge: BridgeClient, freshdesk: FakeFreshdesk) -> tuple[str, str, int]:
    uid = fbridge.user("Ada", email="ada@example.com")
    cid = fbridge.conversation("Refund please", description="Order 42")
    fbridge.say(cid, uid, {"text": "I want my money back"})
    fbridge.say(cid, uid, {"text": "It was order 42"})
    fbridge.say(cid, "BOT", {"text": "An agent will answer shortly"})

    def ticket() -> Any:
        found = [t for t in freshdesk.tickets.values() if f"hitl-{cid}" in t["tags"]]
        return found[0] if found and len(freshdesk.notes(found[0]["id"])) >= 2 else None

    t = wait_until(ticket, what="the ticket with its notes")
    return uid, cid, int(t["id"])


def test_webhook_rings_and_replies_arrive_once_in_order(
    fbridge: BridgeClient,
    freshdesk: FakeFreshdesk,
    fake_botpress: FakeBotpress,
    freshdesk_env: dict[str, str],
    workers: Callable[..., Process],
) -> None:
    workers(**freshdesk_env)
    uid, cid, tid = start(fbridge, freshdesk)
    notes = freshdesk.notes(tid)
    # The two end-user messages were batched into one incoming note, then the bot's.
    assert [(n["body_text"], n["incoming"], n["private"]) for n in notes] == [
        ("I want my money back\n\nIt was order 42", True, False),
        ("🤖 Bot: An agent will answer shortly", False, True),
    ]
    requester = freshdesk.contacts[freshdesk.tickets[tid]["requester_id"]]
    assert (requester["unique_external_id"], requester["name"]) == (uid, "Ada")
    assert freshdesk.tickets[tid]["source"] == 7

    alice = freshdesk.add_agent("Alice", "alice@example.com")
    freshdesk.assign(tid, alice)
    freshdesk.agent_reply(tid, alice, "Hello Ada")
    freshdesk.agent_note(tid, alice, "internal note")
    freshdesk.agent_reply(tid, alice, "Refund sent")
    freshdesk.resolve(tid)
    # Five copies of the same webhook: harmless.
    for _ in range(5):
        assert ring(fbridge, freshdesk, tid).status_code == 200
    got = fake_botpress.wait_for(4)
    assert [(r["route"], r["body"].get("payload")) for r in got] == [
        ("agent-assigned", None),
        ("message-from-agent", {"text": "Hello Ada"}),
        ("message-from-agent", {"text": "Refund sent"}),
        ("stop-hitl", None),
    ]
    assert all(r["body"]["remoteConversationId"] == cid for r in got)
    assert got[0]["body"]["remoteUserId"] == f"agent:freshdesk:{alice}"
    ring(fbridge, freshdesk, tid)
    time.sleep(1.0)
    assert len(fake_botpress.received) == 4  # no duplicates, no echoes of our own notes


def test_a_wrong_token_is_rejected_and_rings_nothing(
    fbridge: BridgeClient, freshdesk: FakeFreshdesk
) -> None:
    r = fbridge.client.post(
        f"/webhooks/freshdesk/{derived_token('another-secret-0123456789')}",
        data=freshdesk.webhook_body(1),
    )
    assert r.status_code == 403 and r.get_json()["error"] == "webhook rejected"


def test_polling_delivers_replies_without_any_webhook(
    fbridge: BridgeClient,
    freshdesk: FakeFreshdesk,
    fake_botpress: FakeBotpress,
    freshdesk_env: dict[str, str],
    workers: Callable[..., Process],
    tmp_path: Path,
) -> None:
    env = {**freshdesk_env, "FRESHDESK_POLL_INTERVAL": "10"}  # the shortest allowed
    workers(**env)
    beat = Process("beat", env, tmp_path)
    try:
        _, cid, tid = start(fbridge, freshdesk)
        bob = freshdesk.add_agent("Bob", "bob@example.com")
        freshdesk.agent_reply(tid, bob, "Polled reply")
        [got] = fake_botpress.wait_for(1, timeout=40)
        assert got["body"] == {
            "remoteConversationId": cid,
            "remoteUserId": f"agent:freshdesk:{bob}",
            "messageType": "text",
            "payload": {"text": "Polled reply"},
        }
    finally:
        beat.stop()


def test_a_429_is_waited_out(
    fbridge: BridgeClient,
    freshdesk: FakeFreshdesk,
    freshdesk_env: dict[str, str],
    workers: Callable[..., Process],
) -> None:
    workers(**freshdesk_env)
    freshdesk.fail_for(0.5, 429)  # Retry-After: 1
    _, cid, _ = start(fbridge, freshdesk)
    assert [f for f in freshdesk.faults if f["fault"] == 429]
    assert len([t for t in freshdesk.tickets.values() if f"hitl-{cid}" in t["tags"]]) == 1


def test_cli_check_and_setup_against_the_account(
    freshdesk_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bridge.cli import main

    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in freshdesk_env.items():
        monkeypatch.setenv(key, value)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "redis: ok" in out and "helpdesk freshdesk: ok" in out
    assert main(["freshdesk", "setup", "https://bridge.example.com"]) == 0
    out = capsys.readouterr().out
    assert f"https://bridge.example.com/webhooks/freshdesk/{derived_token(SECRET)}" in out
    monkeypatch.setenv("FRESHDESK_API_KEY", "wrong-key-0123456789")
    assert main(["check"]) == 1
    assert "helpdesk freshdesk:" in capsys.readouterr().out
