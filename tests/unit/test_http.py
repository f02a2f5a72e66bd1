"""Outbound HTTP (bridge/http_client.py): one request per call, classified, kept connections."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
from typing import Any

import pytest

from bridge import http_client as http
from bridge.errors import PermanentError, TransientError
from tests.support.http_fake import FakeServer


class Recorder(FakeServer):
    """Answers each call with the next scripted (status, headers, body); records calls."""

    def __init__(self, *answers: tuple[int, dict[str, str], Any]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        self.calls.append((method, path, headers, body))
        return self.answers.pop(0) if self.answers else (200, {}, {"ok": True})


@pytest.fixture
def server() -> Any:
    s = Recorder()
    s.start()
    yield s
    s.stop()


def test_a_request_goes_out_once_with_its_body_headers_and_query(server: Recorder) -> None:
    client = http.Client(auth=("me@x.example/token", "t0k"))
    resp = http.request(
        client,
        "POST",
        f"{server.url}/a/b",
        what="t",
        timeout=5,
        params={"q": "x y", "n": 2},
        json={"text": "héllo"},
        headers={"X-Extra": "1"},
    )
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    assert resp.headers["content-type"] == "application/json"  # case-insensitive
    [(method, path, headers, body)] = server.calls
    assert (method, path) == ("POST", "/a/b?q=x+y&n=2")
    assert json.loads(body) == {"text": "héllo"}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == http.USER_AGENT
    assert headers["x-extra"] == "1"
    basic = base64.b64encode(b"me@x.example/token:t0k").decode()
    assert headers["authorization"] == f"Basic {basic}"


def test_statuses_are_classified_and_never_retried_or_followed(server: Recorder) -> None:
    server.answers = [
        (503, {"Retry-After": "7"}, {"error": "busy"}),
        (429, {}, {}),
        (408, {}, {}),
        (422, {}, {"error": "bad"}),
        (302, {"Location": "https://elsewhere.example/hook"}, b""),
    ]
    client = http.Client()

    def call() -> None:
        http.request(client, "POST", f"{server.url}/hook", what="Botpress x", timeout=5, json={})

    with pytest.raises(TransientError) as t:
        call()
    assert t.value.retry_after == 7 and t.value.status == 503 and '"busy"' in t.value.response
    with pytest.raises(TransientError):
        call()
    with pytest.raises(TransientError):
        call()
    with pytest.raises(PermanentError) as p:
        call()
    assert p.value.status == 422 and p.value.reason == "Botpress x: HTTP 422"
    # A webhook that moved is a setting to fix: never counted as delivered, never followed
    # (a POST turned into a GET elsewhere would lose the body).
    with pytest.raises(PermanentError) as p:
        call()
    assert "redirected to 'https://elsewhere.example/hook'" in p.value.reason
    assert len(server.calls) == 5  # one call each: the drain loop decides about resends


def test_keep_alive_connections_follow_the_sends_in_flight(server: Recorder) -> None:
    """Issue 16: a connection per send in flight stays open (requests kept 10 and opened a
    new one for every call above that)."""
    from bridge.config import Settings
    from workers.botpress import Botpress

    assert http.Client().pool_size == http.POOL_SIZE
    assert http.Client(256).pool_size == 256
    env = {"BRIDGE_SECRET": "Kx3_9vQ-Lm2pZr8T", "WORKER_CONCURRENCY": "200"}
    client = Botpress(Settings.from_env(env)).http
    assert client.pool_size == 200
    for _ in range(3):
        http.request(client, "GET", f"{server.url}/x", what="t", timeout=5)
    origin, _ = client.origin(server.url)
    assert len(origin.idle) == 1  # one connection, kept and reused


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "botpress.internal")
    monkeypatch.setenv("HTTP_PROXY", "http://user:p%40ss@proxy.internal:8080")
    client = http.Client()
    via, target = client.origin("https://api.example/x?a=1")
    assert via.proxy is not None and via.proxy[:2] == ("proxy.internal", 3128)
    assert target == "/x?a=1"  # tunnelled: the request line names the path only
    direct, _ = client.origin("https://botpress.internal/x")
    assert direct.proxy is None
    plain, target = client.origin("http://plain.example/x")
    assert plain.proxy is not None and plain.proxy[2]["Proxy-Authorization"] == (
        "Basic " + base64.b64encode(b"user:p@ss").decode()
    )
    assert target == "http://plain.example/x"  # through an HTTP proxy: the whole URL


def test_a_connection_the_server_closed_while_idle_is_not_used_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A keep-alive connection the server dropped (its idle timeout) is replaced before the
    request goes out: sent into it, the request's fate would be unknown."""
    monkeypatch.setattr(http, "CHECK_AFTER_IDLE", 0.0)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: list[int] = []

    def serve() -> None:
        for n in range(2):
            conn, _ = listener.accept()
            conn.recv(65536)
            body = b'{"n": %d}' % n
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            served.append(n)
            conn.close()  # keep-alive promised, then dropped while idle

    threading.Thread(target=serve, daemon=True).start()
    client = http.Client()
    url = f"http://127.0.0.1:{port}/hook"
    assert http.request(client, "POST", url, what="t", timeout=5, json={}).json() == {"n": 0}
    time.sleep(0.1)
    assert http.request(client, "POST", url, what="t", timeout=5, json={}).json() == {"n": 1}
    assert served == [0, 1]
    listener.close()


def test_gzip_answers_are_decoded(server: Recorder) -> None:
    server.answers = [(200, {"Content-Encoding": "gzip"}, gzip.compress(b'{"big": true}'))]
    resp = http.request(http.Client(), "GET", f"{server.url}/x", what="t", timeout=5)
    assert resp.json() == {"big": True}
    assert server.calls[0][2]["accept-encoding"] == "gzip"


def test_plain_http_through_a_proxy_names_the_whole_url_and_its_credentials(
    server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = server.url.replace("http://", "http://user:p%40ss@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    http.request(http.Client(), "GET", "http://plain.example/x?a=1", what="t", timeout=5)
    [(method, path, headers, _)] = server.calls
    assert (method, path) == ("GET", "http://plain.example/x?a=1")
    assert headers["host"] == "plain.example"
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()


def test_a_url_that_names_no_server_is_refused_before_anything_is_sent() -> None:
    for url in ("http://host.example:port/x", "ftp://host.example/x", "http:///x"):
        with pytest.raises(TransientError) as info:
            http.request(http.Client(), "POST", url, what="Botpress x", timeout=1)
        assert "not an http(s) URL" in info.value.reason and not info.value.maybe_applied
