"""Celery tasks: pump woken streams, drain one stream (retry countdowns), wake due retries,
sweep forgotten streams, poll the helpdesk."""

from __future__ import annotations

import time
from collections.abc import Callable

from celery import Celery

from workers.context import Context
from workers.drain import drain, pump


def register(app: Celery, context: Callable[[], Context]) -> None:
    """Attach the bridge's tasks to `app`; `context()` returns this process's Context."""

    @app.task(name="hitl.drain")
    def drain_task(stream: str) -> int:
        return drain(context(), stream)

    @app.task(name="hitl.pump")
    def pump_task(pump_id: str) -> int:
        return pump(context(), pump_id)

    @app.task(name="hitl.wake")
    def wake_task() -> int:
        """Every second: wake streams whose retry is due; start a pump if streams wait
        and none is alive (a worker killed under its pumps); restate this worker's pump
        limit (lost with a Redis that restarted empty)."""
        ctx = context()
        ctx.store.announce_pumps(ctx.settings.pumps)
        due = ctx.store.due_streams(time.time())
        for stream in due:
            ctx.kick(stream)
        ctx.start(ctx.store.ensure_pump())
        return len(due)

    @app.task(name="hitl.sweep")
    def sweep_task() -> int:
        """Safety net: a stream holding events with no task on its way gets one."""
        ctx = context()
        now, kicked = time.time(), 0
        for stream in ctx.store.pending_streams():
            if not ctx.store.is_leased(stream) and ctx.store.deferred_until(stream) <= now:
                ctx.kick(stream)
                kicked += 1
        return kicked

    @app.task(name="hitl.poll")
    def poll_task() -> int:
        """Ring the doorbell of open tickets, for replies whose webhook never came."""
        ctx = context()
        changed = ctx.helpdesk.changed_tickets()
        if changed is None:
            cids = ctx.store.open_conversations()
        else:
            cids = [c for c in map(ctx.store.conversation_for_ticket, changed) if c]
        for cid in cids:
            ctx.ring(cid)
        return len(cids)
