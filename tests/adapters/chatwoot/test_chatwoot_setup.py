"""`hitl-bridge chatwoot setup`, `check`, and the CHATWOOT_* configuration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.helpdesks.chatwoot import ChatwootHelpdesk
from bridge.helpdesks.chatwoot.config import config_problems
from bridge.helpdesks.chatwoot.setup import setup
from bridge.storage import Store
from tests.adapters.chatwoot.conftest import WEBHOOK_TOKEN
from tests.support.fake_chatwoot import INBOX_ID, FakeChatwoot

PUBLIC = "https://bridge.example.com"


def test_setup_creates_the_webhook_once_and_keeps_its_secret(
    make_settings: Callable[..., Settings], store: Store, fake: FakeChatwoot
) -> None:
    settings = make_settings()
    first = setup(settings, store, PUBLIC)
    assert "created" in first and WEBHOOK_TOKEN not in first
    (hook,) = fake.webhooks.values()
    assert hook["url"] == f"{PUBLIC}/webhooks/chatwoot/{WEBHOOK_TOKEN}"
    assert sorted(hook["subscriptions"]) == [
        "conversation_status_changed",
        "conversation_updated",
        "message_created",
    ]
    assert hook["secret"] not in first
    assert ChatwootHelpdesk(settings, store).webhook_secret() == hook["secret"]
    again = setup(settings, store, PUBLIC)
    assert "already exists" in again and len(fake.webhooks) == 1
    hook["subscriptions"] = ["message_created"]
    assert "repaired" in setup(settings, store, PUBLIC + "/")
    assert len(fake.webhooks) == 1 and len(hook["subscriptions"]) == 3


def test_setup_says_when_chatwoot_does_not_sign(
    make_settings: Callable[..., Settings], store: Store, fake: FakeChatwoot
) -> None:
    fake.signs = False
    assert "does not sign" in setup(make_settings(), store, PUBLIC)


def test_setup_refuses_an_inbox_that_is_not_an_api_channel(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    with pytest.raises(PermanentError, match="API-channel"):
        setup(make_settings(CHATWOOT_INBOX_ID=str(INBOX_ID + 1)), store, PUBLIC)


def test_check(make_settings: Callable[..., Settings], store: Store, fake: FakeChatwoot) -> None:
    desk = ChatwootHelpdesk(make_settings(), store)
    (line,) = desk.check()
    assert "no Chatwoot webhook" in line and "polling every 30s" in line
    setup(make_settings(), store, PUBLIC)
    assert desk.check() == []
    assert (
        "API-channel"
        in ChatwootHelpdesk(make_settings(CHATWOOT_INBOX_ID=str(INBOX_ID + 1)), store).check()[0]
    )
    assert (
        "not reachable" in ChatwootHelpdesk(make_settings(CHATWOOT_INBOX_ID="99"), store).check()[0]
    )
    assert "account 8" in ChatwootHelpdesk(make_settings(CHATWOOT_ACCOUNT_ID="8"), store).check()[0]
    refused = ChatwootHelpdesk(
        make_settings(CHATWOOT_API_TOKEN="nope-0123456789abcdef"), store
    ).check()
    assert "refused CHATWOOT_API_TOKEN" in refused[0] and "nope-0123456789abcdef" not in refused[0]


def test_config_problems() -> None:
    assert len(config_problems({})) == 5
    good = {
        "BRIDGE_SECRET": "test-secret-0123456789",
        "CHATWOOT_URL": "https://chat.example.com",
        "CHATWOOT_ACCOUNT_ID": "1",
        "CHATWOOT_INBOX_ID": "2",
        "CHATWOOT_API_TOKEN": "tok-0123456789",
    }
    assert config_problems(good) == []
    for bad in (
        {"CHATWOOT_URL": "ftp://x"},
        {"CHATWOOT_ACCOUNT_ID": "one"},
        {"CHATWOOT_INBOX_ID": "-2"},
        {"CHATWOOT_WEBHOOK_TOKEN": "short"},
        {"CHATWOOT_POLL_INTERVAL": "2"},
        {"CHATWOOT_POLL_INTERVAL": "nan"},
        {"CHATWOOT_MAX_ATTACHMENT_BYTES": "99999999999"},
        {"CHATWOOT_RATE_LIMIT": "x"},
    ):
        assert len(config_problems({**good, **bad})) == 1, bad
    assert config_problems({**good, "CHATWOOT_POLL_INTERVAL": "0"}) == []


def test_the_cli_knows_the_command() -> None:
    from bridge.cli import build_parser

    args = build_parser().parse_args(["chatwoot", "setup", PUBLIC])
    assert args.public_url == PUBLIC and args.action == "setup"
