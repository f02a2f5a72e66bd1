"""Fixtures for the Chatwoot adapter tests: a fake Chatwoot, a file server, a fakeredis Store."""

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
from bridge.helpdesks.chatwoot import ChatwootHelpdesk
from bridge.storage import Conversation, Store, User
from tests.support.fake_chatwoot import ACCOUNT_ID, INBOX_ID, FakeChatwoot
from tests.support.fake_zendesk import FileServer

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-secret-0123456789"
WEBHOOK_TOKEN = "cw-url-token-7d1e4b9a2c6f8e03"


@pytest.fixture
def recorded() -> Callable[[str], Any]:
    """Loads a recorded-style payload from fixtures/."""
    return lambda name: json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fake() -> Iterator[FakeChatwoot]:
    server = FakeChatwoot().start()
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


def chatwoot_env(fake: FakeChatwoot) -> dict[str, str]:
    return {
        "BRIDGE_SECRET": SECRET,
        "HELPDESK": "chatwoot",
        "HTTP_TIMEOUT_SECONDS": "5",
        "CHATWOOT_URL": fake.url,
        "CHATWOOT_ACCOUNT_ID": str(ACCOUNT_ID),
        "CHATWOOT_INBOX_ID": str(INBOX_ID),
        "CHATWOOT_API_TOKEN": fake.api_token,
        "CHATWOOT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }


@pytest.fixture
def make_settings(fake: FakeChatwoot, files: FileServer) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        # The local file server is private (127.0.0.1): downloads need it allow-listed.
        base = {**chatwoot_env(fake), "FETCH_ALLOW_HOSTS": urlsplit(files.url).netloc}
        base.update(env)
        return Settings.from_env({k: v for k, v in base.items() if v != ""})

    return build


@pytest.fixture
def cw(make_settings: Callable[..., Settings], store: Store) -> ChatwootHelpdesk:
    return ChatwootHelpdesk(make_settings(), store)


@pytest.fixture
def user(cw: ChatwootHelpdesk) -> User:
    u = User(id="u_Ada0123456789", name="Ada", email="ada@example.com")
    return replace(u, helpdesk_id=cw.upsert_user(u, maybe_applied=False))


@pytest.fixture
def conv() -> Conversation:
    return Conversation(
        id="c_TestConversation1",
        created_at=time.time(),
        title="Need help",
        description="The user asked for a human.",
    )


@pytest.fixture
def ticketed(cw: ChatwootHelpdesk, conv: Conversation, store: Store, user: User) -> Conversation:
    """`conv` with its Chatwoot conversation (requester known) and the core's mapping."""
    tid = cw.create_ticket(
        conv,
        TicketRequest(title=conv.title, description=conv.description, requester=user),
        idempotency_key="e_create1",
        maybe_applied=False,
    )
    store.redis.set(store.key("ticket", tid), conv.id)
    return replace(conv, ticket_id=tid, requester=user.id)
