"""The Chatwoot adapter passes the conformance kit against the strict fake Chatwoot."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from bridge.helpdesks.chatwoot.state import AdapterState
from bridge.helpdesks.conformance import HelpdeskConformance
from bridge.storage import Store
from tests.adapters.chatwoot.conftest import WEBHOOK_TOKEN, chatwoot_env
from tests.adapters.chatwoot.harness import ChatwootHarness
from tests.support.fake_chatwoot import FakeChatwoot


class TestChatwootConformance(HelpdeskConformance):
    """Chatwoot that signs its webhooks: the secret `chatwoot setup` stored is checked."""

    @pytest.fixture
    def store(self) -> Store:
        return Store(fakeredis.FakeRedis(decode_responses=True))

    @pytest.fixture
    def harness(self, store: Store) -> Iterator[ChatwootHarness]:
        fake = FakeChatwoot().start()
        harness = ChatwootHarness(fake, chatwoot_env(fake), WEBHOOK_TOKEN)
        harness.secret = "cw-signing-secret-4e1b7c9d0a2f"
        AdapterState(store).set_webhook_secret(harness.secret)  # as `chatwoot setup` does
        yield harness
        fake.stop()


class TestUnsignedChatwootConformance(HelpdeskConformance):
    """An older Chatwoot that does not sign: the URL's secret token alone verifies."""

    @pytest.fixture
    def harness(self) -> Iterator[ChatwootHarness]:
        fake = FakeChatwoot(signs=False).start()
        yield ChatwootHarness(fake, chatwoot_env(fake), WEBHOOK_TOKEN)
        fake.stop()
