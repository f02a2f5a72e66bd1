"""Fast fixtures: fakeredis storage and a publisher that records instead of sending."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from tests.conftest import ADMIN_TOKEN, SECRET, BridgeClient
from tests.support.scripted import make_ctx
from workers.context import Context


class Published(list[tuple[str, float]]):
    """Records the tasks a Runtime starts: drains as (stream, countdown), pumps by id."""

    def __init__(self) -> None:
        super().__init__()
        self.pumps: list[str] = []

    def drain(self, stream: str, countdown: float) -> None:
        self.append((stream, countdown))

    def pump(self, pump_id: str) -> None:
        self.pumps.append(pump_id)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": "http://botpress.invalid/hook",
        }
    )


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(decode_responses=True))


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def runtime(settings: Settings, store: Store, published: Published) -> Runtime:
    return Runtime(settings, store, InboxHelpdesk(settings, store), published)


@pytest.fixture
def ctx(settings: Settings, store: Store, published: Published) -> Context:
    """A worker's context on the same (fake) Redis, with a scripted helpdesk and Botpress."""
    return make_ctx(settings, store, published)


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return create_app(runtime=runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def bp(client: FlaskClient) -> BridgeClient:
    return BridgeClient(client)


def json_of(resp: Any) -> Any:
    body = resp.get_json()
    assert body is not None, f"not JSON: {resp.data[:200]!r}"
    return body
