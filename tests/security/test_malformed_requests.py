"""Every malformed request is a 4xx, and nothing half-read is stored (issue 14 §4, §6).

The framing attacks go through the Procfile's real gunicorn (a malformed chunked body is
refused by gunicorn's own parser, deep inside `wsgi.input`); the rest through the app with
fakeredis, where each answer and each write can be checked."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from bridge import events as ev
from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.webhook import INVOCATION, SIGNATURE, TIMESTAMP, sign
from bridge.runtime import Runtime
from bridge.storage import Conversation, Store
from tests.conftest import ADMIN_TOKEN, SECRET, BridgeClient
from tests.support.processes import Process
from tests.unit.conftest import Published, json_of

WEBHOOK_SECRET = "d2ViaG9vay1zaWduaW5nLXNlY3JldA"
ZENDESK_ENV = {
    "HELPDESK": "zendesk",
    "ZENDESK_URL": "http://127.0.0.1:9",  # never called: only webhooks are tested here
    "ZENDESK_EMAIL": "bridge@example.com",
    "ZENDESK_API_TOKEN": "api-token-1234",
    "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


def exchange(base: str, request: bytes, *, half_close: bool = False) -> tuple[int, Any]:
    """Send raw bytes to the server at `base`; its status and JSON answer."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)  # the client gives up: no more body will come
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None


def _post(path: str, body: bytes, headers: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\n{headers}\r\n"
    ).encode() + body


_BAD_CHUNKS = [b"ZZ\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"-1\r\n{}\r\n0\r\n\r\n"]


@pytest.mark.integration
@pytest.mark.parametrize("chunks", _BAD_CHUNKS, ids=["size", "terminator", "negative"])
def test_a_malformed_chunked_body_is_a_400_on_every_route_that_reads_one(
    start_web: Callable[..., tuple[str, Process]], chunks: bytes
) -> None:
    base, _ = start_web(**ZENDESK_ENV)
    for path in ("/webhooks/zendesk", f"/botpress/{SECRET}/botSendsMessage"):
        status, answer = exchange(base, _post(path, chunks, "Transfer-Encoding: chunked\r\n"))
        assert status == 400, (path, answer)
        assert answer["error"] == "bad request" and "could not be read" in answer["details"]


@pytest.mark.integration
def test_a_body_shorter_than_its_content_length_is_refused_and_never_stored(
    start_web: Callable[..., tuple[str, Process]], redis_url: str
) -> None:
    base, _ = start_web()
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    bp = f"/botpress/{SECRET}"
    status, answer = exchange(
        base,
        _post(
            f"{bp}/createRemoteConversation",
            b'{"type":"createRemoteConversation"}',
            "Content-Length: 35\r\n",
        ),
    )
    assert status == 200
    cid = answer["id"]
    before = r.llen(f"hb:q:hd:{cid}")
    message = json.dumps(
        {
            "type": "botSendsMessage",
            "remoteConversationId": cid,
            "remoteUserId": "BOT",
            "payload": {"text": "sent once"},
        }
    ).encode()
    # A complete JSON document, but the client announced more and then gave up waiting.
    started = time.monotonic()
    status, answer = exchange(
        base,
        _post(f"{bp}/botSendsMessage", message, f"Content-Length: {len(message) + 40}\r\n"),
        half_close=True,
    )
    assert status == 400 and "Content-Length" in answer["details"], answer
    assert time.monotonic() - started < 5
    assert r.llen(f"hb:q:hd:{cid}") == before  # nothing stored: Botpress's retry is the one


# -- the same, in-process ----------------------------------------------------------------


def _zendesk_app(store: Store) -> tuple[Flask, Published]:
    settings = Settings.from_env(
        {"BRIDGE_SECRET": SECRET, "ADMIN_TOKEN": ADMIN_TOKEN, **ZENDESK_ENV}
    )
    published = Published()
    rt = Runtime(settings, store, ZendeskHelpdesk(settings, store), published)
    return create_app(runtime=rt), published


def _signed(body: bytes, stamp: str, invocation: str = "inv-1") -> dict[str, str]:
    return {
        SIGNATURE: sign(WEBHOOK_SECRET, stamp, body),
        TIMESTAMP: stamp,
        INVOCATION: invocation,
        "Content-Type": "application/json",
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture
def zendesk_client(store: Store) -> FlaskClient:
    store.create_conversation(
        Conversation("c_1", time.time(), ticket_id="35436"),
        ev.Event(ev.CONVERSATION_CREATE, "hd:c_1", {}),
    )
    store.redis.set(store.key("ticket", "35436"), "c_1")
    return _zendesk_app(store)[0].test_client()


@pytest.mark.parametrize(
    "ticket_id",
    ["²", "١٢", "1" * 5000, 2**63, str(2**63), -1, 0, "0x10", " 12 3", 1e3, None, [1]],
    ids=lambda v: repr(v)[:12],
)
def test_a_signed_webhook_naming_no_real_ticket_id_is_a_400(
    zendesk_client: FlaskClient, ticket_id: Any
) -> None:
    body = json.dumps({"ticket_id": ticket_id}).encode()
    r = zendesk_client.post("/webhooks/zendesk", data=body, headers=_signed(body, _now()))
    assert r.status_code == 400, r.data
    assert json_of(r)["error"] == "webhook rejected"


def test_a_signed_webhook_nested_a_thousand_deep_is_a_400(zendesk_client: FlaskClient) -> None:
    body = b'{"ticket_id": 35436, "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    r = zendesk_client.post("/webhooks/zendesk", data=body, headers=_signed(body, _now()))
    assert r.status_code == 400, r.data


@pytest.mark.parametrize(
    "stamp",
    [
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "1e309",
        "2024-05-01T12:00:00",
        "",
        "now",
        "\uff11\uff17\uff11\uff14\uff15\uff16\uff14\uff18\uff10\uff10",
    ],
)
def test_a_timestamp_that_is_not_a_finite_zoned_time_is_refused(
    zendesk_client: FlaskClient, stamp: str
) -> None:
    body = b'{"ticket_id": 35436}'
    r = zendesk_client.post("/webhooks/zendesk", data=body, headers=_signed(body, stamp))
    assert r.status_code == 401, (stamp, r.data)


def test_a_zoneless_time_is_refused_even_when_it_is_now(zendesk_client: FlaskClient) -> None:
    body = b'{"ticket_id": 35436}'
    zoneless = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    assert (
        zendesk_client.post(
            "/webhooks/zendesk", data=body, headers=_signed(body, zoneless + "Z")
        ).status_code
        == 200
    )
    r = zendesk_client.post("/webhooks/zendesk", data=body, headers=_signed(body, zoneless))
    assert r.status_code == 401 and "time zone" in json_of(r)["details"]


def test_a_repeated_invocation_rings_once_within_ten_minutes(store: Store) -> None:
    app, _ = _zendesk_app(store)
    client = app.test_client()
    store.create_conversation(
        Conversation("c_1", time.time(), ticket_id="35436"),
        ev.Event(ev.CONVERSATION_CREATE, "hd:c_1", {}),
    )
    store.redis.set(store.key("ticket", "35436"), "c_1")
    body = b'{"ticket_id": 35436}'
    first = client.post("/webhooks/zendesk", data=body, headers=_signed(body, _now(), "inv-7"))
    assert json_of(first) == {"ok": True, "rung": ["c_1"], "ignored": []}
    again = client.post("/webhooks/zendesk", data=body, headers=_signed(body, _now(), "inv-7"))
    assert again.status_code == 200 and json_of(again)["duplicate"] is True
    assert store.length("in:c_1") == 1
    assert 590 < store.redis.ttl(store.key("webhook", "zendesk", "inv-7")) <= 600
    # Another invocation (a later change of the same ticket) rings again.
    other = client.post("/webhooks/zendesk", data=body, headers=_signed(body, _now(), "inv-8"))
    assert json_of(other)["rung"] == ["c_1"] and store.length("in:c_1") == 2
    # A forged request cannot use up an invocation id: it is refused before it is looked at.
    forged = {**_signed(body, _now(), "inv-9"), SIGNATURE: sign("wrong", _now(), body)}
    assert client.post("/webhooks/zendesk", data=body, headers=forged).status_code == 401
    assert not store.webhook_seen("zendesk", "inv-9")


def test_json_nested_a_thousand_deep_is_a_400_on_the_agent_api(bp: BridgeClient) -> None:
    cid = bp.conversation()
    deep = b'{"agent": "alice", "text": "hi", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    r = bp.client.post(
        f"/inbox/api/conversations/{cid}/messages",
        data=deep,
        content_type="application/json",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert r.status_code == 400 and json_of(r)["error"] == "malformed JSON"
    r = bp.call(
        "botSendsMessage", b'{"type": "botSendsMessage", "x": ' + b"[" * 900 + b"]" * 900 + b"}"
    )
    assert r.status_code == 400
