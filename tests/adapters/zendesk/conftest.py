"""Fixtures for the Zendesk adapter tests: a fake Zendesk, a file server, a fakeredis Store."""

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
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.storage import Conversation, Store
from tests.support.fake_zendesk import FakeZendesk, FileServer

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_SECRET = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0"


@pytest.fixture
def recorded() -> Callable[[str], Any]:
    """Loads a recorded-style payload from fixtures/."""
    return lambda name: json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fake() -> Iterator[FakeZendesk]:
    server = FakeZendesk().start()
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
def make_settings(fake: FakeZendesk, files: FileServer) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        base = {
            # The local file server is private (127.0.0.1): downloads need it allow-listed.
            "FETCH_ALLOW_HOSTS": urlsplit(files.url).netloc,
            "BRIDGE_SECRET": "test-secret-0123456789",
            "HELPDESK": "zendesk",
            "HTTP_TIMEOUT_SECONDS": "5",
            "ZENDESK_URL": fake.url,
            "ZENDESK_EMAIL": fake.email,
            "ZENDESK_API_TOKEN": fake.api_token,
            "ZENDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # The fake enforces no limit; test_zendesk_budget.py and the tests that set
            # their own ZENDESK_RATE_LIMIT cover the budget.
            "ZENDESK_RATE_LIMIT": "100000",
        }
        base.update(env)
        return Settings.from_env({k: v for k, v in base.items() if v != ""})

    return build


@pytest.fixture
def zd(make_settings: Callable[..., Settings], store: Store) -> ZendeskHelpdesk:
    return ZendeskHelpdesk(make_settings(), store)


@pytest.fixture
def conv() -> Conversation:
    return Conversation(
        id="c_TestConversation1",
        created_at=time.time(),
        title="Need help",
        description="The user asked for a human.",
    )


@pytest.fixture
def ticketed(zd: ZendeskHelpdesk, conv: Conversation, store: Store) -> Conversation:
    """`conv` with its Zendesk ticket created (and the core's ticket mapping written)."""
    from bridge.helpdesks.base import TicketRequest

    tid = zd.create_ticket(
        conv,
        TicketRequest(title=conv.title, description=conv.description),
        idempotency_key="e_create1",
        maybe_applied=False,
    )
    store.redis.set(store.key("ticket", tid), conv.id)
    return replace(conv, ticket_id=tid)
