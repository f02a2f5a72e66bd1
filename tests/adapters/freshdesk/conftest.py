"""Fixtures for the Freshdesk adapter tests: a fake Freshdesk, a file server, a fakeredis Store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest

from bridge.config import Settings
from bridge.helpdesks.base import TicketRequest
from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.storage import Conversation, Store
from tests.support.fake_freshdesk import FakeFreshdesk
from tests.support.fake_zendesk import FileServer

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-secret-0123456789"


@pytest.fixture
def recorded() -> Callable[[str], Any]:
    """Loads a recorded-style payload from fixtures/."""
    return lambda name: json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fake() -> Iterator[FakeFreshdesk]:
    server = FakeFreshdesk().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(decode_responses=True), prefix="t")


@pytest.fixture
def make_settings(fake: FakeFreshdesk, files: FileServer) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        base = {
            # The local file server is private (127.0.0.1): downloads need it allow-listed.
            "FETCH_ALLOW_HOSTS": urlsplit(files.url).netloc,
            "BRIDGE_SECRET": SECRET,
            "HELPDESK": "freshdesk",
            "HTTP_TIMEOUT_SECONDS": "5",
            "FRESHDESK_URL": fake.url,
            "FRESHDESK_API_KEY": fake.api_key,
            # The fake enforces no limit unless a test sets one; the budget has its tests.
            "FRESHDESK_RATE_LIMIT": "100000",
        }
        base.update(env)
        return Settings.from_env({k: v for k, v in base.items() if v != ""})

    return build


@pytest.fixture
def fd(make_settings: Callable[..., Settings], store: Store) -> FreshdeskHelpdesk:
    return FreshdeskHelpdesk(make_settings(), store)


@pytest.fixture
def conv() -> Conversation:
    return Conversation(
        id="c_TestConversation1",
        created_at=time.time(),
        title="Need help",
        description="The user asked for a human.",
    )


@pytest.fixture
def ticketed(fd: FreshdeskHelpdesk, conv: Conversation, store: Store) -> Conversation:
    """`conv` with its Freshdesk ticket created (and the core's ticket mapping written)."""
    tid = fd.create_ticket(
        conv,
        TicketRequest(title=conv.title, description=conv.description),
        idempotency_key="e_create1",
        maybe_applied=False,
    )
    store.redis.set(store.key("ticket", tid), conv.id)
    return replace(conv, ticket_id=tid)
