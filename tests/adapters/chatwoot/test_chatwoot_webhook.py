"""Chatwoot's webhooks: the URL token, the signature where Chatwoot signs, the ids named."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import WebhookRejected
from bridge.helpdesks.chatwoot import ChatwootHelpdesk
from bridge.helpdesks.chatwoot.config import derived_token
from bridge.helpdesks.chatwoot.webhook import sign
from tests.adapters.chatwoot.conftest import SECRET, WEBHOOK_TOKEN

SIGNING = "cw-signing-secret-0123456789abcdef"


def signed(body: bytes, secret: str = SIGNING, at: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if at is None else at))
    return {
        "X-Chatwoot-Timestamp": ts,
        "X-Chatwoot-Signature": sign(secret, ts, body),
        "X-Chatwoot-Delivery": "d-1",
    }


def raw(recorded: Callable[[str], Any], name: str) -> bytes:
    return json.dumps(recorded(name)).encode()


def test_token_alone_where_chatwoot_does_not_sign(
    cw: ChatwootHelpdesk, recorded: Callable[[str], Any]
) -> None:
    body = raw(recorded, "message_created_agent.json")
    assert cw.verify_webhook({}, body, url_token=WEBHOOK_TOKEN) == ["12"]
    assert cw.verify_webhook(
        {}, raw(recorded, "conversation_status_changed.json"), url_token=WEBHOOK_TOKEN
    ) == ["12"]
    for token in (None, "", "wrong-token-0123456789abcdef", WEBHOOK_TOKEN[:-1]):
        with pytest.raises(WebhookRejected) as exc:
            cw.verify_webhook({}, body, url_token=token)
        assert exc.value.status == (403 if token else 401)  # wrong, or none at all


def test_signature_required_once_the_secret_is_known(
    cw: ChatwootHelpdesk, recorded: Callable[[str], Any]
) -> None:
    cw.state.set_webhook_secret(SIGNING)
    body = raw(recorded, "message_created_agent.json")
    assert cw.verify_webhook(signed(body), body, url_token=WEBHOOK_TOKEN) == ["12"]
    assert cw.delivery_id(signed(body)) == "d-1"
    forged = [
        ({}, body),
        (signed(body, "another-secret-0123456789"), body),
        (signed(body, at=time.time() - 3600), body),
        (signed(body), body.replace(b'"id": 12', b'"id": 13')),
        ({**signed(body), "X-Chatwoot-Timestamp": "NaN"}, body),
    ]
    for headers, b in forged:
        with pytest.raises(WebhookRejected) as exc:
            cw.verify_webhook(headers, b, url_token=WEBHOOK_TOKEN)
        assert exc.value.status == 401


def test_the_token_derives_from_bridge_secret_and_its_previous_one(make_settings, store) -> None:  # type: ignore[no-untyped-def]
    desk = ChatwootHelpdesk(
        make_settings(CHATWOOT_WEBHOOK_TOKEN="", BRIDGE_SECRET_PREVIOUS="old-secret-9876543210zyx"),
        store,
    )
    assert desk.webhook_tokens() == [
        derived_token(SECRET),
        derived_token("old-secret-9876543210zyx"),
    ]
    assert desk.verify_webhook(
        {},
        b'{"event":"conversation_updated","id":4}',
        url_token=derived_token("old-secret-9876543210zyx"),
    ) == ["4"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{",
        b'{"event": 3}',
        b'{"event":"message_created"}',
        b'{"event":"conversation_updated","id":"x"}',
        b'{"event":"conversation_updated","id":-1}',
        b'{"event":"message_created","conversation":{"id":true}}',
    ],
)
def test_malformed_bodies_are_400(cw: ChatwootHelpdesk, body: bytes) -> None:
    with pytest.raises(WebhookRejected) as exc:
        cw.verify_webhook({}, body, url_token=WEBHOOK_TOKEN)
    assert exc.value.status == 400


def test_what_cannot_be_an_agents_reply_rings_nothing(
    cw: ChatwootHelpdesk, recorded: Callable[[str], Any]
) -> None:
    base = recorded("message_created_agent.json")
    for change in (
        {"private": True},
        {"message_type": "incoming"},
        {"message_type": "activity"},
        {"content_attributes": {"hitl_bridge": {"events": ["e1"]}}},
        {"account": {"id": 99}},
    ):
        body = json.dumps({**base, **change}).encode()
        assert cw.verify_webhook({}, body, url_token=WEBHOOK_TOKEN) == []
    assert (
        cw.verify_webhook({}, b'{"event":"contact_updated","id":5}', url_token=WEBHOOK_TOKEN) == []
    )


def test_the_web_route_answers_json(make_settings, store, recorded) -> None:  # type: ignore[no-untyped-def]
    from bridge.app import create_app
    from bridge.helpdesks.conformance import _Dispatch
    from bridge.runtime import Runtime

    settings = make_settings()
    desk = ChatwootHelpdesk(settings, store)
    web = create_app(runtime=Runtime(settings, store, desk, _Dispatch())).test_client()
    store.redis.set(store.key("ticket", "12"), "c_TestConversation1")
    body = raw(recorded, "message_created_agent.json")
    ok = web.post(f"/webhooks/chatwoot/{WEBHOOK_TOKEN}", data=body)
    assert ok.status_code == 200 and ok.get_json()["rung"] == ["c_TestConversation1"]
    bad = web.post(f"/webhooks/chatwoot/{WEBHOOK_TOKEN}", data=b"\xff{")
    assert bad.status_code == 400 and bad.get_json()["error"]
    wrong = web.post("/webhooks/chatwoot/nope-0123456789abcdefghij", data=body)
    assert wrong.status_code == 403 and wrong.get_json()["error"]
