"""The inbox console (issue 15): sign-in, CSRF, queues, actions, files, live updates."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    HistoryMessage,
    OutboundMessage,
    TicketClosed,
    TicketRequest,
)
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.helpdesks.inbox.agents import Agents
from bridge.helpdesks.inbox.files import MAX_FILE_BYTES, Files
from bridge.runtime import Runtime
from bridge.storage import Conversation, Store, User
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.unit.conftest import Published, json_of

PASSWORD = "correct horse battery"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ADA = User("u_ada", name="Ada", email="ada@example.com", picture_url="https://example.com/a.png")


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": "http://botpress.invalid/hook",
            "PUBLIC_BASE_URL": "https://bridge.example.com",
        }
    )


@pytest.fixture
def inbox(runtime: Runtime) -> InboxHelpdesk:
    assert isinstance(runtime.helpdesk, InboxHelpdesk)
    return runtime.helpdesk


def handoff(
    inbox: InboxHelpdesk, cid: str, *, title: str = "Refund", text: str = "Hi"
) -> Conversation:
    inbox.upsert_user(ADA, maybe_applied=False)
    conv = Conversation(cid, created_at=time.time(), title=title, ticket_id=cid)
    request = TicketRequest(title, "Wants money back", [HistoryMessage("Hello bot", "Ada")], ADA)
    inbox.create_ticket(conv, request, idempotency_key=cid, maybe_applied=False)
    say(inbox, conv, text)
    return conv


def say(
    inbox: InboxHelpdesk, conv: Conversation, text: str, kind: str = "", /, **payload: Any
) -> None:
    """The end user says `text`, or sends a message of type `kind` with `payload`."""
    message = OutboundMessage(
        f"e{time.time_ns()}", kind or "text", payload or {"text": text}, time.time()
    )
    inbox.append_messages(conv, Author("end_user", ADA), [message], maybe_applied=False)


def csrf_of(page: bytes) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1).decode()


def signed_in(client: FlaskClient, store: Store, name: str = "alice") -> str:
    """Sign `name` in; returns the session's CSRF token."""
    if Agents(store).version(name) is None:
        Agents(store).add(name, PASSWORD)
    token = csrf_of(client.get("/console/login").data)
    resp = client.post("/console/login", data={"agent": name, "password": PASSWORD, "csrf": token})
    assert resp.status_code == 302, resp.data[:300]
    return csrf_of(client.get("/console/").data)


# -- signing in ---------------------------------------------------------------------------
def test_sign_in_sets_a_signed_http_only_lax_cookie(client: FlaskClient, store: Store) -> None:
    Agents(store).add("alice", PASSWORD)
    assert client.get("/console/").status_code == 302  # to the sign-in page
    token = csrf_of(client.get("/console/login").data)
    resp = client.post(
        "/console/login", data={"agent": "alice", "password": PASSWORD, "csrf": token}
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/console/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/console/")
    assert page.status_code == 200 and b"Sign out" in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_the_cookie_is_secure_behind_https(settings: Settings, store: Store) -> None:
    env = {**settings.environ, "PROXY_HOPS": "1"}
    rt = Runtime(Settings.from_env(env), store, InboxHelpdesk(settings, store), Published())
    client = create_app(runtime=rt).test_client()
    Agents(store).add("alice", PASSWORD)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    token = csrf_of(client.get("/console/login", headers=https).data)
    resp = client.post(
        "/console/login",
        data={"agent": "alice", "password": PASSWORD, "csrf": token},
        headers=https,
    )
    assert resp.status_code == 302 and "Secure" in resp.headers["Set-Cookie"]


def test_wrong_passwords_are_refused_then_throttled(client: FlaskClient, store: Store) -> None:
    Agents(store).add("alice", PASSWORD)
    token = csrf_of(client.get("/console/login").data)
    for _ in range(20):
        resp = client.post(
            "/console/login",
            data={"agent": "alice", "password": "guess-guess-guess", "csrf": token},
        )
        assert resp.status_code == 401 and b"wrong password" in resp.data
    # Over the limit even the right password waits: a guesser learns nothing.
    resp = client.post(
        "/console/login", data={"agent": "alice", "password": PASSWORD, "csrf": token}
    )
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert client.get("/console/").status_code == 302


def test_admin_token_is_not_an_agent_login(client: FlaskClient, store: Store) -> None:
    Agents(store).add("alice", PASSWORD)
    token = csrf_of(client.get("/console/login").data)
    for name in ("admin", "alice", ""):
        resp = client.post(
            "/console/login", data={"agent": name, "password": ADMIN_TOKEN, "csrf": token}
        )
        assert resp.status_code == 401
    # Nor does the bearer header open the console.
    resp = client.get("/console/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 302


def test_sign_in_needs_the_forms_csrf_token(client: FlaskClient, store: Store) -> None:
    Agents(store).add("alice", PASSWORD)
    client.get("/console/login")
    resp = client.post("/console/login", data={"agent": "alice", "password": PASSWORD})
    assert resp.status_code == 403
    assert client.get("/console/").status_code == 302


def test_sign_in_never_redirects_off_site(client: FlaskClient, store: Store) -> None:
    Agents(store).add("alice", PASSWORD)
    token = csrf_of(client.get("/console/login").data)
    for target in ("https://evil.example/", "//evil.example/console/", "/inbox/api/x"):
        client.post("/console/logout", data={"csrf": token})
        token = csrf_of(client.get("/console/login").data)
        resp = client.post(
            "/console/login",
            data={"agent": "alice", "password": PASSWORD, "csrf": token, "next": target},
        )
        assert resp.headers["Location"] == "/console/"


def test_a_password_change_ends_the_session(client: FlaskClient, store: Store) -> None:
    signed_in(client, store)
    Agents(store).set_password("alice", "a brand new password")
    assert client.get("/console/").status_code == 302
    assert client.get("/console/live").status_code in (200, 401)  # the cookie was dropped
    assert client.get("/console/parts").status_code == 401


def test_every_change_needs_the_sessions_csrf_token(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk, published: Published
) -> None:
    handoff(inbox, "c1")
    token = signed_in(client, store)
    before = inbox.desk.ticket("c1")
    for path, data in (
        ("/console/c/c1/reply", {"text": "hello"}),
        ("/console/c/c1/note", {"text": "psst"}),
        ("/console/c/c1/assign", {"assignee": "alice"}),
        ("/console/c/c1/close", {}),
        ("/console/replies", {"title": "Hi", "text": "Hello!"}),
        ("/console/logout", {}),
    ):
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data={**data, "csrf": "x" + token}).status_code == 403, path
        # A cross-site form carrying a stolen token still fails on its Origin.
        other = {"Origin": "https://evil.example"}
        assert client.post(path, data={**data, "csrf": token}, headers=other).status_code == 403
    assert inbox.desk.ticket("c1") == before and inbox.desk.saved_replies() == {}
    assert published.pumps == []


# -- queues ---------------------------------------------------------------------------------
def test_queues_show_title_user_last_message_waiting_and_unread(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    handoff(inbox, "c1", title="Refund", text="Where is my money?")
    handoff(inbox, "c2", title="Login", text="I cannot sign in")
    signed_in(client, store)
    Agents(store).add("bob", PASSWORD)
    page = client.get("/console/?view=unassigned").data.decode()
    for text in ("Refund", "Login", "Ada", "Where is my money?", "waiting"):
        assert text in page
    counts = inbox.desk.counts("alice")
    assert counts["unassigned"] == {"total": 2, "unread": 2}
    rows = {r["id"]: r for r in inbox.desk.queue("unassigned", "alice")}
    assert rows["c1"]["unread"] == 2  # the bot history and the user's message
    # Opening a conversation reads it; a new message makes it unread again.
    client.get("/console/?c=c1")
    assert {r["id"]: r["unread"] for r in inbox.desk.queue("open", "alice")} == {"c1": 0, "c2": 2}
    say(inbox, Conversation("c1", 0, ticket_id="c1"), "Hello?")
    assert {r["id"]: r["unread"] for r in inbox.desk.queue("open", "alice")}["c1"] == 1
    # Bob has read nothing.
    assert inbox.desk.counts("bob")["open"] == {"total": 2, "unread": 2}


def test_assign_transfer_and_close_move_between_queues(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk, published: Published
) -> None:
    conv = handoff(inbox, "c1")
    token = signed_in(client, store)
    Agents(store).add("bob", PASSWORD)
    assert client.post("/console/c/c1/assign", data={"csrf": token}).status_code == 302
    assert [r["id"] for r in inbox.desk.queue("mine", "alice")] == ["c1"]
    assert inbox.desk.queue("unassigned", "alice") == []
    resp = client.post("/console/c/c1/assign", data={"csrf": token, "assignee": "bob"})
    assert resp.status_code == 302
    assert inbox.desk.queue("mine", "alice") == [] and inbox.desk.queue("mine", "bob")
    resp = client.post("/console/c/c1/assign", data={"csrf": token, "assignee": "nobody"})
    assert resp.status_code == 400 and b"no agent nobody" in resp.data
    assert client.post("/console/c/c1/close", data={"csrf": token}).status_code == 302
    assert inbox.desk.queue("open", "alice") == []
    assert [r["id"] for r in inbox.desk.queue("closed", "alice")] == ["c1"]
    # What Botpress hears: alice, then bob, then the close.
    changes = inbox.changes_since(conv, "")
    assert changes.items == [
        AgentAssigned("alice", agent_name="alice"),
        AgentAssigned("bob", agent_name="bob"),
        TicketClosed(),
    ]
    assert len(published.pumps) >= 1  # each action rang the doorbell
    # A closed conversation takes nothing more.
    resp = client.post(
        "/console/c/c1/reply",
        data={"csrf": token, "text": "late"},
        headers={"Accept": "application/json"},
    )
    assert resp.status_code == 409


def test_notes_stay_in_the_inbox(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk, published: Published
) -> None:
    conv = handoff(inbox, "c1")
    token = signed_in(client, store)
    client.post("/console/c/c1/note", data={"csrf": token, "text": "VIP, be nice"})
    assert published.pumps == []  # nothing for Botpress: no doorbell
    client.post("/console/c/c1/reply", data={"csrf": token, "text": "Hello Ada"})
    page = client.get("/console/?c=c1").data.decode()
    assert "VIP, be nice" in page and "Internal note by alice" in page
    assert inbox.changes_since(conv, "").items == [
        AgentMessage("alice", "text", {"text": "Hello Ada"}, agent_name="alice")
    ]
    # An answer ends the wait.
    assert inbox.desk.ticket("c1")["waiting_since"] == 0  # type: ignore[index]


def test_conversation_renders_every_message_type_escaped(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    conv = handoff(inbox, "c1", text="<script>alert(1)</script>")
    say(inbox, conv, "", "image", imageUrl="https://example.com/cat.png")
    say(inbox, conv, "", "file", fileUrl="javascript:alert(1)", title="evil.pdf")
    say(inbox, conv, "", "choice", text="Pick", options=[{"label": "Yes", "value": "y"}])
    say(
        inbox,
        conv,
        "",
        "card",
        title="Plan A",
        subtitle="cheap",
        actions=[{"label": "Buy", "action": "postback", "value": "a"}],
    )
    say(inbox, conv, "", "carousel", items=[{"title": "Slide 1"}, {"title": "Slide 2"}])
    say(inbox, conv, "", "location", latitude=48.85, longitude=2.35, title="Paris")
    say(inbox, conv, "", "bloc", items=[{"type": "text", "payload": {"text": "in a bloc"}}])
    signed_in(client, store)
    page = client.get("/console/?c=c1").data.decode()
    assert (
        "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    )
    assert '<img src="https://example.com/cat.png"' in page
    assert 'href="javascript:' not in page and "evil.pdf" in page
    for text in (
        "Pick",
        "Yes",
        "Plan A",
        "cheap",
        "Buy",
        "Slide 1",
        "Slide 2",
        "Paris",
        "in a bloc",
    ):
        assert text in page, text
    assert "mlat=48.85" in page
    # The profile: name, e-mail, picture, the ids Botpress knows.
    for text in ("ada@example.com", "u_ada", "https://example.com/a.png", "c1"):
        assert text in page


# -- files ----------------------------------------------------------------------------------
def test_a_picture_goes_as_an_image_message_at_a_signed_expiring_url(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk, settings: Settings
) -> None:
    conv = handoff(inbox, "c1")
    token = signed_in(client, store)
    resp = client.post(
        "/console/c/c1/reply",
        data={
            "csrf": token,
            "text": "Here it is",
            "file": (io.BytesIO(PNG), "shot.png"),
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302
    text, image = inbox.changes_since(conv, "").items
    assert text == AgentMessage("alice", "text", {"text": "Here it is"}, agent_name="alice")
    assert isinstance(image, AgentMessage) and image.message_type == "image"
    url = image.payload["imageUrl"]
    assert url.startswith("https://bridge.example.com/inbox/files/") and url.endswith("/shot.png")
    path = url.removeprefix("https://bridge.example.com")
    got = client.get(path)
    assert got.status_code == 200 and got.data == PNG and got.mimetype == "image/png"
    assert got.headers["Content-Disposition"].startswith("inline")
    # Forged, altered or expired links name nothing.
    fid, expires, sig = path.split("/")[3].split(".")
    other = "B" if fid[-1] != "B" else "C"
    for bad in (f"{fid}.{int(expires) + 1}.{sig}", f"{fid[:-1]}{other}.{expires}.{sig}", "x"):
        assert client.get(f"/inbox/files/{bad}/shot.png").status_code == 404
    assert Files(settings, store).get(f"{fid}.{expires}.{sig}") is not None
    store.redis.delete(store.key("adapter", "inbox", "file", fid))
    assert client.get(path).status_code == 404
    ttl_key = Files(settings, store).put(PNG, "b.png", "image/png", "alice").url
    assert ttl_key
    assert (
        0
        < store.redis.ttl(
            store.key("adapter", "inbox", "file", ttl_key.split("/")[-2].split(".")[0])
        )
        <= settings.console_file_ttl
    )


def test_other_files_are_downloads_and_never_run(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    conv = handoff(inbox, "c1")
    token = signed_in(client, store)
    html = b"<html><script>alert(document.cookie)</script></html>"
    client.post(
        "/console/c/c1/reply",
        data={"csrf": token, "file": (io.BytesIO(html), "page.html", "text/html")},
        content_type="multipart/form-data",
    )
    (sent,) = inbox.changes_since(conv, "").items
    assert isinstance(sent, AgentMessage) and sent.message_type == "file"
    got = client.get(sent.payload["fileUrl"].removeprefix("https://bridge.example.com"))
    assert got.mimetype == "application/octet-stream"
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert (
        got.headers["X-Content-Type-Options"] == "nosniff"
        and "sandbox" in got.headers["Content-Security-Policy"]
    )


def test_files_up_to_ten_mib_go_through(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    conv = handoff(inbox, "c1")
    token = signed_in(client, store)
    big = PNG + b"\x00" * (MAX_FILE_BYTES - len(PNG))  # more than the app's 1 MiB body cap
    resp = client.post(
        "/console/c/c1/reply",
        data={"csrf": token, "file": (io.BytesIO(big), "big.png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302
    (sent,) = inbox.changes_since(conv, "").items
    assert isinstance(sent, AgentMessage) and sent.message_type == "image"
    got = client.get(sent.payload["imageUrl"].removeprefix("https://bridge.example.com"))
    assert got.data == big


def test_files_over_ten_mib_are_refused(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    conv = handoff(inbox, "c1")
    token = signed_in(client, store)
    big = b"\x00" * (MAX_FILE_BYTES + 1)
    resp = client.post(
        "/console/c/c1/reply",
        data={"csrf": token, "file": (io.BytesIO(big), "big.bin")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 413
    assert inbox.changes_since(conv, "").items == []


def test_without_public_base_url_files_are_refused_with_the_reason(
    settings: Settings, store: Store
) -> None:
    env = {k: v for k, v in settings.environ.items() if k != "PUBLIC_BASE_URL"}
    s = Settings.from_env(env)
    inbox = InboxHelpdesk(s, store)
    client = create_app(runtime=Runtime(s, store, inbox, Published())).test_client()
    handoff(inbox, "c1")
    token = signed_in(client, store)
    assert b'type="file"' not in client.get("/console/?c=c1").data
    resp = client.post(
        "/console/c/c1/reply",
        data={"csrf": token, "file": (io.BytesIO(PNG), "a.png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400 and b"PUBLIC_BASE_URL" in resp.data


# -- live updates and saved replies ------------------------------------------------------------
def test_live_version_moves_with_every_change(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    assert client.get("/console/live").status_code == 401
    signed_in(client, store)
    v0 = json_of(client.get("/console/live"))["v"]
    conv = handoff(inbox, "c1")
    v1 = json_of(client.get("/console/live"))["v"]
    assert v1 > v0
    say(inbox, conv, "more")
    assert json_of(client.get("/console/live"))["v"] > v1
    parts = json_of(client.get("/console/parts?view=open&c=c1"))
    assert set(parts) == {"v", "nav", "queue", "conversation"}
    assert "more" in parts["conversation"] and "Refund" in parts["queue"]


def test_live_updates_redraw_the_conversation_only_when_it_changed(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    signed_in(client, store)
    c1, c2 = handoff(inbox, "c1"), handoff(inbox, "c2", title="Delivery")
    shown = json_of(client.get("/console/parts?view=open&c=c1"))
    assert "Hello bot" in shown["conversation"]
    say(inbox, c2, "elsewhere")
    later = json_of(client.get(f"/console/parts?view=open&c=c1&since={shown['v']}"))
    assert later["v"] > shown["v"] and later["conversation"] is None  # the page keeps its own
    assert "elsewhere" in later["queue"]
    say(inbox, c1, "here")
    again = json_of(client.get(f"/console/parts?view=open&c=c1&since={later['v']}"))
    assert "here" in again["conversation"] and "Hello bot" in again["conversation"]
    inbox.desk.act("c1", "note", "alice", text="a note")  # agents' changes count too
    noted = json_of(client.get(f"/console/parts?view=open&c=c1&since={again['v']}"))
    assert "a note" in noted["conversation"]
    # Reading it marked it seen, whether redrawn or not.
    say(inbox, c1, "unread?")
    json_of(client.get(f"/console/parts?view=open&c=c2&since={noted['v']}"))
    assert inbox.desk.counts("alice")["open"]["unread"] == 1
    json_of(client.get(f"/console/parts?view=open&c=c1&since={noted['v']}"))
    assert inbox.desk.counts("alice")["open"]["unread"] == 0


def test_live_answers_do_not_renew_the_cookie(client: FlaskClient, store: Store) -> None:
    signed_in(client, store)
    resp = client.get("/console/live")
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert "Set-Cookie" in client.get("/console/parts?view=open").headers


def test_saved_replies_are_shared_by_the_team(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk
) -> None:
    token = signed_in(client, store)
    client.post(
        "/console/replies",
        data={"csrf": token, "title": "Greeting", "text": "Hello! How can I help?"},
    )
    other = create_app(runtime=Runtime(inbox.settings, store, inbox, Published())).test_client()
    signed_in(other, store, "bob")
    handoff(inbox, "c1")
    page = other.get("/console/?c=c1").data.decode()
    assert "Greeting" in page and "Hello! How can I help?" in page
    client.post("/console/replies/delete", data={"csrf": token, "title": "Greeting"})
    assert inbox.desk.saved_replies() == {}
    resp = client.post(
        "/console/replies", data={"csrf": token, "title": "", "text": "x"}, follow_redirects=True
    )
    assert b"title" in resp.data


def test_the_bearer_api_keeps_working_and_takes_notes(
    client: FlaskClient, inbox: InboxHelpdesk
) -> None:
    conv = handoff(inbox, "c1")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    resp = client.post(
        "/inbox/api/conversations/c1/notes", json={"agent": "alice", "text": "psst"}, headers=auth
    )
    assert resp.status_code == 200
    resp = client.post(
        "/inbox/api/conversations/c1/assign",
        json={"agent": "alice", "assignee": "bob"},
        headers=auth,
    )
    assert resp.status_code == 200
    assert inbox.changes_since(conv, "").items == [AgentAssigned("bob", agent_name="bob")]
    assert (
        client.post(
            "/inbox/api/conversations/nope/notes", json={"agent": "a", "text": "x"}, headers=auth
        ).status_code
        == 404
    )


def test_the_console_is_only_the_inboxs(app: Flask) -> None:
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert "/console/login" in rules and "/inbox/files/<token>/<path:name>" in rules


def test_ids_from_a_request_name_a_ticket_or_an_agent_or_nothing(
    client: FlaskClient, store: Store, inbox: InboxHelpdesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN.md invariant 8: a path or form value is looked up only when it has the shape
    of what it names."""
    handoff(inbox, "c1")
    token = signed_in(client, store)
    looked_up: list[str] = []
    pipeline, hget = store.redis.pipeline, store.redis.hget

    def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
        looked_up.append("pipeline")
        return pipeline(*args, **kwargs)

    def counted_hget(*args: Any) -> Any:
        looked_up.append(args[1])
        return hget(*args)

    monkeypatch.setattr(store.redis, "pipeline", counted_pipeline)
    monkeypatch.setattr(store.redis, "hget", counted_hget)
    for bad in ("x" * 101, "c1:log", "../c1"):
        assert inbox.desk.ticket(bad) is None
    assert looked_up == []
    resp = client.post("/console/c/c1/assign", data={"csrf": token, "assignee": "Bob Smith!"})
    assert resp.status_code == 400
    assert looked_up == ["alice"]  # the session's own check, never the form's name
