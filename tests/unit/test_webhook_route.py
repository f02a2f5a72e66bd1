"""The helpdesk webhook route: `/webhooks/<name>` and `/webhooks/<name>/<token>`."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from flask import Flask

from bridge.app import create_app
from bridge.config import Settings
from bridge.errors import WebhookRejected
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from tests.unit.conftest import Published

TOKEN = "url-token-0123456789abcdef"


class TokenDesk(InboxHelpdesk):
    """Takes the URL's token, as a helpdesk that cannot sign its webhooks does."""

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, url_token: str | None = None
    ) -> list[str]:
        if url_token is None or not hmac.compare_digest(url_token, TOKEN):
            raise WebhookRejected("the webhook URL's token is wrong", status=403)
        return ["T1"]


class SignatureDesk(InboxHelpdesk):
    """Written before URL tokens: two arguments only."""

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> list[str]:
        return ["T1"]


def _app(desk: type[InboxHelpdesk], settings: Settings, store: Store) -> Flask:
    return create_app(runtime=Runtime(settings, store, desk(settings, store), Published()))


def test_a_token_in_the_url_reaches_the_adapter(settings: Settings, store: Store) -> None:
    store.redis.set(store.key("ticket", "T1"), "c_1")
    client = _app(TokenDesk, settings, store).test_client()
    ok = client.post(f"/webhooks/inbox/{TOKEN}", data=b"{}")
    assert ok.status_code == 200 and ok.get_json()["rung"] == ["c_1"]
    for path in ("/webhooks/inbox/wrong-token", "/webhooks/inbox"):
        refused = client.post(path, data=b"{}")
        assert refused.status_code == 403, path
        assert refused.get_json()["error"] == "webhook rejected"


def test_an_adapter_without_url_tokens_still_works_and_refuses_one(
    settings: Settings, store: Store
) -> None:
    client = _app(SignatureDesk, settings, store).test_client()
    assert client.post("/webhooks/inbox", data=b"{}").status_code == 200
    refused = client.post("/webhooks/inbox/some-token", data=b"{}")
    assert refused.status_code == 404 and "no token" in refused.get_json()["details"]
