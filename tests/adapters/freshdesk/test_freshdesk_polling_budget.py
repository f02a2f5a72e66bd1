"""Polling by `updated_since`, and the account's API budget shared by every process."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.storage import Conversation, Store
from tests.support.fake_freshdesk import FakeFreshdesk


def test_polling_rings_the_bridges_changed_tickets_only(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    assert fd.changed_tickets() is None  # the first poll rings every open conversation
    assert fd.changed_tickets() == [ticketed.ticket_id]  # updated since the cursor (overlap)
    bob = fake.add_agent("Bob")
    fake.agent_reply(ticketed.ticket_id, bob, "hi")
    changed = fd.changed_tickets()
    assert changed == [ticketed.ticket_id]
    [call, *_] = fake.calls("GET", "/api/v2/tickets")[-1:]
    assert call.query["order_by"] == "updated_at" and call.query["per_page"] == "100"


def test_a_429_pauses_a_poll_round_which_then_goes_on(
    make_settings: Any, store: Store, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    fd = FreshdeskHelpdesk(make_settings(FRESHDESK_RATE_LIMIT="6000"), store)
    assert fd.changed_tickets() is None
    fake.rate_limit(1, 1.0)
    time.sleep(1.0 - time.time() % 1.0 + 0.02)
    requests.get(f"{fake.url}/api/v2/agents/me", auth=(fake.api_key, "X"), timeout=5)
    started = time.monotonic()
    assert fd.changed_tickets() == [ticketed.ticket_id]
    assert time.monotonic() - started >= 0.5
    assert fake.limited >= 1


def test_every_process_spends_from_one_budget(
    make_settings: Any, store: Store, fake: FakeFreshdesk
) -> None:
    """FRESHDESK_RATE_LIMIT is the account's: two adapters (two workers) sharing the
    Redis space their requests out together."""
    settings = make_settings(FRESHDESK_RATE_LIMIT="600")  # one every 0.1 s, after a burst of 5
    a, b = FreshdeskHelpdesk(settings, store), FreshdeskHelpdesk(settings, store)
    started = time.monotonic()
    for _ in range(5):
        for fd in (a, b):
            fd.client.obj("GET", "/api/v2/agents/me", what="me")
    assert time.monotonic() - started >= 0.45
    assert len(fake.calls("GET", "/api/v2/agents/me")) == 10
    assert store.redis.exists("t:adapter:freshdesk:budget")


def test_a_429s_retry_after_holds_every_process(
    make_settings: Any, store: Store, fake: FakeFreshdesk
) -> None:
    from bridge.errors import TransientError

    settings = make_settings(FRESHDESK_RATE_LIMIT="6000")
    a, b = FreshdeskHelpdesk(settings, store), FreshdeskHelpdesk(settings, store)
    fake.fail_for(0.3, 429)  # with Retry-After: 1
    with pytest.raises(TransientError) as caught:
        a.client.obj("GET", "/api/v2/agents/me", what="me")
    assert caught.value.status == 429
    # The other process waits for Freshdesk's Retry-After too, instead of hitting 429s.
    started = time.monotonic()
    b.client.obj("GET", "/api/v2/agents/me", what="me", patient=True)
    assert time.monotonic() - started >= 0.9


def test_a_spent_window_holds_every_process_before_any_429(
    make_settings: Any, store: Store, fake: FakeFreshdesk
) -> None:
    """X-RateLimit-Remaining down to the last few: every process waits, and Freshdesk
    never has to answer 429."""
    settings = make_settings(FRESHDESK_RATE_LIMIT="6000")
    a, b = FreshdeskHelpdesk(settings, store), FreshdeskHelpdesk(settings, store)
    fake.rate_limit(4, 1.0)
    time.sleep(1.0 - time.time() % 1.0 + 0.02)
    a.client.obj("GET", "/api/v2/agents/me", what="me")  # 3 left: hold
    started = time.monotonic()
    b.client.obj("GET", "/api/v2/agents/me", what="me", patient=True)
    assert time.monotonic() - started >= 0.1
    assert fake.limited == 0


def test_the_fakes_rate_limit_headers(fake: FakeFreshdesk) -> None:
    fake.rate_limit(2, 2.0)
    time.sleep(2.0 - time.time() % 2.0 + 0.02)
    auth = (fake.api_key, "X")
    got = [requests.get(f"{fake.url}/api/v2/agents/me", auth=auth, timeout=5) for _ in range(3)]
    assert [r.status_code for r in got] == [200, 200, 429]
    assert got[0].headers["X-RateLimit-Total"] == "60"
    assert [r.headers["X-RateLimit-Remaining"] for r in got] == ["1", "0", "0"]
    assert got[0].headers["X-RateLimit-Used-CurrentRequest"] == "1"
    assert 0 < float(got[2].headers["Retry-After"]) <= 2.0
    anonymous = requests.get(f"{fake.url}/api/v2/agents/me", timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "invalid_credentials"


def test_outages_are_transient(fd: FreshdeskHelpdesk, fake: FakeFreshdesk) -> None:
    from bridge.errors import TransientError

    fake.fail_for(0.5, 503)
    try:
        fd.check()
    finally:
        time.sleep(0.5)
    assert fd.check() == []
    fake.fail_for(0.3, 503)
    try:
        fd.client.obj("GET", "/api/v2/agents/me", what="me")
        raise AssertionError("expected a transient failure")
    except TransientError as exc:
        assert exc.status == 503
