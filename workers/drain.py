"""The drain loop: deliver one stream's events strictly in order, under its lease.

Any number of workers may call `drain` for the same stream at once; the lease lets one
of them work and the others return at once. The holder delivers head events until the
stream is empty or its head must wait for a retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from bridge import events as ev
from bridge.errors import DeliveryError, PermanentError, TransientError
from workers.context import Context
from workers.handlers import HANDLERS, PEEK, Outcome

log = logging.getLogger("hitl.drain")

#: A head whose send was cut short this many times is dead-lettered (poison message).
MAX_CRASHES = 5
#: Retries due within this many seconds are also scheduled as a Celery countdown; longer
#: waits live only in the Redis `due` schedule (countdowns near the broker's visibility
#: timeout are redelivered over and over: DESIGN.md §6).
MAX_COUNTDOWN = 30.0
#: Events, and seconds, one task spends on a stream before handing it back: a busy
#: conversation cannot starve the others, and a warm shutdown never waits long.
MAX_PER_TASK = 500
MAX_TASK_SECONDS = 10.0

#: Set when this process was told to stop (SIGTERM): finish the event in hand, then hand
#: the stream back instead of starting the next one (workers/worker.py installs it).
STOPPING = threading.Event()


def drain(ctx: Context, stream: str) -> int:
    """Deliver what is due on `stream`; returns how many events were delivered."""
    store = ctx.store
    store.clear_kick(stream)
    token = store.acquire_lease(stream, ctx.settings.lease_seconds)
    if token is None:
        return 0  # another worker holds it; it re-checks the stream before letting go
    delivered = 0
    handed_back = False
    try:
        delivered, handed_back = _drain_leased(ctx, stream, token)
    finally:
        store.release_lease(stream, token)
    # An event appended between our last look and the release found the lease taken;
    # look once more so it never waits for the sweeper.
    if handed_back or (store.length(stream) and store.deferred_until(stream) <= time.time()):
        ctx.kick(stream)
    return delivered


def _drain_leased(ctx: Context, stream: str, token: str) -> tuple[int, bool]:
    store = ctx.store
    kind, _ = ev.split_stream(stream)
    handler = HANDLERS[kind]
    peek = PEEK.get(kind, 1)
    delivered = 0
    stop_at = time.monotonic() + MAX_TASK_SECONDS
    while delivered < MAX_PER_TASK and time.monotonic() < stop_at and not STOPPING.is_set():
        events = store.peek(stream, peek)
        if not events:
            return delivered, False
        head_event = events[0]
        now = time.time()
        # A little slack so a countdown that fires a hair early is not sent back to wait.
        head = store.begin(stream, token, head_event.id, ctx.settings.lease_seconds, now + 0.05)
        if head.status < 0:
            log.warning("lease lost", extra={"stream": stream, "event_id": head_event.id})
            return delivered, False
        if head.status == 0:
            return delivered, False  # deferred; the due schedule wakes it
        if head.crashes >= MAX_CRASHES:
            _dead_letter(
                ctx,
                stream,
                token,
                head_event,
                PermanentError(
                    f"delivery was cut short {head.crashes} times (worker lost mid-send); "
                    "set aside so it cannot block the conversation"
                ),
                head.attempts,
            )
            continue
        if head.maybe_applied:
            # Adapters check before writing again; Botpress's webhook has no idempotency
            # key, so this is the one event of the stream that may reach it twice.
            log.warning(
                "resending after an interrupted send",
                extra={"stream": stream, "event_id": head_event.id, "crashes": head.crashes},
            )
        try:
            outcome = handler(ctx, events, head)
        except PermanentError as exc:
            _dead_letter(ctx, stream, token, head_event, exc, head.attempts)
            continue
        except Exception as exc:
            if not isinstance(exc, TransientError):
                log.exception(
                    "unexpected error delivering",
                    extra={"stream": stream, "event_id": head_event.id},
                )
                exc = TransientError(f"internal error: {type(exc).__name__}: {exc}")
            if not _defer(ctx, stream, token, head_event, head.attempts, head.first_failed, exc):
                continue  # window spent: dead-lettered, go on with the next event
            return delivered, False
        batch = events[: outcome.consumed]
        if not _commit(ctx, stream, token, batch, outcome, head.attempts):
            return delivered, False
        delivered += outcome.consumed
        for e in batch:
            log.info(
                "delivered",
                extra={
                    "stream": stream,
                    "event_id": e.id,
                    "kind": e.kind,
                    "attempt": head.attempts,
                    "outcome": "delivered",
                    "latency": round(max(0.0, time.time() - e.at), 3),
                },
            )
    return delivered, True


def _commit(
    ctx: Context,
    stream: str,
    token: str,
    batch: Sequence[ev.Event],
    outcome: Outcome,
    attempts: int,
) -> bool:
    head_event = batch[0]
    kicks = ctx.store.ack(
        stream,
        token,
        head_event.id,
        outcome.consumed,
        outputs=outcome.outputs,
        record=outcome.record,
        updates=outcome.updates,
        index=outcome.index,
        delivered=batch,
        attempts=attempts,
    )
    if kicks is None:
        log.warning("lease lost before ack", extra={"stream": stream, "event_id": head_event.id})
        return False
    if outcome.closed:
        ctx.store.close_conversation(outcome.closed)
    for out in kicks:
        ctx.wake(out)
    return True


def _defer(
    ctx: Context,
    stream: str,
    token: str,
    event: ev.Event,
    attempts: int,
    first_failed: float,
    exc: TransientError,
) -> bool:
    """Schedule the next try; False when the retry window is spent (dead-lettered instead)."""
    now = time.time()
    wait = ctx.retry.delay(
        attempts, first_failed=first_failed, now=now, retry_after=exc.retry_after
    )
    if wait is None:
        _dead_letter(
            ctx,
            stream,
            token,
            event,
            PermanentError(
                f"gave up after {attempts} attempts over the retry window: {exc.reason}",
                response=exc.response,
            ),
            attempts,
        )
        return False
    ctx.store.defer(stream, token, event.id, now + wait, exc.reason, exc.response or "", now)
    log.warning(
        "delivery failed, will retry",
        extra={
            "stream": stream,
            "event_id": event.id,
            "kind": event.kind,
            "attempt": attempts,
            "outcome": "retry",
            "retry_in": round(wait, 3),
            "reason": exc.reason,
        },
    )
    if wait <= MAX_COUNTDOWN:
        ctx.publish(stream, wait)
    return True


def _dead_letter(
    ctx: Context, stream: str, token: str, event: ev.Event, exc: DeliveryError, attempt: int
) -> None:
    dlq_id = ctx.store.dead_letter(
        stream, token, event.id, exc.reason, exc.response or "", time.time(), event=event
    )
    log.error(
        "dead-lettered",
        extra={
            "stream": stream,
            "event_id": event.id,
            "kind": event.kind,
            "attempt": attempt,
            "outcome": "dead_lettered",
            "dead_letter": dlq_id,
            "reason": exc.reason,
        },
    )
