"""Outages of what the bridge delivers to: the backlog waits, then drains in order, once.

Botpress's webhook: 503s, then calls that time out, then connection refused (the fake stops
listening and comes back on the same port); with the inbox and with Zendesk as the helpdesk.
The helpdesk: 503s, then timeouts - each helpdesk reached over HTTP (Zendesk, Chatwoot,
Freshdesk: their fake accounts). Timeouts come in two kinds: the request never reached the
helpdesk, or it applied it and the answer was lost; the bridge cannot tell them apart, and
must duplicate nothing either way (Chatwoot and Freshdesk have no idempotency keys: the
adapters look for what landed before writing again).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

import pytest

from tests.reliability.harness import Deployment, Load, env_float, judge, settle, wait_until
from tests.reliability.helpdesk import HelpdeskSide, HttpSide, ZendeskSide
from tests.support.fake_botpress import FakeBotpress

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

#: The outage as the issue states it: 30 s (RELIABILITY_OUTAGE_SECONDS shortens it locally).
OUTAGE = env_float("RELIABILITY_OUTAGE_SECONDS", 30.0)
CONVERSATIONS = 40
MESSAGES = 40
REPLY_EVERY = 2
#: Seconds the helpdesk backlog takes to drain after a helpdesk outage (traffic goes on).
CATCH_UP = 20.0


def _traffic_during(
    load: Load, cids: list[str], helpdesk: HelpdeskSide, seconds: float
) -> threading.Thread:
    """Keep messages and agent replies coming for about `seconds` (spread over the outage)."""
    pace = seconds / MESSAGES

    def run() -> None:
        load.run(
            cids,
            MESSAGES,
            reply_every=REPLY_EVERY,
            send_reply=helpdesk.agent_reply(load),
            pace=pace,
        )

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _botpress_outage(botpress: FakeBotpress, seconds: float) -> None:
    """Botpress's webhook answers 503, then hangs past the timeout, then refuses
    connections (the fake stops listening and comes back on the same port): a third each."""
    third = seconds / 3
    t0 = time.time()
    botpress.fail_status, botpress.fail_until = 503, t0 + third
    botpress.stall_seconds, botpress.stall_until = 1.5, t0 + 2 * third
    time.sleep(2 * third)
    botpress.stop()  # connection refused
    time.sleep(third)
    botpress.start()  # same port


def _botpress_outage_seen(botpress: FakeBotpress, d: Deployment) -> int:
    failed = [a for a in botpress.attempts if "status" in a]
    kinds = {a["status"] for a in failed}
    assert {503, "stalled"} <= kinds, kinds
    # Refused: said so, and known never to have been sent.
    assert any(
        "could not connect (ConnectionRefusedError" in r.get("reason", "")
        for r in d.worker_log_lines()
    )
    return len(failed)


def test_botpress_webhook_503_then_timeouts_then_refused(
    helpdesk: HelpdeskSide, botpress: FakeBotpress, deploy: Callable[..., Deployment]
) -> None:
    d = deploy(helpdesk, workers=2)
    load = Load(d.url, threads=CONVERSATIONS)
    cids = load.open_conversations(CONVERSATIONS)
    wait_until(lambda: helpdesk.tickets_ready(cids), 60, "every ticket")

    traffic = _traffic_during(load, cids, helpdesk, OUTAGE + 4)
    time.sleep(2)  # some replies go through before the outage
    _botpress_outage(botpress, OUTAGE)
    recovered = time.monotonic()
    traffic.join(120)
    assert set(load.statuses()) == {200}, load.statuses()

    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), helpdesk.delivered(cids)), 60, "helpdesk side"
    )
    to_botpress = settle(
        lambda: judge(load.expected_replies(), botpress.texts()), 90, "Botpress side"
    )
    drained = time.monotonic() - recovered
    failed = _botpress_outage_seen(botpress, d)
    print(
        f"backlog drained {drained:.1f}s after Botpress came back; {failed} calls failed "
        f"during the outage\nhelpdesk: {to_helpdesk.summary()}\nbotpress: {to_botpress.summary()}"
    )
    for v in (to_helpdesk, to_botpress):
        assert not v.missing and not v.unexpected and not v.duplicates, v.summary()
        assert not v.disordered, list(v.disordered.items())[:2]
    assert to_botpress.delivered == CONVERSATIONS * MESSAGES // REPLY_EVERY
    # Nothing was given up on: a 503, a timeout or a refused connection is transient.
    assert d.dead_letters() == 0


def _no_duplicate_tickets(side: HttpSide, cids: list[str]) -> None:
    dups = side.duplicate_tickets(cids)
    assert not dups, f"conversations with more than one ticket: {dups}"


def test_helpdesk_503_then_timeouts_then_botpress_outage(
    http_helpdesk: HttpSide,
    botpress: FakeBotpress,
    deploy: Callable[..., Deployment],
) -> None:
    """The issue's scenario: for OUTAGE seconds the helpdesk answers 503 (first half), then
    every call hangs past the bridge's timeout without reaching it (second half); it
    recovers, and then Botpress's webhook has the same outage (503, timeouts, connection
    refused). Agent replies come by verified webhook all along.

    The whole scenario runs with Zendesk; with the helpdesks added later, the helpdesk's
    half only, and a third as long: Botpress's half exercises no adapter code, and the
    suite stays under 30 minutes."""
    whole = http_helpdesk.name == "zendesk"
    outage = OUTAGE if whole else OUTAGE / 3
    d = deploy(http_helpdesk, workers=2)
    load = Load(d.url, threads=CONVERSATIONS)
    cids = load.open_conversations(CONVERSATIONS)
    wait_until(lambda: http_helpdesk.tickets_ready(cids), 60, "every ticket")
    # Traffic spans both outages and the catching up in between.
    traffic = _traffic_during(load, cids, http_helpdesk, (2 if whole else 1) * outage + CATCH_UP)
    time.sleep(2)
    http_helpdesk.fail_for(outage / 2, status=503)
    time.sleep(outage / 2)
    http_helpdesk.stall_for(outage / 2)
    time.sleep(outage / 2)
    # The helpdesk is back. Its backlog goes first (drain tasks share one queue), so Botpress
    # calls resume only once it has drained: wait for that, or Botpress's outage would
    # pass with nobody calling it.
    caught_up = time.monotonic()
    wait_until(
        lambda: not judge(load.expected_messages(), http_helpdesk.delivered(cids)).missing,
        60,
        "the helpdesk backlog to drain",
        every=0.5,
    )
    caught_up = time.monotonic() - caught_up
    if whole:
        _botpress_outage(botpress, OUTAGE)
    recovered = time.monotonic()
    traffic.join(120)
    assert set(load.statuses()) == {200}, load.statuses()
    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), http_helpdesk.delivered(cids)), 90, "helpdesk"
    )
    to_botpress = settle(
        lambda: judge(load.expected_replies(), botpress.texts()), 90, "Botpress side"
    )
    faults = Counter(f["fault"] for f in http_helpdesk.faults())
    failed = _botpress_outage_seen(botpress, d) if whole else 0
    label = http_helpdesk.label
    print(
        f"{label} backlog drained in {caught_up:.1f}s; Botpress backlog "
        f"{time.monotonic() - recovered:.1f}s after it came back\n"
        f"{label} faults injected: {dict(faults)}; Botpress calls failed: {failed}\n"
        f"helpdesk: {to_helpdesk.summary()}\nbotpress: {to_botpress.summary()}"
    )
    assert faults[503] > 0 and faults["stalled"] > 0, faults
    reasons = {r.get("reason", "") for r in d.worker_log_lines()}
    for felt in ("HTTP 503", "timed out"):  # the bridge met both kinds of failure
        assert any(r.startswith(label) and felt in r for r in reasons), (felt, reasons)
    for v in (to_helpdesk, to_botpress):
        assert not v.missing and not v.unexpected and not v.duplicates, v.summary()
        assert not v.disordered, list(v.disordered.items())[:2]
    assert to_helpdesk.delivered == CONVERSATIONS * MESSAGES
    assert to_botpress.delivered == CONVERSATIONS * MESSAGES // REPLY_EVERY
    _no_duplicate_tickets(http_helpdesk, cids)
    assert d.dead_letters() == 0


#: A shorter run for the timeouts whose writes landed (comments have no idempotency key).
APPLIED_CONVERSATIONS = 30
APPLIED_MESSAGES = 30
APPLIED_STALL = 10.0


def test_helpdesk_applies_then_times_out(
    http_helpdesk: HttpSide,
    botpress: FakeBotpress,
    deploy: Callable[..., Deployment],
) -> None:
    """For a while the helpdesk applies every call, then hangs past the bridge's timeout:
    the message is on the ticket but the bridge never heard so. Retrying it must not write
    it twice (DESIGN.md invariant 4: the adapter checks what landed first)."""
    d = deploy(http_helpdesk, workers=2)
    load = Load(d.url, threads=APPLIED_CONVERSATIONS)
    cids = load.open_conversations(APPLIED_CONVERSATIONS)
    wait_until(lambda: http_helpdesk.tickets_ready(cids), 60, "every ticket")
    pace = (APPLIED_STALL + 4) / APPLIED_MESSAGES

    def run() -> None:
        load.run(cids, APPLIED_MESSAGES, pace=pace)

    traffic = threading.Thread(target=run, daemon=True)
    traffic.start()
    time.sleep(2)
    http_helpdesk.stall_for(APPLIED_STALL, apply=True)
    time.sleep(APPLIED_STALL)
    traffic.join(120)
    assert set(load.statuses()) == {200}, load.statuses()
    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), http_helpdesk.delivered(cids)), 90, "helpdesk"
    )
    applied = [f for f in http_helpdesk.faults() if f["fault"] == "stalled after applying"]
    lost_answers = http_helpdesk.lost_message_writes()
    print(
        f"{len(applied)} calls applied with their answer lost ({lost_answers} messages)"
        f"\nhelpdesk: {to_helpdesk.summary()}"
    )
    assert lost_answers, "no message was applied during the stall: the test proved nothing"
    assert not to_helpdesk.missing and not to_helpdesk.unexpected, to_helpdesk.summary()
    assert not to_helpdesk.disordered, list(to_helpdesk.disordered.items())[:2]
    assert not to_helpdesk.duplicates, _explain_duplicates(http_helpdesk, to_helpdesk.duplicates)
    _no_duplicate_tickets(http_helpdesk, cids)
    assert d.dead_letters() == 0


def _explain_duplicates(side: HttpSide, duplicates: Mapping[str, Counter[str]]) -> str:
    """Which texts were written twice, and (Zendesk) the comments and lost answers behind them."""
    if not isinstance(side, ZendeskSide):
        return f"texts written twice: {dict(list(duplicates.items())[:3])}"
    zendesk = side.fake
    lost = {
        e["id"]
        for f in zendesk.faults
        for e in (f.get("reply") or {}).get("audit", {}).get("events", [])
        if e.get("type") == "Comment"
    }
    lines = [
        f"{sum(sum(c.values()) for c in duplicates.values())} texts written twice, "
        f"in {len(duplicates)} conversations; e.g.:"
    ]
    for cid, dups in list(duplicates.items())[:3]:
        tid = side.tickets([cid])[cid][0]
        lines.append(f"  {cid} (ticket {tid}): {dict(dups)}")
        for c in zendesk.comments(tid)[1:]:
            note = "   <- applied, answer lost (stall)" if c["id"] in lost else ""
            lines.append(f"    comment {c['id']}: {c['body']!r}{note}")
    return "\n".join(lines)
