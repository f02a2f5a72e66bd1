"""Fixtures shared by every test: a real redis-server, fakes for Botpress, Procfile processes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from bridge.app import create_app
from bridge.config import Settings
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_zendesk import FakeZendesk
from tests.support.processes import Process, start_worker
from tests.support.redis_server import RedisServer

SECRET = "test-secret-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def fake_botpress() -> Iterator[FakeBotpress]:
    server = FakeBotpress().start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    """The fake Zendesk account (tests/support/fake_zendesk.py)."""
    fake = FakeZendesk().start()
    yield fake
    fake.stop()


@pytest.fixture
def bridge_env(redis_url: str, fake_botpress: FakeBotpress) -> dict[str, str]:
    """The environment of every bridge process in a test: fast retries, test Redis, fakes."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "BOTPRESS", "ZENDESK"))
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": fake_botpress.webhook_url,
            "BOTPRESS_API_URL": fake_botpress.url,
            "HELPDESK": "inbox",
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_CAP_SECONDS": "2",
            "HTTP_TIMEOUT_SECONDS": "5",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            # The Procfile's commands (gunicorn, celery) come from the interpreter's environment.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


class BridgeClient:
    """The Flask test client speaking Botpress's side of the contract."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(self, route: str, body: Any, secret: str = SECRET) -> Any:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return self.client.post(
            f"/botpress/{secret}/{route}", data=data, content_type="application/json"
        )

    def user(self, name: str = "Ada", **extra: Any) -> str:
        r = self.call(
            "createRemoteUser",
            {"type": "createRemoteUser", "payload": {"role": "end-user", "name": name, **extra}},
        )
        assert r.status_code == 200, r.get_json()
        return str(r.get_json()["id"])

    def conversation(self, title: str = "Help", **payload: Any) -> str:
        r = self.call(
            "createRemoteConversation",
            {"type": "createRemoteConversation", "payload": {"title": title, **payload}},
        )
        assert r.status_code == 200, r.get_json()
        return str(r.get_json()["id"])

    def say(self, cid: str, uid: str, payload: dict[str, Any]) -> Any:
        r = self.call(
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": cid,
                "remoteUserId": uid,
                "payload": payload,
            },
        )
        assert r.status_code == 200, r.get_json()
        return r

    def agent(self, method: str, path: str, body: Any = None) -> Any:
        return self.client.open(
            f"/inbox/api{path}",
            method=method,
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )


@pytest.fixture
def bridge(bridge_env: dict[str, str]) -> BridgeClient:
    """The real app (real Redis, real Celery publisher) behind the Flask test client."""
    app = create_app(Settings.from_env(bridge_env))
    return BridgeClient(app.test_client())


@pytest.fixture
def workers(bridge_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start Procfile `worker` processes: `workers()` or `workers(env_overrides)`."""
    started: list[Process] = []

    def start(**overrides: str) -> Process:
        p = start_worker({**bridge_env, **overrides}, tmp_path, tag=str(len(started)))
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.stop(timeout=20)
