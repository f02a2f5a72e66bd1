"""Botpress -> Chatwoot -> Botpress through real workers and the fake Chatwoot account."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import Settings
from tests.conftest import BridgeClient
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_chatwoot import ACCOUNT_ID, INBOX_ID, FakeChatwoot, sign
from tests.support.processes import Process

pytestmark = [
    pytest.mark.integration,
    # One broker: it carries the same wake-ups whatever the helpdesk, and the core's and
    # Zendesk's end-to-end tests run with both (the suite stays under 30 minutes).
    pytest.mark.parametrize("bridge_env", ["redis-broker"], indirect=True),
]

URL_TOKEN = "e2e-url-token-3b8f1c7a9d2e4605"
SIGNING = "e2e-signing-secret-8c2d5f0a1b7e"


@pytest.fixture
def chatwoot() -> Iterator[FakeChatwoot]:
    fake = FakeChatwoot().start()
    yield fake
    fake.stop()


@pytest.fixture
def chatwoot_env(bridge_env: dict[str, str], chatwoot: FakeChatwoot) -> dict[str, str]:
    return {
        **bridge_env,
        "HELPDESK": "chatwoot",
        "CHATWOOT_URL": chatwoot.url,
        "CHATWOOT_ACCOUNT_ID": str(ACCOUNT_ID),
        "CHATWOOT_INBOX_ID": str(INBOX_ID),
        "CHATWOOT_API_TOKEN": chatwoot.api_token,
        "CHATWOOT_WEBHOOK_TOKEN": URL_TOKEN,
        "CHATWOOT_WEBHOOK_SECRET": SIGNING,
        "CHATWOOT_POLL_INTERVAL": "0",
    }


@pytest.fixture
def cbridge(chatwoot_env: dict[str, str]) -> BridgeClient:
    return BridgeClient(create_app(Settings.from_env(chatwoot_env)).test_client())


def ring(bridge: BridgeClient, chatwoot: FakeChatwoot, conversation_id: int) -> Any:
    headers, body = chatwoot.webhook_request(
        chatwoot.conversation_event(conversation_id), secret=None
    )
    ts = str(int(time.time()))
    headers |= {"X-Chatwoot-Timestamp": ts, "X-Chatwoot-Signature": sign(SIGNING, ts, body)}
    return bridge.client.post(f"/webhooks/chatwoot/{URL_TOKEN}", data=body, headers=headers)


def test_hand_off_reaches_chatwoot_and_replies_arrive_once_in_order(
    cbridge: BridgeClient,
    chatwoot: FakeChatwoot,
    fake_botpress: FakeBotpress,
    chatwoot_env: dict[str, str],
    workers: Callable[..., Process],
) -> None:
    workers(**chatwoot_env)
    uid = cbridge.user("Ada", email="ada@example.com")
    cid = cbridge.conversation("Refund please", description="Order 42")
    cbridge.say(cid, uid, {"text": "I want my money back"})
    cbridge.say(cid, uid, {"text": "It was order 42"})
    cbridge.say(cid, "BOT", {"text": "An agent will answer shortly"})

    def conversation() -> Any:
        for c in chatwoot.conversations.values():
            if c["custom_attributes"].get("hitl_bridge_conversation") == cid:
                texts = [m["content"] for m in chatwoot.messages_of(c["id"])]
                if any(t.startswith("🤖 Bot:") for t in texts):
                    return c
        return None

    conv = wait_until(conversation, what="the conversation with its messages")
    tid = int(conv["id"])
    texts = [m["content"] for m in chatwoot.messages_of(tid)]
    assert "I want my money back" in texts[1] and "It was order 42" in "\n".join(texts[1:])
    assert texts[-1] == "🤖 Bot: An agent will answer shortly"
    contact = chatwoot.contacts[chatwoot.conversations[tid]["contact_id"]]
    assert (contact["identifier"], contact["name"]) == (uid, "Ada")

    alice = chatwoot.add_agent("Alice")
    chatwoot.assign(tid, alice)
    chatwoot.agent_reply(tid, alice, "Hello Ada")
    chatwoot.agent_note(tid, alice, "internal note")
    chatwoot.agent_reply(tid, alice, "Refund sent")
    chatwoot.resolve(tid, alice)
    for _ in range(5):  # the same doorbell five times: harmless
        assert ring(cbridge, chatwoot, tid).status_code == 200
    got = fake_botpress.wait_for(4)
    assert [(r["route"], r["body"].get("payload")) for r in got] == [
        ("agent-assigned", None),
        ("message-from-agent", {"text": "Hello Ada"}),
        ("message-from-agent", {"text": "Refund sent"}),
        ("stop-hitl", None),
    ]
    assert all(r["body"]["remoteConversationId"] == cid for r in got)
    ring(cbridge, chatwoot, tid)
    time.sleep(1.0)
    assert len(fake_botpress.received) == 4  # no duplicates, no echoes of the bridge's writes


def test_forged_webhook_is_refused(cbridge: BridgeClient, chatwoot: FakeChatwoot) -> None:
    r = cbridge.client.post(
        "/webhooks/chatwoot/not-the-token-0123456789ab",
        data=b'{"event":"conversation_updated","id":1}',
    )
    assert r.status_code == 403 and r.get_json()["error"] == "webhook rejected"
