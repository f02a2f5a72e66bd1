"""Botpress -> Zendesk -> Botpress through real workers and the fake Zendesk account."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import Settings
from tests.conftest import BridgeClient
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_zendesk import FakeZendesk
from tests.support.processes import Process

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "c2lnbmluZy1zZWNyZXQtZm9yLXRlc3Rz"


@pytest.fixture
def zendesk_env(bridge_env: dict[str, str], zendesk: FakeZendesk) -> dict[str, str]:
    return {
        **bridge_env,
        "HELPDESK": "zendesk",
        "ZENDESK_URL": zendesk.url,
        "ZENDESK_EMAIL": zendesk.email,
        "ZENDESK_API_TOKEN": zendesk.api_token,
        "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ZENDESK_POLL_INTERVAL": "0",
        "ZENDESK_RATE_LIMIT": "100000",  # the fake enforces none; the budget has its own tests
    }


@pytest.fixture
def zbridge(zendesk_env: dict[str, str]) -> BridgeClient:
    return BridgeClient(create_app(Settings.from_env(zendesk_env)).test_client())


def ring(bridge: BridgeClient, zendesk: FakeZendesk, ticket_id: int) -> Any:
    headers, body = zendesk.webhook_request(ticket_id, secret=WEBHOOK_SECRET)
    return bridge.client.post("/webhooks/zendesk", data=body, headers=headers)


def start(zbridge: BridgeClient, zendesk: FakeZendesk) -> tuple[str, str, int]:
    uid = zbridge.user("Ada", email="ada@example.com")
    cid = zbridge.conversation("Refund please", description="Order 42")
    zbridge.say(cid, uid, {"text": "I want my money back"})
    zbridge.say(cid, uid, {"text": "It was order 42"})
    zbridge.say(cid, "BOT", {"text": "An agent will answer shortly"})

    def ticket() -> Any:
        found = [t for t in zendesk.tickets.values() if t.get("external_id") == cid]
        return found[0] if found and len(zendesk.comments(found[0]["id"])) >= 3 else None

    t = wait_until(ticket, what="the ticket with its comments")
    return uid, cid, int(t["id"])


def test_webhook_rings_and_replies_arrive_once_in_order(
    zbridge: BridgeClient,
    zendesk: FakeZendesk,
    fake_botpress: FakeBotpress,
    zendesk_env: dict[str, str],
    workers: Callable[..., Process],
) -> None:
    workers(**zendesk_env)
    uid, cid, tid = start(zbridge, zendesk)
    bodies = [c["body"] for c in zendesk.comments(tid)]
    # The two end-user messages were batched into one comment, then the bot's.
    assert bodies[1:] == [
        "I want my money back\n\nIt was order 42",
        "🤖 Bot: An agent will answer shortly",
    ]
    requester = zendesk.users[zendesk.tickets[tid]["requester_id"]]
    assert (requester["external_id"], requester["name"]) == (uid, "Ada")

    alice = zendesk.add_agent("Alice", "alice@example.com")
    zendesk.assign(tid, alice)
    zendesk.agent_comment(tid, alice, "Hello Ada")
    zendesk.agent_comment(tid, alice, "internal note", public=False)
    zendesk.agent_comment(tid, alice, "Refund sent")
    zendesk.solve(tid)
    # Five copies of the same webhook: harmless.
    for _ in range(5):
        assert ring(zbridge, zendesk, tid).status_code == 200
    got = fake_botpress.wait_for(4)
    assert [(r["route"], r["body"].get("payload")) for r in got] == [
        ("agent-assigned", None),
        ("message-from-agent", {"text": "Hello Ada"}),
        ("message-from-agent", {"text": "Refund sent"}),
        ("stop-hitl", None),
    ]
    assert all(r["body"]["remoteConversationId"] == cid for r in got)
    assert got[0]["body"]["remoteUserId"] == f"agent:zendesk:{alice}"
    ring(zbridge, zendesk, tid)
    time.sleep(1.0)
    assert len(fake_botpress.received) == 4  # no duplicates, no echoes of our own comments


def test_bad_signature_is_rejected_and_rings_nothing(
    zbridge: BridgeClient, zendesk: FakeZendesk, fake_botpress: FakeBotpress
) -> None:
    headers, body = zendesk.webhook_request(1, secret="d3Jvbmctc2VjcmV0")
    r = zbridge.client.post("/webhooks/zendesk", data=body, headers=headers)
    assert r.status_code == 401 and r.get_json()["error"] == "webhook rejected"


def test_polling_delivers_replies_without_any_webhook(
    zbridge: BridgeClient,
    zendesk: FakeZendesk,
    fake_botpress: FakeBotpress,
    zendesk_env: dict[str, str],
    workers: Callable[..., Process],
    tmp_path: Path,
) -> None:
    env = {**zendesk_env, "ZENDESK_POLL_INTERVAL": "6"}  # the shortest Zendesk allows
    workers(**env)
    beat = Process("beat", env, tmp_path)
    try:
        _, cid, tid = start(zbridge, zendesk)
        bob = zendesk.add_agent("Bob", "bob@example.com")
        zendesk.agent_comment(tid, bob, "Polled reply")
        [got] = fake_botpress.wait_for(1, timeout=30)
        assert got["body"] == {
            "remoteConversationId": cid,
            "remoteUserId": f"agent:zendesk:{bob}",
            "messageType": "text",
            "payload": {"text": "Polled reply"},
        }
    finally:
        beat.stop()


def test_zendesk_rate_limit_is_waited_out(
    zbridge: BridgeClient,
    zendesk: FakeZendesk,
    zendesk_env: dict[str, str],
    workers: Callable[..., Process],
) -> None:
    workers(**zendesk_env)
    zendesk.fail_next(1, 429, retry_after=1)
    _, cid, _ = start(zbridge, zendesk)
    # The refused call was made again (after Retry-After), and the flow went on.
    first = zendesk.requests[0]
    assert any((r.method, r.path) == (first.method, first.path) for r in zendesk.requests[1:])
    assert len([t for t in zendesk.tickets.values() if t.get("external_id") == cid]) == 1


def test_cli_check_and_setup_against_the_account(
    zendesk_env: dict[str, str],
    zendesk: FakeZendesk,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bridge.cli import main

    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in zendesk_env.items():
        monkeypatch.setenv(key, value)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "redis: ok" in out and "helpdesk zendesk: ok" in out
    assert "allowed; one web, worker and beat with this configuration hold about" in out
    assert "MORE THAN REDIS ALLOWS" not in out  # a local redis-server allows 10,000
    assert main(["zendesk", "setup", "https://bridge.example.com"]) == 0
    out = capsys.readouterr().out
    [hook] = zendesk.webhooks.values()
    assert hook["endpoint"] == "https://bridge.example.com/webhooks/zendesk"
    assert "ZENDESK_WEBHOOK_SECRET=" in out
    assert main(["zendesk", "setup", "https://bridge.example.com"]) == 0  # idempotent
    assert len(zendesk.webhooks) == 1 and len(zendesk.triggers) == 1
    monkeypatch.setenv("ZENDESK_API_TOKEN", "wrong-token")
    assert main(["check"]) == 1
    assert "helpdesk zendesk:" in capsys.readouterr().out
