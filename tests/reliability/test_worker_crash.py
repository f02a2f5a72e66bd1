"""A worker killed with SIGKILL mid-delivery: nothing lost, nothing duplicated (DESIGN.md §3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from bridge.config import Settings
from tests.reliability.harness import Deployment, Load, judge, settle, wait_until
from tests.reliability.helpdesk import HelpdeskSide
from tests.support.fake_botpress import FakeBotpress

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

CONVERSATIONS = 60
MESSAGES = 40  # per conversation: 2,400 messages to the helpdesk
REPLY_EVERY = 4  # and 600 agent replies to Botpress


@pytest.mark.parametrize("helpdesk", ["inbox", "zendesk", "chatwoot", "freshdesk"], indirect=True)
def test_sigkill_a_worker_mid_delivery(
    helpdesk: HelpdeskSide, botpress: FakeBotpress, deploy: Callable[..., Deployment]
) -> None:
    d = deploy(helpdesk, workers=2)
    botpress.delay = 0.03  # Botpress takes a moment: sends are in flight when the kill lands
    load = Load(d.url, threads=16)
    cids = load.open_conversations(CONVERSATIONS)
    wait_until(lambda: helpdesk.tickets_ready(cids), 60, "every ticket")

    victim = d.workers[0]
    killed = threading.Event()

    def kill_when_busy() -> None:
        # Wait until the victim is delivering in both directions, then pull the plug.
        wait_until(lambda: victim.output().count('"delivered"') > 300, 60, "the victim to work")
        victim.kill()
        killed.set()

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    started = time.monotonic()
    load.run(
        cids, MESSAGES, reply_every=REPLY_EVERY, send_reply=helpdesk.agent_reply(load), pace=0.01
    )
    killer.join(60)
    assert killed.is_set(), "the load ended before the victim was killed"
    print(f"load sent in {time.monotonic() - started:.1f}s; statuses {load.statuses()}")
    assert set(load.statuses()) == {200}, load.statuses()

    # The survivor carries on; the victim's leases expire and beat's sweeper re-kicks its
    # streams (their kick flags outlive the lost tasks by up to 30 s).
    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), helpdesk.delivered(cids)), 150, "helpdesk side"
    )
    to_botpress = settle(
        lambda: judge(load.expected_replies(), botpress.texts()), 150, "Botpress side"
    )
    print(f"helpdesk: {to_helpdesk.summary()}\nbotpress: {to_botpress.summary()}")
    assert not to_helpdesk.missing and not to_helpdesk.unexpected
    assert not to_helpdesk.duplicates, to_helpdesk.duplicates  # adapters check before writing
    assert not to_helpdesk.disordered, list(to_helpdesk.disordered.items())[:2]
    assert to_helpdesk.delivered == CONVERSATIONS * MESSAGES
    assert not to_botpress.missing and not to_botpress.unexpected
    assert not to_botpress.disordered, list(to_botpress.disordered.items())[:2]
    # Botpress's webhook has no idempotency key: the only duplicates allowed are heads the
    # bridge itself flagged as possibly applied (a send cut short by the kill), one per
    # stream that was mid-send, each resent right after the first copy.
    resends = d.resends()
    for cid, dups in to_botpress.duplicates.items():
        assert sum(dups.values()) <= resends[f"bp:{cid}"], (cid, dups, resends)
    # At most one per send the victim had in flight: one per pump, its concurrency.
    in_flight = Settings.from_env(d.env).pumps
    assert sum(resends.values()) <= in_flight, (in_flight, resends)
    print(f"flagged resends: {dict(resends)}; Botpress duplicates: {to_botpress.duplicates}")
