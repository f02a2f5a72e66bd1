"""SIGTERM to web and worker (each stops within 30 s, finishing or handing back its work),
and doorbells that ring again and again, or out of order (DESIGN.md invariant 7)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest
import requests

from tests.reliability.harness import Deployment, Load, Outcome, judge, settle, wait_until
from tests.reliability.helpdesk import HelpdeskSide
from tests.support.fake_botpress import FakeBotpress

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

GRACE = 30.0  # Heroku's SIGTERM-to-SIGKILL window


def _stop_within(proc: object, seconds: float) -> float:
    started = time.monotonic()
    proc.signal(signal.SIGTERM)  # type: ignore[attr-defined]
    proc.proc.wait(seconds + 5)  # type: ignore[attr-defined]
    return time.monotonic() - started


# gevent (the default) and threads stop through Celery's warm shutdown; prefork children
# take the SIGTERM themselves (workers/worker.py).
POOLS = {
    "gevent": {},
    "threads": {"WORKER_POOL": "threads", "WORKER_CONCURRENCY": "16"},
    "prefork": {"WORKER_POOL": "prefork", "WORKER_CONCURRENCY": "2"},
}


@pytest.mark.parametrize("pool", list(POOLS))
def test_sigterm_worker_and_web(
    pool: str, helpdesk: HelpdeskSide, botpress: FakeBotpress, deploy: Callable[..., Deployment]
) -> None:
    d = deploy(helpdesk, workers=2, **POOLS[pool])
    botpress.delay = 0.05  # deliveries to Botpress are in flight when the signal lands
    load = Load(d.url, threads=30)
    cids = load.open_conversations(30)
    wait_until(lambda: helpdesk.tickets_ready(cids), 60, "every ticket")

    # 1. A worker, mid-run: warm shutdown finishes the task in hand, hands back the rest.
    victim = d.workers[0]
    took: dict[str, float] = {}

    def term_worker() -> None:
        wait_until(lambda: victim.output().count('"delivered"') > 200, 60, "the worker to work")
        took["worker"] = _stop_within(victim, GRACE)

    t = threading.Thread(target=term_worker, daemon=True)
    t.start()
    load.run(cids, 30, reply_every=3, send_reply=helpdesk.agent_reply(load), pace=0.02)
    t.join(GRACE + 10)
    assert "worker" in took, "the worker never stopped"
    assert took["worker"] < GRACE, took
    assert victim.proc.returncode == 0, victim.output()[-2000:]

    # 2. The web process, under load: in-flight requests finish; the rest are refused.
    stop_load = threading.Event()
    late: list[str] = []

    def keep_sending() -> None:
        i = 0
        while not stop_load.is_set():
            for cid in cids[:10]:
                load.say(cid, f"{cid}#m{1000 + i}")
            i += 1

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    time.sleep(1.0)
    assert d.web is not None
    took["web"] = _stop_within(d.web, GRACE)
    stop_load.set()
    sender.join(30)
    assert took["web"] < GRACE, took
    assert d.web.proc.returncode == 0, d.web.output()[-2000:]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{d.url}/healthz", timeout=2)
    print(f"stopped in: {took}; answers: {dict(load.statuses())} {late}")
    # Anything without an answer was refused at connect (web already gone): not accepted.
    assert set(load.statuses()) <= {200, None}

    to_helpdesk = settle(
        lambda: judge(load.expected_messages(), helpdesk.delivered(cids)), 120, "helpdesk side"
    )
    to_botpress = settle(
        lambda: judge(load.expected_replies(), botpress.texts()), 120, "Botpress side"
    )
    print(f"helpdesk: {to_helpdesk.summary()}\nbotpress: {to_botpress.summary()}")
    for v in (to_helpdesk, to_botpress):
        assert not v.missing and not v.unexpected and not v.disordered, v.summary()
        assert not v.duplicates, v.duplicates  # a clean stop leaves nothing half-sent
    assert not d.resends(), d.resends()


@pytest.mark.parametrize("helpdesk", ["inbox", "zendesk", "chatwoot", "freshdesk"], indirect=True)
def test_repeated_and_reordered_doorbells(
    helpdesk: HelpdeskSide, botpress: FakeBotpress, deploy: Callable[..., Deployment]
) -> None:
    """Agents write without telling the bridge; then the doorbell of each ticket rings five
    times, rings for later changes arrive before rings for earlier ones, and some rings come
    before anything changed. Each reply reaches Botpress once, in the order written.

    With Zendesk the doorbell is its signed webhook, posted to the web process (the same
    webhook delivered five times); with the inbox, the bridge's own ring."""
    d = deploy(helpdesk, workers=2)
    load = Load(d.url, threads=20)
    cids = load.open_conversations(20)
    wait_until(lambda: helpdesk.tickets_ready(cids), 60, "every ticket")
    ring = _doorbell(helpdesk, d, load, cids[0])
    for cid in cids:
        ring(cid)  # a ring before anything changed reads nothing
    for round_ in range(5):
        for cid in cids:
            for k in range(3):
                text = f"{cid}#r{round_ * 3 + k}"
                helpdesk.agent_writes(cid, text)
                load.replies[cid].append((text, _ok()))
        # Five rings for the same change, from several threads at once, in reverse order
        # of the conversations' changes.
        threads = [
            threading.Thread(target=lambda c=cid: [ring(c) for _ in range(5)])
            for cid in reversed(cids)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    got = settle(lambda: judge(load.expected_replies(), botpress.texts()), 60, "Botpress side")
    print(f"botpress: {got.summary()}")
    assert not got.missing and not got.unexpected and not got.disordered, got.summary()
    assert not got.duplicates, got.duplicates
    assert got.delivered == 20 * 15


def _ok() -> Outcome:
    return Outcome(200)


def _doorbell(
    helpdesk: HelpdeskSide, d: Deployment, load: Load, probe: str
) -> Callable[[str], None]:
    """How the doorbell rings: the helpdesk's signed webhook when it has one, else the
    bridge's own ring (what the webhook route does once a webhook is verified)."""
    from tests.reliability.helpdesk import Unsupported

    try:
        helpdesk.webhook(probe)
    except Unsupported:
        from bridge.config import Settings
        from bridge.runtime import Runtime
        from bridge.storage import Store
        from workers.celery_app import CeleryDispatch, make_celery

        settings = Settings.from_env(d.env)
        store = Store.from_settings(settings)
        rt = Runtime(settings, store, None, CeleryDispatch(make_celery(settings)))  # type: ignore[arg-type]
        return rt.ring

    def webhook(cid: str) -> None:
        path, headers, body = helpdesk.webhook(cid)
        r = load.session().post(f"{d.url}{path}", data=body, headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["rung"] == [cid], r.text  # verified, and the ticket was known

    return webhook
