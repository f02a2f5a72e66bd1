"""Guessing credentials (issue 14 §3): failed bearer tokens on /admin/api/ and /inbox/api/ are
counted per client address in Redis, and the 21st failure in a minute gets a 429 with
Retry-After, even with the right token; long but trivial secrets never start a process."""

from __future__ import annotations

import subprocess
import sys

import pytest
from flask.testing import FlaskClient

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from bridge.web.auth import MAX_FAILURES
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.unit.conftest import Published, json_of

ROUTES = ["/admin/api/dead-letters", "/inbox/api/conversations"]


def _client(store: Store, **env: str) -> FlaskClient:
    settings = Settings.from_env({"BRIDGE_SECRET": SECRET, "ADMIN_TOKEN": ADMIN_TOKEN, **env})
    rt = Runtime(settings, store, InboxHelpdesk(settings, store), Published())
    return create_app(runtime=rt).test_client()


def _get(client: FlaskClient, path: str, token: str, **environ: str) -> tuple[int, dict[str, str]]:
    r = client.get(path, headers={"Authorization": f"Bearer {token}"}, environ_base=dict(environ))
    return r.status_code, dict(r.headers)


def test_twenty_failures_a_minute_then_429_with_retry_after_even_for_the_right_token(
    store: Store,
) -> None:
    client = _client(store)
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for i in range(MAX_FAILURES):
        status, _ = _get(client, ROUTES[i % 2], f"guess-{i}", **attacker)
        assert status == 401
    status, headers = _get(client, ROUTES[0], ADMIN_TOKEN, **attacker)
    assert status == 429 and 0 < int(headers["Retry-After"]) <= 60
    r = client.get(ROUTES[1], headers={"Authorization": "Bearer x"}, environ_base=attacker)
    assert r.status_code == 429 and json_of(r)["error"] == "too many failed attempts"
    # Refused before the token is compared: the 429s do not extend the window.
    assert store.failures("bearer", "203.0.113.7")[0] == MAX_FAILURES
    # Another address is not held back by this one's failures.
    assert _get(client, ROUTES[0], ADMIN_TOKEN, REMOTE_ADDR="198.51.100.2")[0] == 200


def test_the_window_ends(store: Store) -> None:
    client = _client(store)
    for i in range(MAX_FAILURES):
        _get(client, ROUTES[0], f"guess-{i}", REMOTE_ADDR="203.0.113.8")
    assert _get(client, ROUTES[0], ADMIN_TOKEN, REMOTE_ADDR="203.0.113.8")[0] == 429
    store.redis.delete(store.key("fails", "bearer", "203.0.113.8"))  # a minute later
    assert _get(client, ROUTES[0], ADMIN_TOKEN, REMOTE_ADDR="203.0.113.8")[0] == 200


def test_behind_a_trusted_proxy_the_client_is_the_address_it_saw(store: Store) -> None:
    client = _client(store, PROXY_HOPS="1")
    proxy = "10.0.0.2"
    for i in range(MAX_FAILURES):
        # The attacker sends its own X-Forwarded-For; the proxy appends the real address.
        xff = f"192.0.2.{i}, 203.0.113.9"
        assert (
            _get(client, ROUTES[0], "guess", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=xff)[0] == 401
        )
    status, _ = _get(
        client,
        ROUTES[0],
        ADMIN_TOKEN,
        REMOTE_ADDR=proxy,
        HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9",
    )
    assert status == 429
    # Others behind the same proxy go on.
    ok = _get(
        client, ROUTES[0], ADMIN_TOKEN, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.3"
    )
    assert ok[0] == 200


def test_without_trusted_proxies_forwarded_headers_are_ignored(store: Store) -> None:
    client = _client(store)
    for i in range(MAX_FAILURES):
        _get(
            client,
            ROUTES[0],
            "guess",
            REMOTE_ADDR="203.0.113.10",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}",
        )
    assert _get(client, ROUTES[0], ADMIN_TOKEN, REMOTE_ADDR="203.0.113.10")[0] == 429


@pytest.mark.parametrize("name", ["BRIDGE_SECRET", "ADMIN_TOKEN"])
@pytest.mark.parametrize("value", ["x" * 32, "0123" * 8, "abcdefgh" * 3])
def test_a_process_refuses_to_start_on_a_trivial_secret(name: str, value: str) -> None:
    env = {"BRIDGE_SECRET": SECRET, "ADMIN_TOKEN": ADMIN_TOKEN, name: value, "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"configuration error: {name}" in done.stderr and "guessable" in done.stderr
