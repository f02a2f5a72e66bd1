"""The playground (bridge/playground/): its page API calls the bridge's five routes with the
integration's bodies, and it stands in for Botpress's webhook and API as the workers call them."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge import cli, procfile
from bridge import events as ev
from bridge import http_client as http
from bridge.app import create_app
from bridge.config import Settings, playground_token
from bridge.errors import PermanentError
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.playground.store import TTL
from bridge.runtime import Runtime
from bridge.storage import Store
from bridge.web.lane import MessageLane
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.unit.conftest import Published, json_of
from workers.botpress import Botpress

BASE = "http://bridge.test"
TOKEN = playground_token(SECRET)
HOOK = f"/playground/botpress/{TOKEN}/webhook"
API = f"/playground/botpress/{TOKEN}/api/v1/chat/conversations"
PAGE_API = "/playground/api/conversations"


@pytest.fixture
def pg_settings() -> Settings:
    return Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PLAYGROUND": "1",
            "PUBLIC_BASE_URL": BASE,
        }
    )


@pytest.fixture
def pg_app(pg_settings: Settings, store: Store, published: Published) -> Flask:
    runtime = Runtime(pg_settings, store, InboxHelpdesk(pg_settings, store), published)
    return create_app(runtime=runtime)


@pytest.fixture
def pg(pg_app: Flask) -> FlaskClient:
    return pg_app.test_client()


def post(client: FlaskClient, path: str, body: Any, **kwargs: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


def start(client: FlaskClient, **fields: str) -> dict[str, Any]:
    body = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "title": "Refund",
        "description": "Order 42 broke",
        **fields,
    }
    r = post(client, PAGE_API, body)
    assert r.status_code == 201, r.get_json()
    return dict(json_of(r))


def events_on(store: Store, stream: str) -> list[ev.Event]:
    return store.peek(stream, 100)


# -- on only with PLAYGROUND=1 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/playground/"),
        ("GET", "/playground/static/playground.js"),
        ("POST", PAGE_API),
        ("POST", f"{HOOK}/stop-hitl"),
        ("GET", f"{API}/pg_conv_x"),
    ],
)
def test_absent_unless_playground_is_on(client: FlaskClient, method: str, path: str) -> None:
    r = client.open(path, method=method, json={})
    assert r.status_code == 404


def test_playground_settings_point_botpress_here(pg_settings: Settings) -> None:
    assert pg_settings.botpress_webhook_url == f"{BASE}/playground/botpress/{TOKEN}/webhook"
    assert pg_settings.botpress_api_url == f"{BASE}/playground/botpress/{TOKEN}/api"


# -- the page ---------------------------------------------------------------------------------


def test_page_is_served_with_strict_security_headers(pg: FlaskClient) -> None:
    r = pg.get("/playground/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    html = r.get_data(as_text=True)
    # No inline script or handler: the CSP would block them.
    assert "<script>" not in html and not re.search(r"\son[a-z]+=", html)
    assert 'src="/playground/static/playground.js"' in html
    for field in ("name", "email", "title", "description", "message"):
        assert f'<label for="{field}">' in html
    assert 'aria-live="polite"' in html
    js = pg.get("/playground/static/playground.js")
    assert js.status_code == 200 and js.headers["X-Content-Type-Options"] == "nosniff"
    assert "innerHTML" not in js.get_data(as_text=True)
    js.close()


# -- the page's API: the integration's calls ---------------------------------------------------


def test_start_creates_the_user_and_conversation_with_the_bot_history(
    pg: FlaskClient, store: Store
) -> None:
    s = start(pg)
    assert s["id"].startswith("pg_conv_") and s["botpressUserId"].startswith("pg_user_")
    assert s["userId"].startswith("u_") and s["conversationId"].startswith("c_")
    user = store.user(s["userId"])
    assert user is not None and (user.name, user.email) == ("Ada Lovelace", "ada@example.com")
    conv = store.conversation(s["conversationId"])
    assert conv is not None and (conv.title, conv.description) == ("Refund", "Order 42 broke")
    [create] = events_on(store, ev.stream(ev.TO_HELPDESK, s["conversationId"]))
    assert create.kind == ev.CONVERSATION_CREATE
    assert [h["author"] for h in create.data["history"]] == ["bot", "user", "bot"]
    # Kept under the store's prefix, with a TTL.
    for key in (
        f"hb:playground:conv:{s['id']}",
        f"hb:playground:log:{s['id']}",
        f"hb:playground:bridge:{s['conversationId']}",
    ):
        assert 0 < store.redis.ttl(key) <= TTL, key
    shown = json_of(pg.get(f"{PAGE_API}/{s['id']}"))
    assert [e["route"] for e in shown["entries"]] == [
        "createRemoteUser",
        "createRemoteConversation",
    ]
    assert shown["entries"][0]["body"] == {
        "type": "createRemoteUser",
        "payload": {"role": "end-user", "name": "Ada Lovelace", "email": "ada@example.com"},
    }
    assert shown["next"] == 2 and shown["ended"] == ""
    assert json_of(pg.get(f"{PAGE_API}/{s['id']}?after=2"))["entries"] == []


def test_typed_messages_go_as_botsendsmessage_from_the_user(
    pg: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = start(pg)
    usual = MessageLane._usual
    seen: list[bytes] = []

    def spy(raw: bytes) -> Any:
        seen.append(raw)
        return usual(raw)

    monkeypatch.setattr(MessageLane, "_usual", staticmethod(spy))
    r = post(pg, f"{PAGE_API}/{s['id']}/messages", {"text": "  Hello there  "})
    assert r.status_code == 200 and json_of(r) == {"n": 3}
    assert len(seen) == 1  # through the app's whole stack: the express lane took it
    msg = events_on(store, ev.stream(ev.TO_HELPDESK, s["conversationId"]))[-1]
    assert msg.kind == ev.MESSAGE and msg.data["author"] == s["userId"]
    assert msg.data["payload"] == {"text": "Hello there", "userId": s["botpressUserId"]}
    [entry] = json_of(pg.get(f"{PAGE_API}/{s['id']}?after=2"))["entries"]
    assert entry["body"] == {
        "type": "botSendsMessage",
        "remoteConversationId": s["conversationId"],
        "remoteUserId": s["userId"],
        "payload": {"text": "Hello there", "userId": s["botpressUserId"]},
    }


@pytest.mark.parametrize("kind", ["image", "choice", "card", "location"])
def test_bot_messages_of_other_types(pg: FlaskClient, store: Store, kind: str) -> None:
    s = start(pg)
    r = post(pg, f"{PAGE_API}/{s['id']}/bot", {"kind": kind})
    assert r.status_code == 200, r.get_json()
    msg = events_on(store, ev.stream(ev.TO_HELPDESK, s["conversationId"]))[-1]
    assert (msg.data["author"], msg.data["type"]) == ("BOT", kind)
    if kind == "image":
        assert msg.data["payload"]["imageUrl"] == f"{BASE}/playground/static/sample.svg"


def test_end_sends_closeremoteticket_with_the_botpress_conversation_id(
    pg: FlaskClient, store: Store
) -> None:
    s = start(pg)
    assert post(pg, f"{PAGE_API}/{s['id']}/end", {}).status_code == 200
    [resolve] = events_on(store, ev.stream(ev.RESOLVE, s["id"]))
    assert resolve.kind == ev.CLOSE_RESOLVE
    assert resolve.data == {"botpress_conversation_id": s["id"]}
    assert json_of(pg.get(f"{PAGE_API}/{s['id']}"))["ended"] == "user"
    r = post(pg, f"{PAGE_API}/{s['id']}/messages", {"text": "still there?"})
    assert r.status_code == 409
    assert post(pg, f"{PAGE_API}/{s['id']}/end", {}).status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (PAGE_API, {"name": "  "}, "name"),
        (PAGE_API, {"name": "Ada", "email": 7}, "email"),
        (PAGE_API, {"name": "Ada", "title": "x" * 201}, "title"),
        ("/messages", {"text": ""}, "text"),
        ("/messages", {"text": ["hi"]}, "text"),
        ("/bot", {"kind": "hologram"}, "kind"),
    ],
)
def test_page_api_names_invalid_fields(
    pg: FlaskClient, path: str, body: dict[str, Any], field: str
) -> None:
    if not path.startswith("/playground"):
        path = f"{PAGE_API}/{start(pg)['id']}{path}"
    r = post(pg, path, body)
    assert r.status_code == 400
    assert field in json_of(r)["details"]


def test_page_api_posts_need_json_and_refuse_cross_site(pg: FlaskClient) -> None:
    # What a cross-site HTML form can send: refused, nothing created.
    r = pg.post(PAGE_API, data={"name": "Mallory"})
    assert r.status_code == 415
    r = pg.post(PAGE_API, data='{"name": "Mallory"}', content_type="text/plain")
    assert r.status_code == 415
    r = post(pg, PAGE_API, {"name": "Mallory"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert pg.post(PAGE_API, data="{", content_type="application/json").status_code == 400


def test_page_api_unknown_conversation(pg: FlaskClient) -> None:
    assert pg.get(f"{PAGE_API}/pg_conv_nope").status_code == 404
    assert post(pg, f"{PAGE_API}/pg_conv_nope/messages", {"text": "hi"}).status_code == 404
    s = start(pg)
    assert pg.get(f"{PAGE_API}/{s['id']}?after=-1").status_code == 400


# -- the webhook stand-in ------------------------------------------------------------------


def test_webhook_records_agent_events_for_the_page(pg: FlaskClient) -> None:
    s = start(pg)
    cid, agent = s["conversationId"], "agent:inbox:alice"
    bodies = [
        ("agent-assigned", {"remoteConversationId": cid, "remoteUserId": agent}),
        (
            "message-from-agent",
            {
                "remoteConversationId": cid,
                "remoteUserId": agent,
                "messageType": "text",
                "payload": {"text": "Hello Ada"},
            },
        ),
        ("stop-hitl", {"remoteConversationId": cid}),
    ]
    for route, body in bodies:
        r = post(pg, f"{HOOK}/{route}", body)
        assert r.status_code == 200, r.get_json()
    shown = json_of(pg.get(f"{PAGE_API}/{s['id']}?after=2"))
    assert [(e["direction"], e["route"], e["body"]) for e in shown["entries"]] == [
        ("received", route, body) for route, body in bodies
    ]
    assert shown["ended"] == "agent"


def test_webhook_wrong_token_or_route_is_404(pg: FlaskClient) -> None:
    s = start(pg)
    body = {"remoteConversationId": s["conversationId"]}
    assert (
        post(pg, f"/playground/botpress/{TOKEN[:-1]}x/webhook/stop-hitl", body).status_code == 404
    )
    assert post(pg, f"/playground/botpress/{SECRET}/webhook/stop-hitl", body).status_code == 404
    assert post(pg, f"{HOOK}/start-hitl", body).status_code == 404
    assert json_of(pg.get(f"{PAGE_API}/{s['id']}"))["ended"] == ""


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("stop-hitl", {}, "remoteConversationId"),
        ("stop-hitl", {"remoteConversationId": 5}, "remoteConversationId"),
        ("agent-assigned", {"remoteConversationId": "c_x"}, "remoteUserId"),
        (
            "message-from-agent",
            {"remoteConversationId": "c_x", "remoteUserId": "a", "payload": {"text": "x"}},
            "messageType",
        ),
        (
            "message-from-agent",
            {"remoteConversationId": "c_x", "remoteUserId": "a", "messageType": "hologram"},
            "messageType",
        ),
        (
            "message-from-agent",
            {"remoteConversationId": "c_x", "remoteUserId": "a", "messageType": "text"},
            "payload",
        ),
        (
            "message-from-agent",
            {
                "remoteConversationId": "c_x",
                "remoteUserId": "a",
                "messageType": "image",
                "payload": {"text": "x"},
            },
            "payload.imageUrl",
        ),
        (
            "message-from-agent",
            {
                "remoteConversationId": "c_x",
                "remoteUserId": "a",
                "messageType": "location",
                "payload": {"latitude": True, "longitude": 2},
            },
            "payload.latitude",
        ),
    ],
)
def test_webhook_validates_bodies_as_botpress_needs_them(
    pg: FlaskClient, route: str, body: dict[str, Any], field: str
) -> None:
    r = post(pg, f"{HOOK}/{route}", body)
    assert r.status_code == 400
    assert field in json_of(r)["details"]


def test_webhook_refuses_malformed_json_and_drops_unknown_conversations(pg: FlaskClient) -> None:
    r = pg.post(f"{HOOK}/stop-hitl", data="[1]", content_type="application/json")
    assert r.status_code == 400
    # Hand-offs the playground did not start are taken and dropped (never dead letters).
    r = post(pg, f"{HOOK}/stop-hitl", {"remoteConversationId": "c_unknown"})
    assert r.status_code == 200 and json_of(r)["ignored"] == "not a playground conversation"


# -- the API stand-in ------------------------------------------------------------------------


def auth(token: str = TOKEN, bot: str = "playground") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-bot-id": bot}


def test_api_answers_the_conversation_with_its_externalid_tag(pg: FlaskClient) -> None:
    s = start(pg)
    r = pg.get(f"{API}/{s['id']}", headers=auth())
    assert r.status_code == 200
    conv = json_of(r)["conversation"]
    assert conv["id"] == s["id"] and conv["channel"] == "playground"
    assert conv["tags"] == {f"{conv['integration']}:externalId": s["conversationId"]}


def test_api_checks_token_and_headers(pg: FlaskClient) -> None:
    s = start(pg)
    wrong = f"/playground/botpress/x{TOKEN}/api/v1/chat/conversations/{s['id']}"
    assert pg.get(wrong, headers=auth()).status_code == 404
    assert pg.get(f"{API}/{s['id']}").status_code == 401
    assert pg.get(f"{API}/{s['id']}", headers=auth(token="nope")).status_code == 401
    assert pg.get(f"{API}/{s['id']}", headers=auth(bot="other")).status_code == 401
    r = pg.get(f"{API}/{s['id']}", headers={"Authorization": TOKEN, "x-bot-id": "playground"})
    assert r.status_code == 401
    r = pg.get(f"{API}/pg_conv_unknown", headers=auth())
    assert r.status_code == 404 and json_of(r)["error"] == "unknown conversation"


# -- the workers' Botpress client, against the stand-ins --------------------------------------


def flask_transport(client: FlaskClient) -> http.Transport:
    """bridge/http_client.py -> the Flask test client: the real HTTP code against the app."""

    def send(
        method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> http.Response:
        parts = urlsplit(url)
        r = client.open(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            method=method,
            headers=headers,
            data=body,
        )
        return http.Response(r.status_code, dict(r.headers), r.data)

    return send


def test_the_workers_resolve_closes_and_deliver_through_the_stand_ins(
    pg: FlaskClient, pg_settings: Settings
) -> None:
    s = start(pg)
    botpress = Botpress(pg_settings)
    botpress.http.transport = flask_transport(pg)
    assert botpress.external_ids(s["id"]) == [s["conversationId"]]
    with pytest.raises(PermanentError):  # a 404: never guessed
        botpress.external_ids("pg_conv_unknown")
    stream = ev.stream(ev.TO_BOTPRESS, s["conversationId"])
    botpress.deliver(ev.Event(ev.AGENT_ASSIGNED, stream, {"agent_id": "alice"}))
    botpress.deliver(
        ev.Event(
            ev.AGENT_MESSAGE,
            stream,
            {
                "agent_id": "alice",
                "message_type": "image",
                "payload": {"imageUrl": "https://x/y.png"},
            },
        )
    )
    botpress.deliver(ev.Event(ev.HITL_STOP, stream, {}))
    entries = json_of(pg.get(f"{PAGE_API}/{s['id']}?after=2"))["entries"]
    assert [e["route"] for e in entries] == ["agent-assigned", "message-from-agent", "stop-hitl"]
    assert entries[0]["body"]["remoteUserId"] == "agent:inbox:alice"


# -- hitl-bridge dev --------------------------------------------------------------------------


@pytest.mark.parametrize("playground", [True, False])
def test_dev_prints_both_tabs_when_the_playground_is_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], playground: bool
) -> None:
    env = {"BRIDGE_SECRET": SECRET, "PORT": "8123"}
    if playground:
        env.update({"PLAYGROUND": "1", "PUBLIC_BASE_URL": "http://localhost:8123"})
    for name in ("PLAYGROUND", "PUBLIC_BASE_URL", "BOTPRESS_WEBHOOK_URL", "BOTPRESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(procfile, "run", lambda names, environ: 0)
    assert cli.main(["dev"]) == 0
    out = capsys.readouterr().out
    tabs = (
        "Open two tabs: agent console http://localhost:8123/console/ "
        "— end user http://localhost:8123/playground/"
    )
    assert (tabs in out) is playground
    assert f"http://localhost:8123/botpress/{SECRET}" in out


def test_a_call_the_bridge_refuses_is_shown_with_its_answer(pg: FlaskClient, store: Store) -> None:
    s = start(pg)
    store.redis.delete(store.conv_key(s["conversationId"]))  # as if the bridge forgot it
    r = post(pg, f"{PAGE_API}/{s['id']}/messages", {"text": "anyone?"})
    assert r.status_code == 502
    body = json_of(r)
    assert body["error"] == "the bridge refused botSendsMessage"
    assert body["details"]["status"] == 404
    assert body["details"]["answer"]["details"] == {"remoteConversationId": s["conversationId"]}
    assert len(json_of(pg.get(f"{PAGE_API}/{s['id']}"))["entries"]) == 2  # nothing logged
