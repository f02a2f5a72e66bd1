"""The live process (bridge/helpdesks/inbox/live.py): the console's session cookie checked as
the web checks it, the event stream (parts at once, an event per change, keep-alives), CORS,
the bound on open streams, and a prompt exit on SIGTERM. A real redis-server; the server on a
free port in a thread."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import itsdangerous
import pytest
import requests

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.inbox import InboxHelpdesk, live
from bridge.helpdesks.inbox.agents import Agents
from bridge.helpdesks.inbox.login import COOKIE
from bridge.helpdesks.inbox.parts import parts
from bridge.runtime import Runtime
from bridge.storage import Store
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.support.redis_server import free_port
from tests.unit.conftest import Published
from tests.unit.test_console import PASSWORD, handoff, say, signed_in

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://bridge.example.com"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": "http://botpress.invalid/hook",
            "PUBLIC_BASE_URL": ORIGIN,
            "REDIS_URL": redis_url,
        }
    )


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store.from_settings(settings)


@pytest.fixture
def inbox(settings: Settings, store: Store) -> InboxHelpdesk:
    return InboxHelpdesk(settings, store)


@pytest.fixture
def server(settings: Settings) -> Iterator[live.LiveServer]:
    srv = live.serve(settings, "127.0.0.1", free_port(), max_streams=3)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    live.stop(srv)
    thread.join(5)
    srv.server_close()


@pytest.fixture
def cookie(settings: Settings, store: Store, inbox: InboxHelpdesk) -> str:
    """alice's session cookie, issued by the web's sign-in form."""
    rt = Runtime(settings, store, inbox, Published())
    client = create_app(runtime=rt).test_client()
    signed_in(client, store, "alice")
    found = client.get_cookie(COOKIE)
    assert found is not None
    return found.value


def port_of(srv: live.LiveServer) -> int:
    return int(srv.server_address[1])


def open_stream(
    srv: live.LiveServer, cookie: str, query: str = "view=open&c=", **headers: str
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(srv), timeout=5)
    conn.request(
        "GET", f"/console/events?{query}", headers={"Cookie": f"{COOKIE}={cookie}", **headers}
    )
    return conn.getresponse()


def next_event(resp: http.client.HTTPResponse) -> tuple[str, str]:
    """(event name or 'comment', data) of the next event; `retry:` lines skipped."""
    data: list[str] = []
    name = "message"
    comment = None
    while True:
        line = resp.fp.readline().decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if data:
                return name, "\n".join(data)
            if comment is not None:
                return "comment", comment
            continue
        if line.startswith(":"):
            comment = line[1:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line.startswith("event:"):
            name = line[6:].strip()


def message(resp: http.client.HTTPResponse) -> dict[str, Any]:
    name, data = next_event(resp)
    assert name == "message", (name, data)
    return dict(json.loads(data))


# -- the cookie ---------------------------------------------------------------------------
def test_the_web_s_cookie_opens_the_stream_with_the_parts_at_once(
    server: live.LiveServer, cookie: str, inbox: InboxHelpdesk, store: Store
) -> None:
    conv = handoff(inbox, "c_one", title="Refund")
    resp = open_stream(server, cookie, "view=open&c=c_one")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    first = message(resp)
    # Exactly what /console/parts answers for the same console.
    expected = parts(store, "alice", "open", "c_one")
    assert first["v"] == expected["v"]
    assert first["queue"] == expected["queue"] and "Refund" in first["queue"]
    assert first["nav"] == expected["nav"]
    assert first["conversation"] == expected["conversation"] and "Hi" in first["conversation"]
    # A change to the open conversation: an event within a second, the conversation with it.
    t0 = time.monotonic()
    say(inbox, conv, "Anything yet?")
    second = message(resp)
    assert time.monotonic() - t0 < 1.0
    assert second["v"] > first["v"] and "Anything yet?" in second["conversation"]
    # A change elsewhere: the queue moves, the open conversation is not sent again.
    handoff(inbox, "c_two", title="Lost parcel")
    third = message(resp)
    assert "Lost parcel" in third["queue"] and "conversation" not in third
    resp.close()


@pytest.mark.parametrize("how", ["none", "forged", "expired", "old password", "garbage"])
def test_a_bad_session_gets_401(
    server: live.LiveServer,
    cookie: str,
    settings: Settings,
    store: Store,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = cookie
    if how == "none":
        value = ""
    elif how == "garbage":
        value = "not-a-cookie"
    elif how == "forged":
        other = Settings.from_env({**settings.environ, "BRIDGE_SECRET": "another-secret-987654321"})
        value = live.Sessions(other).serializer.dumps({"agent": "alice", "v": 1})
    elif how == "expired":
        past = int(time.time()) - 13 * 3600  # the session lasts 12 hours
        monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: past)
        value = live.Sessions(settings).serializer.dumps({"agent": "alice", "v": 1})
        monkeypatch.undo()
    else:
        Agents(store).set_password("alice", "another long password")
    resp = open_stream(server, value)
    assert resp.status == 401
    assert json.loads(resp.read()) == {"error": "sign in at /console/login"}


def test_a_cookie_signed_before_a_secret_rotation_still_works(
    settings: Settings, server: live.LiveServer, store: Store
) -> None:
    Agents(store).add("bob", PASSWORD)
    version = Agents(store).version("bob")
    old = live.Sessions(settings).serializer.dumps({"agent": "bob", "v": version})
    rotated = Settings.from_env(
        {
            **settings.environ,
            "BRIDGE_SECRET": "rotated-secret-0123456789",
            "BRIDGE_SECRET_PREVIOUS": SECRET,
        }
    )
    assert live.Sessions(rotated).claim(f"{COOKIE}={old}") == ("bob", version)
    assert live.Sessions(rotated).claim(f"{COOKIE}={old}x") is None


# -- the stream ---------------------------------------------------------------------------
def test_keep_alive_comments_when_nothing_changes(
    server: live.LiveServer, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "KEEPALIVE_S", 0.3)
    resp = open_stream(server, cookie)
    message(resp)
    t0 = time.monotonic()
    assert next_event(resp) == ("comment", "keep-alive")
    assert 0.2 < time.monotonic() - t0 < 2
    resp.close()


def test_streams_are_bounded(
    server: live.LiveServer, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "KEEPALIVE_S", 0.1)  # a gone console is noticed at a write
    streams = [open_stream(server, cookie) for _ in range(3)]
    for s in streams:
        message(s)
    refused = open_stream(server, cookie)
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
    streams[0].close()
    deadline = time.monotonic() + 5
    while server.streams >= 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    again = open_stream(server, cookie)
    assert again.status == 200
    for s in [*streams[1:], again]:
        s.close()


def test_a_slow_reader_does_not_hold_the_others(
    server: live.LiveServer, cookie: str, inbox: InboxHelpdesk
) -> None:
    conv = handoff(inbox, "c_slow")
    stalled = open_stream(server, cookie, "view=open&c=c_slow")  # never read again
    reader = open_stream(server, cookie, "view=open&c=c_slow")
    message(reader)
    for i in range(20):
        say(inbox, conv, "x" * 20000 + str(i))
        t0 = time.monotonic()
        while message(reader)["v"] < inbox.desk.version():
            pass
        assert time.monotonic() - t0 < 1.0
    stalled.close()
    reader.close()


# -- CORS ---------------------------------------------------------------------------------
def test_cors_for_the_console_s_origin_only(server: live.LiveServer, cookie: str) -> None:
    resp = open_stream(server, cookie, Origin=ORIGIN)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in resp.headers["Vary"]
    resp.close()
    # Behind a proxy on the console's own origin the page's origin is this host.
    same = open_stream(server, cookie, Origin=f"http://127.0.0.1:{port_of(server)}")
    assert same.status == 200
    same.close()
    other = open_stream(server, cookie, Origin="https://evil.example.com")
    assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers
    # Without a cookie: 401, readable by the console's page (it falls back to polling).
    anon = open_stream(server, "", Origin=ORIGIN)
    assert anon.status == 401 and anon.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_other_paths_and_health(server: live.LiveServer) -> None:
    base = f"http://127.0.0.1:{port_of(server)}"
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"ok": True}
    assert requests.get(f"{base}/console/parts", timeout=5).status_code == 404


# -- the process ----------------------------------------------------------------------------
def test_the_procfile_process_logs_json_and_stops_promptly_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        **settings.environ,
        "LIVE_PORT": str(port),
    }
    from bridge import procfile

    log = (tmp_path / "live.log").open("wb")
    proc = procfile.spawn("live", env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        # An open stream does not hold the exit up.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - t0 < 3
    finally:
        procfile.stop([proc], timeout=5)
        log.close()
    lines = [json.loads(x) for x in (tmp_path / "live.log").read_text().splitlines() if x.strip()]
    assert any(x["msg"] == "live: listening" and x["port"] == port for x in lines)
    assert all(x["logger"].startswith("hitl") for x in lines)


# -- configuration and the console page ------------------------------------------------------
def test_live_settings() -> None:
    base = {"BRIDGE_SECRET": SECRET}
    s = Settings.from_env(base)
    assert (s.live_port, s.console_events_url) == (8001, "/console/events")
    assert Settings.from_env({**base, "PORT": "9000"}).live_port == 9001
    assert Settings.from_env({**base, "PORT": "9000", "LIVE_PORT": "7000"}).live_port == 7000
    assert Settings.from_env({**base, "CONSOLE_EVENTS_URL": "off"}).console_events_url == ""
    url = "http://localhost:8001/console/events"
    assert Settings.from_env({**base, "CONSOLE_EVENTS_URL": url}).console_events_url == url
    for bad in ({"LIVE_PORT": "x"}, {"LIVE_PORT": "70000"}, {"CONSOLE_EVENTS_URL": "ftp://a/b"}):
        with pytest.raises(Exception, match=next(iter(bad))):
            Settings.from_env({**base, **bad})


@pytest.mark.parametrize(
    ("events_url", "connect"),
    [
        ("", None),
        ("/console/events", None),
        ("http://localhost:8001/console/events", "connect-src 'self' http://localhost:8001"),
    ],
)
def test_the_console_page_names_its_stream(
    settings: Settings, store: Store, events_url: str, connect: str | None
) -> None:
    env = {**settings.environ, "CONSOLE_EVENTS_URL": events_url or "off"}
    configured = Settings.from_env(env)
    rt = Runtime(configured, store, InboxHelpdesk(configured, store), Published())
    client = create_app(runtime=rt).test_client()
    signed_in(client, store, "carol")
    page = client.get("/console/")
    assert f'data-events-url="{events_url}"'.encode() in page.data
    policy = page.headers["Content-Security-Policy"]
    if connect is None:
        assert "connect-src" not in policy  # default-src 'self'
    else:
        assert connect in policy


def test_a_client_that_never_finishes_its_request_is_dropped(
    server: live.LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No slow client served: request line and headers must come within the timeout."""
    import socket

    monkeypatch.setattr(live.Handler, "timeout", 0.5)
    sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=5)
    sock.sendall(b"GET /console/events HTTP/1.1\r\nHost: x\r\n")  # and then nothing
    t0 = time.monotonic()
    assert sock.recv(100) == b""  # closed by the server
    assert time.monotonic() - t0 < 3
    sock.close()
