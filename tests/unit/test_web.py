"""Every answer the ingress and the inbox API give, good input and bad."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.redis_client import connect
from bridge.runtime import Runtime
from bridge.storage import Store
from tests.conftest import ADMIN_TOKEN, SECRET, BridgeClient
from tests.support.redis_server import free_port
from tests.unit.conftest import Published, json_of


def assert_error(resp: Any, status: int, error: str) -> Any:
    assert resp.status_code == status, resp.data
    body = json_of(resp)
    assert set(body) == {"error", "details"} and error in body["error"], body
    return body


def test_ping(bp: BridgeClient) -> None:
    r = bp.call("ping", {"type": "ping"})
    assert r.status_code == 200 and r.get_json() == {"ok": True}


def test_create_user_answers_a_minted_id_and_queues_its_upsert(
    bp: BridgeClient, store: Store, published: Published
) -> None:
    r = bp.call(
        "createRemoteUser",
        {
            "type": "createRemoteUser",
            "payload": {
                "role": "end-user",
                "name": "Ada",
                "email": "ada@example.com",
                "pictureUrl": "https://p",
                "locale": "fr",
            },
        },
    )
    uid = json_of(r)["id"]
    user = store.user(uid)
    assert user and (user.name, user.email, user.extra) == (
        "Ada",
        "ada@example.com",
        {"locale": "fr"},
    )
    assert store.ready_streams() == [f"hu:{uid}"] and len(published.pumps) == 1


def test_create_conversation_keeps_history_and_marks_it_open(
    bp: BridgeClient, store: Store
) -> None:
    uid = bp.user()
    r = bp.call(
        "createRemoteConversation",
        {
            "type": "createRemoteConversation",
            "payload": {
                "title": "Help",
                "description": "d",
                "userId": uid,
                "messages": [
                    {"text": "hello", "author": "user", "timestamp": "2026-01-01T00:00:00Z"}
                ],
            },
        },
    )
    cid = json_of(r)["id"]
    assert store.open_conversations() == [cid]
    [event] = store.peek(f"hd:{cid}", 5)
    assert event.data["history"][0]["text"] == "hello" and event.data["user_id"] == uid


def test_messages_are_stored_with_their_inferred_type(bp: BridgeClient, store: Store) -> None:
    uid, cid = bp.user(), bp.conversation()
    bp.say(cid, uid, {"text": "hi", "userId": "bp-u"})
    bp.say(cid, "BOT", {"imageUrl": "https://x/y.png"})
    events = store.peek(f"hd:{cid}", 5)[1:]
    assert [(e.data["author"], e.data["type"]) for e in events] == [(uid, "text"), ("BOT", "image")]


def test_close_without_known_mapping_waits_for_resolution(bp: BridgeClient, store: Store) -> None:
    r = bp.call(
        "closeRemoteTicket",
        {"type": "closeRemoteTicket", "payload": {"botpressConversationId": "bp-c-1"}},
    )
    assert r.get_json() == {"ok": True}
    [event] = store.peek("rs:bp-c-1", 5)
    assert event.data == {"botpress_conversation_id": "bp-c-1"}


def test_close_with_a_cached_mapping_goes_straight_to_the_conversation(
    bp: BridgeClient, store: Store
) -> None:
    cid = bp.conversation()
    store.redis.set(store.key("bpconv", "bp-c-2"), cid)
    bp.call(
        "closeRemoteTicket",
        {"type": "closeRemoteTicket", "payload": {"botpressConversationId": "bp-c-2"}},
    )
    assert store.peek(f"hd:{cid}", 5)[-1].kind == "conversation.close"


# -- bad input -------------------------------------------------------------------------------
def test_wrong_or_missing_secret_is_404_and_stores_nothing(
    client: FlaskClient, store: Store
) -> None:
    body = json.dumps({"type": "createRemoteUser", "payload": {"name": "x"}})
    for path in (
        "/botpress/wrong-secret-000000000/createRemoteUser",
        "/botpress/createRemoteUser",
        f"/botpress/{SECRET}x/createRemoteUser",
    ):
        r = client.post(path, data=body, content_type="application/json")
        assert_error(r, 404, "not found")
    assert store.redis.dbsize() == 0


def test_unknown_route_is_404(bp: BridgeClient) -> None:
    assert_error(bp.call("deleteEverything", {"type": "deleteEverything"}), 404, "not found")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2"])
def test_malformed_json_is_400(bp: BridgeClient, raw: bytes) -> None:
    assert_error(bp.call("ping", raw), 400, "malformed JSON")


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("ping", {"type": "pong"}, "type"),
        ("ping", {}, "type"),
        ("ping", [], "_schema"),
        ("createRemoteUser", {"type": "createRemoteUser"}, "payload"),
        ("createRemoteUser", {"type": "createRemoteUser", "payload": {"name": 5}}, "payload"),
        (
            "createRemoteConversation",
            {"type": "createRemoteConversation", "payload": {"messages": "hi"}},
            "payload",
        ),
        (
            "botSendsMessage",
            {"type": "botSendsMessage", "remoteUserId": "BOT", "payload": {"text": "x"}},
            "remoteConversationId",
        ),
        (
            "botSendsMessage",
            {"type": "botSendsMessage", "remoteConversationId": "c", "remoteUserId": "BOT"},
            "payload",
        ),
        (
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": "c",
                "remoteUserId": "BOT",
                "payload": {"colour": "red"},
            },
            "payload",
        ),
        (
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": "c",
                "remoteUserId": "BOT",
                "payload": "text",
            },
            "payload",
        ),
        ("closeRemoteTicket", {"type": "closeRemoteTicket", "payload": {}}, "payload"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(
    bp: BridgeClient, store: Store, route: str, body: Any, field: str
) -> None:
    details = assert_error(bp.call(route, body), 400, "invalid request")["details"]
    assert field in details, details
    assert store.redis.dbsize() == 0


def test_unknown_conversation_or_user_is_404_and_stores_nothing(
    bp: BridgeClient, store: Store
) -> None:
    uid, cid = bp.user(), bp.conversation()
    before = store.length(f"hd:{cid}")
    body = assert_error(
        bp.call(
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": "c_nope",
                "remoteUserId": uid,
                "payload": {"text": "x"},
            },
        ),
        404,
        "unknown remoteConversationId",
    )
    assert body["details"] == {"remoteConversationId": "c_nope"}
    assert_error(
        bp.call(
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": cid,
                "remoteUserId": "u_nope",
                "payload": {"text": "x"},
            },
        ),
        404,
        "unknown remoteUserId",
    )
    assert store.length(f"hd:{cid}") == before and store.length("hd:c_nope") == 0


def test_body_over_one_mebibyte_is_413(bp: BridgeClient, store: Store) -> None:
    cid = bp.conversation()
    big = {
        "type": "botSendsMessage",
        "remoteConversationId": cid,
        "remoteUserId": "BOT",
        "payload": {"text": "x" * (1024 * 1024)},
    }
    assert_error(bp.call("botSendsMessage", big), 413, "too large")
    assert store.length(f"hd:{cid}") == 1  # only the creation


def test_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    assert_error(client.get(f"/botpress/{SECRET}/ping"), 405, "method not allowed")


def test_redis_down_is_503_never_a_false_200(settings: Settings) -> None:
    store = Store(connect(f"redis://127.0.0.1:{free_port()}/0"))
    rt = Runtime(settings, store, InboxHelpdesk(settings, store), Published())
    bp = BridgeClient(create_app(runtime=rt).test_client())
    for route, body in [
        ("ping", {"type": "ping"}),
        ("createRemoteUser", {"type": "createRemoteUser", "payload": {"name": "x"}}),
        ("createRemoteConversation", {"type": "createRemoteConversation"}),
        (
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": "c",
                "remoteUserId": "BOT",
                "payload": {"text": "x"},
            },
        ),
        (
            "closeRemoteTicket",
            {"type": "closeRemoteTicket", "payload": {"botpressConversationId": "b"}},
        ),
    ]:
        resp = bp.call(route, body)
        assert_error(resp, 503, "storage unavailable")
        assert resp.headers["Retry-After"]
    assert bp.client.get("/readyz").status_code == 503
    assert bp.client.get("/healthz").status_code == 200


# -- inbox agent API ----------------------------------------------------------------------------
def test_inbox_api_needs_the_admin_token(client: FlaskClient) -> None:
    assert_error(client.get("/inbox/api/conversations"), 401, "unauthorized")
    assert_error(
        client.get("/inbox/api/conversations", headers={"Authorization": "Bearer nope"}),
        401,
        "unauthorized",
    )
    ok = client.get("/inbox/api/conversations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200 and ok.get_json() == {"conversations": []}


def test_inbox_api_is_absent_without_an_admin_token(store: Store) -> None:
    settings = Settings.from_env({"BRIDGE_SECRET": SECRET})
    app = create_app(runtime=Runtime(settings, store, InboxHelpdesk(settings, store), Published()))
    assert_error(
        app.test_client().get("/inbox/api/conversations", headers={"Authorization": "Bearer x"}),
        404,
        "not found",
    )


def test_inbox_api_bad_input(bp: BridgeClient, runtime: Runtime) -> None:
    cid = bp.conversation()
    runtime.helpdesk.create_ticket(
        runtime.store.conversation(cid),
        _request(),
        idempotency_key="k",  # type: ignore[arg-type]
        maybe_applied=False,
    )
    assert_error(
        bp.agent("POST", "/conversations/c_nope/messages", {"agent": "a", "text": "t"}),
        404,
        "unknown conversation",
    )
    assert_error(bp.agent("POST", f"/conversations/{cid}/messages", {"agent": "a"}), 400, "invalid")
    assert_error(bp.agent("POST", f"/conversations/{cid}/messages", {"text": "t"}), 400, "invalid")
    assert_error(bp.agent("POST", f"/conversations/{cid}/assign", {"agent": ""}), 400, "invalid")
    assert_error(bp.agent("GET", "/conversations?status=maybe"), 400, "invalid")
    r = bp.client.post(
        f"/inbox/api/conversations/{cid}/messages",
        data=b"{oops",
        content_type="application/json",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert_error(r, 400, "malformed JSON")
    assert bp.agent("POST", f"/conversations/{cid}/close", {}).status_code == 200
    assert_error(
        bp.agent("POST", f"/conversations/{cid}/messages", {"agent": "a", "text": "t"}),
        409,
        "closed",
    )


def _request() -> Any:
    from bridge.helpdesks.base import TicketRequest

    return TicketRequest(title="t", description="")
