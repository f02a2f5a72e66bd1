"""Waking a worker must never change what the client is told about a durable event."""

from __future__ import annotations

import redis
from celery import Celery

from bridge.runtime import Runtime
from tests.conftest import BridgeClient
from workers.context import Context
from workers.tasks import register


def test_an_event_stored_when_publishing_fails_is_still_a_200(
    bp: BridgeClient, runtime: Runtime
) -> None:
    """Redis going away between the append and the publish must not turn a durable event's
    200 into a 503 that claims nothing was accepted."""
    uid, cid = bp.user(), bp.conversation()

    def broken_pump(pump_id: str) -> None:
        raise ConnectionError("broker gone")

    def broken_forget(pump_id: str) -> None:
        raise redis.ConnectionError("storage gone")

    runtime.dispatch.pump = broken_pump  # type: ignore[method-assign]
    runtime.store.forget_pump = broken_forget  # type: ignore[method-assign]
    runtime.store.redis.delete(runtime.store.key("kick", f"hd:{cid}"), runtime.store.key("pumps"))
    r = bp.say(cid, uid, {"text": "still accepted"})
    assert r.status_code == 200
    assert runtime.store.length(f"hd:{cid}") == 2


def test_beats_wake_restates_the_workers_pump_limit(ctx: Context) -> None:
    """A Redis that restarted empty forgets P:pumps:max; the next wake-up writes it again."""
    app = Celery("t", set_as_current=False)
    register(app, lambda: ctx)
    ctx.store.redis.delete(ctx.store.key("pumps", "max"))
    app.tasks["hitl.wake"]()
    assert ctx.store.redis.get(ctx.store.key("pumps", "max")) == str(ctx.settings.pumps)
