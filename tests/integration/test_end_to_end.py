"""The whole loop through real processes: Botpress -> inbox -> agent -> Botpress."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import BridgeClient
from tests.support.fake_botpress import FakeBotpress
from tests.support.processes import Process

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_hand_off_goes_round(
    bridge: BridgeClient, fake_botpress: FakeBotpress, workers: Callable[..., Process]
) -> None:
    workers()
    uid = bridge.user("Ada", email="ada@example.com")
    cid = bridge.conversation("Refund please", description="Order 42")
    bridge.say(cid, uid, {"text": "I want my money back", "userId": "bp-user-1"})
    bridge.say(cid, "BOT", {"text": "Connecting you to an agent"})
    bridge.say(cid, uid, {"imageUrl": "https://example.com/receipt.png"})

    def ticket() -> Any:
        t = bridge.agent("GET", f"/conversations/{cid}").get_json()
        return t if t.get("messages") and len(t["messages"]) == 3 else None

    t = wait_until(ticket, what="three messages in the inbox")
    assert [(m["by"], m["text"]) for m in t["messages"]] == [
        ("end_user", "I want my money back"),
        ("bot", "Connecting you to an agent"),
        ("end_user", "[image] https://example.com/receipt.png"),
    ]
    assert t["subject"] == "Refund please" and t["requester"] == uid

    assert (
        bridge.agent("POST", f"/conversations/{cid}/assign", {"agent": "alice"}).status_code == 200
    )
    assert (
        bridge.agent(
            "POST", f"/conversations/{cid}/messages", {"agent": "alice", "text": "Sure, done."}
        ).status_code
        == 200
    )
    assert (
        bridge.agent("POST", f"/conversations/{cid}/close", {"agent": "alice"}).status_code == 200
    )

    got = fake_botpress.wait_for(3)
    assert [(r["route"], r["body"]) for r in got] == [
        ("agent-assigned", {"remoteConversationId": cid, "remoteUserId": "agent:inbox:alice"}),
        (
            "message-from-agent",
            {
                "remoteConversationId": cid,
                "remoteUserId": "agent:inbox:alice",
                "messageType": "text",
                "payload": {"text": "Sure, done."},
            },
        ),
        ("stop-hitl", {"remoteConversationId": cid}),
    ]
    time.sleep(0.5)
    assert len(fake_botpress.received) == 3  # nothing echoed, nothing twice
