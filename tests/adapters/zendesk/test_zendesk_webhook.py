from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import WebhookRejected
from bridge.helpdesks.base import AgentMessage, Author, OutboundMessage
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.setup import setup
from bridge.helpdesks.zendesk.webhook import sign, verify
from bridge.storage import Conversation, Store, User
from tests.support.fake_zendesk import FakeZendesk

SECRET = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0"


def signed(
    body: bytes, *, stamp: str = "2024-05-01T12:00:00Z", secret: str = SECRET
) -> dict[str, str]:
    return {
        "x-zendesk-webhook-signature": sign(secret, stamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Invocation-Id": "8350205582",
    }


NOW = 1714564800.0  # 2024-05-01T12:00:00Z


def test_trigger_body_is_accepted() -> None:
    body = b'{"ticket_id": "35436"}'
    assert verify(signed(body), body, secret=SECRET, now=NOW) == ["35436"]


def test_event_webhook_body_is_accepted(recorded: Callable[[str], Any]) -> None:
    body = json.dumps(recorded("event_ticket_comment_added.json")).encode()
    assert verify(signed(body), body, secret=SECRET, now=NOW + 200) == ["5158"]


def test_the_signature_covers_timestamp_and_body_known_vector() -> None:
    # base64(HMAC-SHA256("secret", "2024-05-01T12:00:00Z" + "{}")), computed independently.
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(b"secret", b"2024-05-01T12:00:00Z{}", hashlib.sha256).digest()
    ).decode()
    assert sign("secret", "2024-05-01T12:00:00Z", b"{}") == expected


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h, b: (
            {**h, "x-zendesk-webhook-signature": sign("other", "2024-05-01T12:00:00Z", b)},
            b,
        ),
        lambda h, b: (h, b.replace(b"35436", b"35437")),
        lambda h, b: ({**h, "X-Zendesk-Webhook-Signature-Timestamp": "2024-05-01T12:00:01Z"}, b),
        lambda h, b: ({k: v for k, v in h.items() if "signature" not in k}, b),
        lambda h, b: ({**h, "x-zendesk-webhook-signature": "not base64!"}, b),
    ],
    ids=["wrong-secret", "tampered-body", "tampered-timestamp", "unsigned", "garbage"],
)
def test_bad_signatures_are_rejected_401(mutate: Any) -> None:
    body = b'{"ticket_id": "35436"}'
    headers, body = mutate(signed(body), body)
    with pytest.raises(WebhookRejected) as exc:
        verify(headers, body, secret=SECRET, now=NOW)
    assert exc.value.status == 401


@pytest.mark.parametrize("offset", [301, -301, 86400])
def test_stale_or_future_timestamps_are_rejected(offset: float) -> None:
    body = b'{"ticket_id": 1}'
    with pytest.raises(WebhookRejected) as exc:
        verify(signed(body), body, secret=SECRET, now=NOW + offset)
    assert exc.value.status == 401
    assert "5-minute" in str(exc.value)


def test_epoch_timestamps_work_too() -> None:
    body = b'{"ticket_id": 7}'
    assert verify(signed(body, stamp=str(int(NOW))), body, secret=SECRET, now=NOW) == ["7"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"nothing": 1}',
        b'{"ticket_id": "abc"}',
        b'{"ticket_id": -3}',
        b'{"detail": {"id": null}}',
        b'{"ticket_id": true}',
    ],
)
def test_malformed_bodies_are_rejected_400(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as exc:
        verify(signed(body), body, secret=SECRET, now=NOW)
    assert exc.value.status == 400


def test_no_secret_configured_rejects_everything() -> None:
    body = b'{"ticket_id": 1}'
    with pytest.raises(WebhookRejected):
        verify(signed(body, secret=""), body, secret="", now=NOW)


def test_adapter_verifies_with_its_secret_and_a_replay_is_harmless(
    zd: ZendeskHelpdesk, fake: FakeZendesk
) -> None:
    headers, body = fake.webhook_request(42, secret=SECRET)
    # The same invocation delivered twice only rings the doorbell twice.
    assert zd.verify_webhook(headers, body) == ["42"]
    assert zd.verify_webhook(headers, body) == ["42"]
    stale_headers, stale_body = fake.webhook_request(42, secret=SECRET, at=time.time() - 600)
    with pytest.raises(WebhookRejected):
        zd.verify_webhook(stale_headers, stale_body)


def test_an_agent_reply_costs_two_requests_and_the_bridges_own_writes_none(
    make_settings: Callable[..., Any], store: Store, fake: FakeZendesk, ticketed: Conversation
) -> None:
    setup(make_settings(), "https://bridge.example.com")
    secret = next(iter(fake.signing_secrets.values()))
    zd = ZendeskHelpdesk(make_settings(ZENDESK_WEBHOOK_SECRET=secret), store)
    calls: list[tuple[dict[str, str], bytes]] = []
    fake.deliver = lambda headers, body: calls.append((headers, body))
    cursor = zd.changes_since(ticketed, "").cursor
    tid = int(str(ticketed.ticket_id))

    # The bridge writes the end user's and the bot's messages: no doorbell rings.
    ann = User(id="u_1", name="Ann")
    ann = replace(ann, helpdesk_id=zd.upsert_user(ann, maybe_applied=False))
    # Written as the end user, but through the bridge's credentials: the bridge's update.
    for author in (Author("end_user", ann), Author("bot")):
        m = OutboundMessage(event_id="e", message_type="text", payload={"text": "hi"}, at=0.0)
        zd.append_messages(ticketed, author, [m], maybe_applied=False)
    assert fake.calls("PUT", f"/api/v2/tickets/{tid}") and fake.fired == []

    # An agent's reply rings it once; the wake-up it causes costs two requests.
    fake.agent_comment(tid, fake.add_agent("Sam"), "Hello from Sam")
    assert fake.fired == [tid]
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)  # Zendesk calls webhooks on a thread of its own
    [(headers, body)] = calls
    assert zd.verify_webhook(headers, body) == [str(tid)]
    fake.requests.clear()
    changes = zd.changes_since(ticketed, cursor)
    assert [i.payload for i in changes.items if isinstance(i, AgentMessage)] == [
        {"text": "Hello from Sam"}
    ]
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", f"/api/v2/tickets/{tid}"),
        ("GET", f"/api/v2/tickets/{tid}/comments"),
    ]
