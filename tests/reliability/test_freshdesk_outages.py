"""Freshdesk outages: the same scenarios as test_outages.py's Zendesk ones, against the fake
Freshdesk. 503s then timeouts, then Botpress's outage; and calls Freshdesk applied whose
answers were lost, which the bridge must not write twice (Freshdesk has no idempotency
keys: the adapter looks for what landed before writing again)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.conftest import SECRET
from tests.reliability.harness import Deployment, Load, judge, settle, wait_until
from tests.reliability.helpdesk import FreshdeskSide
from tests.reliability.test_outages import (
    APPLIED_CONVERSATIONS,
    APPLIED_MESSAGES,
    APPLIED_STALL,
    CATCH_UP,
    CONVERSATIONS,
    MESSAGES,
    OUTAGE,
    REPLY_EVERY,
    _botpress_outage,
    _botpress_outage_seen,
    _traffic_during,
)
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_freshdesk import FakeFreshdesk
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


@pytest.fixture
def side(redis_aof: RedisServer, freshdesk: FakeFreshdesk) -> FreshdeskSide:
    return FreshdeskSide(freshdesk, redis_aof.url, SECRET)


def _no_duplicate_tickets(side: FreshdeskSide, cids: list[str]) -> None:
    dups = side.duplicate_tickets(cids)
    assert not dups, f"conversations with more than one ticket: {dups}"


def test_freshdesk_503_then_timeouts_then_botpress_outage(
    side: FreshdeskSide,
    freshdesk: FakeFreshdesk,
    botpress: FakeBotpress,
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy(side, workers=2)
    load = Load(d.url, threads=CONVERSATIONS)
    cids = load.open_conversations(CONVERSATIONS)
    wait_until(lambda: side.tickets_ready(cids), 60, "every ticket")
    traffic = _traffic_during(load, cids, side, 2 * OUTAGE + CATCH_UP)
    time.sleep(2)
    side.fail_for(OUTAGE / 2, status=503)
    time.sleep(OUTAGE / 2)
    side.stall_for(OUTAGE / 2)
    time.sleep(OUTAGE / 2)
    wait_until(
        lambda: not judge(load.expected_messages(), side.delivered(cids)).missing,
        60,
        "the helpdesk backlog to drain",
        every=0.5,
    )
    _botpress_outage(botpress, OUTAGE)
    traffic.join(120)
    assert set(load.statuses()) == {200}, load.statuses()
    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), side.delivered(cids)), 90, "helpdesk"
    )
    to_botpress = settle(
        lambda: judge(load.expected_replies(), botpress.texts()), 90, "Botpress side"
    )
    faults = Counter(f["fault"] for f in freshdesk.faults)
    failed = _botpress_outage_seen(botpress, d)
    print(
        f"Freshdesk faults injected: {dict(faults)}; Botpress calls failed: {failed}\n"
        f"helpdesk: {to_helpdesk.summary()}\nbotpress: {to_botpress.summary()}"
    )
    assert faults[503] > 0 and faults["stalled"] > 0, faults
    reasons = {r.get("reason", "") for r in d.worker_log_lines()}
    for felt in ("HTTP 503", "timed out"):
        assert any(r.startswith("Freshdesk") and felt in r for r in reasons), (felt, reasons)
    for v in (to_helpdesk, to_botpress):
        assert not v.missing and not v.unexpected and not v.duplicates, v.summary()
        assert not v.disordered, list(v.disordered.items())[:2]
    assert to_helpdesk.delivered == CONVERSATIONS * MESSAGES
    assert to_botpress.delivered == CONVERSATIONS * MESSAGES // REPLY_EVERY
    _no_duplicate_tickets(side, cids)
    assert d.dead_letters() == 0


def test_freshdesk_applies_then_times_out(
    side: FreshdeskSide,
    freshdesk: FakeFreshdesk,
    botpress: FakeBotpress,
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy(side, workers=2)
    load = Load(d.url, threads=APPLIED_CONVERSATIONS)
    cids = load.open_conversations(APPLIED_CONVERSATIONS)
    wait_until(lambda: side.tickets_ready(cids), 60, "every ticket")
    pace = (APPLIED_STALL + 4) / APPLIED_MESSAGES
    traffic = threading.Thread(
        target=lambda: load.run(cids, APPLIED_MESSAGES, pace=pace), daemon=True
    )
    traffic.start()
    time.sleep(2)
    side.stall_for(APPLIED_STALL, apply=True)
    time.sleep(APPLIED_STALL)
    traffic.join(120)
    assert set(load.statuses()) == {200}, load.statuses()
    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), side.delivered(cids)), 90, "helpdesk"
    )
    applied = [f for f in freshdesk.faults if f["fault"] == "stalled after applying"]
    lost_notes = [
        f
        for f in applied
        if f["method"] == "POST" and f["path"].endswith("/notes") and f.get("status") == 201
    ]
    print(
        f"{len(applied)} calls applied with their answer lost ({len(lost_notes)} notes)"
        f"\nhelpdesk: {to_helpdesk.summary()}"
    )
    assert lost_notes, "no note was applied during the stall: the test proved nothing"
    assert not to_helpdesk.missing and not to_helpdesk.unexpected, to_helpdesk.summary()
    assert not to_helpdesk.disordered, list(to_helpdesk.disordered.items())[:2]
    assert not to_helpdesk.duplicates, to_helpdesk.duplicates
    _no_duplicate_tickets(side, cids)
    assert d.dead_letters() == 0
