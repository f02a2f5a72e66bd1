"""The automation rule's webhook: its URL token, its body, through the web route."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.config import Settings
from bridge.errors import WebhookRejected
from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.helpdesks.freshdesk.webhook import derived_token
from bridge.storage import Store

SECRET = "test-secret-0123456789"


def test_the_genuine_token_names_the_tickets(fd: FreshdeskHelpdesk) -> None:
    token = derived_token(SECRET)
    assert fd.verify_webhook({}, b'{"ticket_id": 42}', url_token=token) == ["42"]
    assert fd.verify_webhook({}, b'{"ticket_id": "42"}', url_token=token) == ["42"]
    body = b'{"freshdesk_webhook": {"ticket_id": 7}}'
    assert fd.verify_webhook({}, body, url_token=token) == ["7"]


@pytest.mark.parametrize(
    "token", [None, "", "wrong-token-0123456789abcdef", derived_token("x" * 20)]
)
def test_a_wrong_or_missing_token_is_refused(fd: FreshdeskHelpdesk, token: str | None) -> None:
    with pytest.raises(WebhookRejected) as caught:
        fd.verify_webhook({}, b'{"ticket_id": 42}', url_token=token)
    assert caught.value.status in (401, 403)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1]",
        b"{}",
        b'{"ticket_id": -1}',
        b'{"ticket_id": true}',
        b'{"ticket_id": "4\xc2\xb2"}',
        b'{"ticket_id": 99999999999999999999}',
        b'{"ticket_ids": []}',
        b'{"ticket_id": {"id": 1}}',
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"ticket_id": 1e400}',
    ],
)
def test_malformed_bodies_are_400(fd: FreshdeskHelpdesk, body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        fd.verify_webhook({}, body, url_token=derived_token(SECRET))
    assert caught.value.status == 400


def test_the_previous_secret_and_a_configured_token(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    old = "old-secret-abcdefghij0123"
    fd = FreshdeskHelpdesk(make_settings(BRIDGE_SECRET_PREVIOUS=old), store)
    assert fd.verify_webhook({}, b'{"ticket_id": 1}', url_token=derived_token(old)) == ["1"]
    configured = "configured-token-0123456789abcdef"
    fd = FreshdeskHelpdesk(make_settings(FRESHDESK_WEBHOOK_TOKEN=configured), store)
    assert fd.verify_webhook({}, b'{"ticket_id": 1}', url_token=configured) == ["1"]
    with pytest.raises(WebhookRejected):
        fd.verify_webhook({}, b'{"ticket_id": 1}', url_token=derived_token(SECRET))


def test_the_web_route_answers_json(make_settings: Callable[..., Settings], store: Store) -> None:
    from bridge.app import create_app
    from bridge.runtime import Runtime

    class Rung:
        def drain(self, stream: str, countdown: float) -> None:
            pass

        def pump(self, pump_id: str) -> None:
            pass

    settings = make_settings()
    rt = Runtime(settings, store, FreshdeskHelpdesk(settings, store), Rung())
    client = create_app(runtime=rt).test_client()
    store.redis.set(store.key("ticket", "42"), "c_x")
    ok = client.post(f"/webhooks/freshdesk/{derived_token(SECRET)}", data=b'{"ticket_id": 42}')
    assert ok.status_code == 200 and ok.get_json()["rung"] == ["c_x"]
    bad = client.post(
        "/webhooks/freshdesk/nope-nope-nope-nope-nope-nope", data=b'{"ticket_id": 42}'
    )
    assert bad.status_code == 403 and bad.is_json
    junk = client.post(f"/webhooks/freshdesk/{derived_token(SECRET)}", data=b"<xml/>")
    assert junk.status_code == 400 and junk.is_json
