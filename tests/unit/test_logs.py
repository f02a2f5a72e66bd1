"""Structured logs: one JSON line per event with its ids, never its text or a secret."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from bridge.config import Settings
from bridge.errors import PermanentError, TransientError
from bridge.logs import configure, secrets_of
from tests.conftest import ADMIN_TOKEN, SECRET, BridgeClient
from tests.support.scripted import helpdesk, make_ctx, open_conversation, say
from tests.unit.conftest import Published
from workers.drain import drain

TEXT = "my card number is 4242"


def lines(err: str) -> list[dict[str, Any]]:
    out = []
    for raw in err.splitlines():
        out.append(json.loads(raw))  # every line is one JSON object
    return out


def test_web_logs_one_line_per_accepted_event_with_ids_only(
    bp: BridgeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO", redact=[SECRET, ADMIN_TOKEN])
    capsys.readouterr()
    uid = bp.user(name="Ada Lovelace", email="ada@example.com")
    cid = bp.conversation(title="Refund for Ada", description=TEXT)
    bp.say(cid, uid, {"text": TEXT})
    err = capsys.readouterr().err
    accepted = [r for r in lines(err) if r["msg"] == "accepted"]
    assert [(r["kind"], r["route"]) for r in accepted] == [
        ("user.upsert", "createRemoteUser"),
        ("conversation.create", "createRemoteConversation"),
        ("message", "botSendsMessage"),
    ]
    assert all(r["event_id"].startswith("e_") and r["level"] == "info" for r in accepted)
    assert accepted[2]["conversation"] == cid and accepted[2]["direction"] == "to_helpdesk"
    for secret in (TEXT, "4242", "Ada", "ada@example.com", "Refund", SECRET, ADMIN_TOKEN):
        assert secret not in err


def test_worker_logs_every_outcome_with_conversation_event_direction_attempt(
    settings: Settings, store: Any, published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = make_ctx(settings, store, published)
    configure("INFO", redact=secrets_of(settings))
    stream = open_conversation(ctx)
    helpdesk(ctx).failures = [TransientError("HTTP 503")]
    capsys.readouterr()
    drain(ctx, stream)  # the creation: retry
    store.redis.hset(store.key("head", stream), "due", "0")
    drain(ctx, stream)  # the creation: delivered
    say(ctx, "c_1", "BOT", TEXT)
    say(ctx, "c_1", "BOT", TEXT)
    helpdesk(ctx).failures = [PermanentError("HTTP 422", response=f'{{"echo": "{TEXT}"}}')]
    drain(ctx, stream)  # the first message: dead-lettered; the second: delivered
    records = lines(capsys.readouterr().err)
    outcomes = [(r["outcome"], r["kind"], r["attempt"]) for r in records if "outcome" in r]
    assert outcomes == [
        ("retry", "conversation.create", 1),
        ("delivered", "conversation.create", 2),
        ("dead_lettered", "message", 1),
        ("delivered", "message", 1),
    ]
    for r in records:
        if "outcome" in r:
            assert r["conversation"] == "c_1" and r["direction"] == "to_helpdesk"
            assert r["event_id"].startswith("e_") and r["stream"] == stream
    assert TEXT not in json.dumps(records)


def test_configured_secrets_are_redacted_at_every_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": "https://webhook.botpress.cloud/wh-id-0123456789",
            "ZENDESK_API_TOKEN": "zd-token-abcdefgh",
            "REDIS_URL": "redis://:redis-password-123@localhost:6379/0",
        }
    )
    configure("INFO", redact=secrets_of(settings))
    log = logging.getLogger("hitl.test")
    log.warning(
        "failed calling https://webhook.botpress.cloud/wh-id-0123456789/message-from-agent "
        f"with {SECRET} {ADMIN_TOKEN} zd-token-abcdefgh redis://:redis-password-123@localhost"
    )
    err = capsys.readouterr().err
    for secret in (SECRET, ADMIN_TOKEN, "wh-id-0123456789", "zd-token-abcdefgh", "redis-password"):
        assert secret not in err
    assert err.count("[redacted]") == 5
