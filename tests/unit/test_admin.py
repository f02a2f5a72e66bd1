"""The operator API (/admin/api) and the CLI's dlq and conversations commands."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge import cli
from bridge import events as ev
from bridge.app import create_app
from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.support.scripted import helpdesk, open_conversation, say
from tests.unit.conftest import Published, json_of
from workers.context import Context
from workers.drain import drain

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def api(client: FlaskClient, method: str, path: str, **kw: Any) -> Any:
    return client.open(f"/admin/api{path}", method=method, headers=AUTH, **kw)


def dead_lettered_conversation(ctx: Context, cid: str = "c_1") -> str:
    """A conversation whose ticket creation and two messages sit in the dead letters."""
    stream = open_conversation(ctx, cid)
    say(ctx, cid, "BOT", "first")
    say(ctx, cid, "BOT", "second")
    helpdesk(ctx).failures = [PermanentError("HTTP 422", response='{"error":"Invalid"}')]
    drain(ctx, stream)
    return stream


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dead-letters"),
        ("GET", "/dead-letters/d_x"),
        ("POST", "/dead-letters/d_x/replay"),
        ("DELETE", "/dead-letters/d_x"),
        ("GET", "/conversations/c_x"),
    ],
)
def test_every_route_needs_the_token(client: FlaskClient, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": ADMIN_TOKEN},
    ):
        r = client.open(f"/admin/api{path}", method=method, headers=headers)
        assert r.status_code == 401 and set(json_of(r)) == {"error", "details"}
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_the_api_does_not_exist_without_admin_token(store: Store, published: Published) -> None:
    settings = Settings.from_env({"BRIDGE_SECRET": SECRET})
    rt = Runtime(settings, store, InboxHelpdesk(settings, store), published)
    r = create_app(runtime=rt).test_client().get("/admin/api/dead-letters", headers=AUTH)
    assert r.status_code == 404 and json_of(r)["error"] == "not found"


def test_list_paginates_and_show_keeps_reason_response_attempts(
    ctx: Context, client: FlaskClient
) -> None:
    dead_lettered_conversation(ctx)
    page = json_of(api(client, "GET", "/dead-letters?limit=2"))
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next_offset"] == 2
    rest = json_of(api(client, "GET", "/dead-letters?limit=2&offset=2"))
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    kinds = [d["kind"] for d in page["items"] + rest["items"]]
    assert kinds == [ev.CONVERSATION_CREATE, ev.MESSAGE, ev.MESSAGE]
    first = json_of(api(client, "GET", f"/dead-letters/{page['items'][0]['id']}"))
    assert first["reason"] == "HTTP 422" and first["response"] == '{"error":"Invalid"}'
    assert first["attempts"] == 1 and first["event"]["kind"] == ev.CONVERSATION_CREATE
    bad = api(client, "GET", "/dead-letters?limit=zero")
    assert bad.status_code == 400 and json_of(bad)["error"] == "invalid query"
    assert api(client, "GET", "/dead-letters/d_nope").status_code == 404


def test_replay_restores_the_conversations_order(
    ctx: Context, client: FlaskClient, published: Published
) -> None:
    stream = dead_lettered_conversation(ctx)
    ids = [d["id"] for d in json_of(api(client, "GET", "/dead-letters"))["items"]]
    # Replayed newest first: each goes back to the head, so the original order returns.
    for dlq_id in reversed(ids):
        r = api(client, "POST", f"/dead-letters/{dlq_id}/replay")
        assert json_of(r) == {"ok": True, "id": dlq_id, "stream": stream}
    assert ctx.store.ready_streams()[-1] == stream and published.pumps  # woken for a pump
    assert [e.kind for e in ctx.store.peek(stream, 10)] == [
        ev.CONVERSATION_CREATE,
        ev.MESSAGE,
        ev.MESSAGE,
    ]
    assert drain(ctx, stream) == 3
    assert helpdesk(ctx).calls[-2:] == [
        ("ticket", ("c_1", "Help", False)),
        ("messages", ["first", "second"]),
    ]
    assert json_of(api(client, "GET", "/dead-letters"))["total"] == 0
    assert api(client, "POST", f"/dead-letters/{ids[0]}/replay").status_code == 404


def test_replay_puts_the_event_ahead_of_what_arrived_since(
    ctx: Context, client: FlaskClient
) -> None:
    stream = open_conversation(ctx)
    drain(ctx, stream)
    say(ctx, "c_1", "BOT", "lost")
    helpdesk(ctx).failures = [PermanentError("HTTP 400")]
    drain(ctx, stream)
    say(ctx, "c_1", "BOT", "later")  # waits behind nothing: the lost one is set aside
    [dl] = json_of(api(client, "GET", "/dead-letters"))["items"]
    assert api(client, "POST", f"/dead-letters/{dl['id']}/replay").status_code == 200
    assert [e.data["payload"]["text"] for e in ctx.store.peek(stream, 5)] == ["lost", "later"]


def test_purge_removes_a_dead_letter(ctx: Context, client: FlaskClient) -> None:
    dead_lettered_conversation(ctx)
    dlq_id = json_of(api(client, "GET", "/dead-letters"))["items"][0]["id"]
    assert json_of(api(client, "DELETE", f"/dead-letters/{dlq_id}")) == {"ok": True, "id": dlq_id}
    assert api(client, "DELETE", f"/dead-letters/{dlq_id}").status_code == 404
    assert json_of(api(client, "GET", "/dead-letters"))["total"] == 2


def test_conversation_shows_mapping_history_waiting_and_dead_letters(
    ctx: Context, client: FlaskClient
) -> None:
    stream = open_conversation(ctx)
    say(ctx, "c_1", "BOT", "hello")
    drain(ctx, stream)
    ctx.store.redis.hset(ctx.store.conv_key("c_1"), "botpress_conversation_id", "bp-9")
    say(ctx, "c_1", "BOT", "stuck")
    helpdesk(ctx).failures = [PermanentError("HTTP 413")]
    drain(ctx, stream)
    say(ctx, "c_1", "BOT", "waiting")
    report = json_of(api(client, "GET", "/conversations/c_1"))
    assert report["mapping"] == {
        "conversation_id": "c_1",
        "helpdesk": "inbox",
        "ticket_id": "T-c_1",
        "requester": None,
        "requester_helpdesk_id": None,
        "botpress_conversation_id": "bp-9",
    }
    assert [(h["kind"], h["outcome"]) for h in report["history"]] == [
        (ev.CONVERSATION_CREATE, "delivered"),
        (ev.MESSAGE, "delivered"),
        (ev.MESSAGE, "dead_lettered"),
    ]
    [waiting] = report["waiting"]
    assert waiting["stream"] == stream and waiting["events"][0]["status"] == "waiting"
    [dl] = report["dead_letters"]
    assert dl["reason"] == "HTTP 413" and dl["kind"] == ev.MESSAGE
    assert "hello" not in json.dumps(report)  # delivery status, not content
    assert api(client, "GET", "/conversations/c_nope").status_code == 404


# -- the CLI: the same operations, the same output -----------------------------------------
@pytest.fixture
def run_cli(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    monkeypatch.setattr(cli, "_runtime", lambda args: runtime)

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(list(argv))
        return code, capsys.readouterr().out

    return run


def test_cli_dead_letters(ctx: Context, run_cli: Any, published: Published) -> None:
    stream = dead_lettered_conversation(ctx)
    code, out = run_cli("dlq", "list", "--limit", "2")
    assert code == 0 and out.count(stream) == 2 and "3 in all" in out
    code, out = run_cli("dlq", "list", "--json")
    letters = json.loads(out)
    assert [d["attempts"] for d in letters] == [1, 1, 1]
    code, out = run_cli("dlq", "show", letters[0]["id"])
    shown = json.loads(out)
    assert shown["reason"] == "HTTP 422" and shown["response"] == '{"error":"Invalid"}'
    assert run_cli("dlq", "show", "d_nope")[0] == 1
    assert run_cli("dlq", "purge", letters[2]["id"])[0] == 0
    for d in reversed(letters[:2]):
        code, out = run_cli("dlq", "replay", d["id"])
        assert code == 0 and f"onto {stream}" in out
    assert ctx.store.ready_streams()[-1] == stream and published.pumps
    assert [e.kind for e in ctx.store.peek(stream, 5)] == [ev.CONVERSATION_CREATE, ev.MESSAGE]
    assert json.loads(run_cli("dlq", "list", "--json")[1]) == []


def test_cli_and_api_show_the_same_conversation(
    ctx: Context, run_cli: Any, client: FlaskClient
) -> None:
    dead_lettered_conversation(ctx)
    code, out = run_cli("conversations", "show", "c_1")
    assert code == 0
    assert json.loads(out) == json_of(api(client, "GET", "/conversations/c_1"))
    assert run_cli("conversations", "show", "c_nope")[0] == 1


def test_cli_replay_all_restores_each_conversations_order(
    ctx: Context, run_cli: Any, published: Published
) -> None:
    a = dead_lettered_conversation(ctx, "c_a")
    b = dead_lettered_conversation(ctx, "c_b")
    code, out = run_cli("dlq", "replay", "all")
    assert code == 0 and out.count("replayed") == 6
    for stream in (a, b):
        assert [e.kind for e in ctx.store.peek(stream, 5)] == [
            ev.CONVERSATION_CREATE,
            ev.MESSAGE,
            ev.MESSAGE,
        ]
        assert [e.data["payload"]["text"] for e in ctx.store.peek(stream, 5)[1:]] == [
            "first",
            "second",
        ]
