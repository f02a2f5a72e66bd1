"""The Freshdesk adapter passes the conformance kit against the strict fake Freshdesk."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.config import Settings
from bridge.helpdesks.conformance import HelpdeskConformance
from tests.adapters.freshdesk.harness import FreshdeskHarness
from tests.support.fake_freshdesk import FakeFreshdesk


class TestFreshdeskConformance(HelpdeskConformance):
    @pytest.fixture
    def harness(
        self, fake: FakeFreshdesk, make_settings: Callable[..., Settings]
    ) -> FreshdeskHarness:
        env = {k: v for k, v in make_settings().environ.items() if k != "BRIDGE_SECRET"}
        return FreshdeskHarness(fake, env)
