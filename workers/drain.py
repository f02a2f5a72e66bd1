"""The drain loop: deliver one stream's events strictly in order, under its lease.

Any number of workers may call `drain` for the same stream at once; the lease lets one
of them work and the others return at once. The holder delivers head events until the
stream is empty or its head must wait for a retry.

Streams are woken onto the P:ready list (bridge/storage.py); a pump is one Celery task
that drains woken streams one after another, so a steady trickle of events across many
conversations costs one task per pump, not one task per event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis

from bridge import events as ev
from bridge import ids
from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.storage import BUSY, EMPTY, LOST, PUMP_TTL, Acked, Take
from workers.context import Context
from workers.handlers import HANDLERS, PEEK, Outcome

log = logging.getLogger("hitl.drain")

#: A head whose send was cut short this many times is dead-lettered (poison message).
MAX_CRASHES = 5
#: A head that failed this many times with an unexpected error (a bug, or a payload no
#: adapter can take) is dead-lettered, so it holds its conversation for seconds, not for
#: the whole retry window.
MAX_FAULTS = 5
#: Failures that are known to pass: the storage itself blinked mid-delivery.
_PASSING = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
)
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


#: A pump with nothing to do waits this long for a woken stream before it leaves.
PUMP_IDLE_SECONDS = 2.0
#: A pump says it is alive this often: a sixth of PUMP_TTL (hundreds of pumps beating every
#: second cost a Redis round trip for every few events delivered).
HEARTBEAT_SECONDS = PUMP_TTL / 6


def pump(ctx: Context, pump_id: str) -> int:
    """Drain woken streams one after another until idle, stopped or out of time."""
    store = ctx.store
    stop_at = time.monotonic() + MAX_TASK_SECONDS
    delivered, beat_at = 0, 0.0
    idle_since = time.monotonic()
    while not STOPPING.is_set() and time.monotonic() < stop_at:
        if time.monotonic() - beat_at > HEARTBEAT_SECONDS:
            store.heartbeat(pump_id)
            beat_at = time.monotonic()
        stream = store.next_ready(timeout=0.25)
        if stream is None:
            if time.monotonic() - idle_since >= PUMP_IDLE_SECONDS and store.retire_pump(pump_id):
                return delivered
            continue
        delivered += drain(ctx, stream)
        idle_since = time.monotonic()
    # Out of time (other Celery work gets its turn) or told to stop: a fresh pump task
    # takes over whatever is still waiting.
    store.forget_pump(pump_id)
    ctx.start(store.ensure_pump())
    return delivered


def drain(ctx: Context, stream: str) -> int:
    """Deliver what is due on `stream`; returns how many events were delivered."""
    store = ctx.store
    token = ids.unique_hex(64)
    try:
        result = _drain_leased(ctx, stream, token)
    except BaseException:
        store.let_go(stream, token)
        raise
    if result is None:
        return 0  # another worker holds it; it re-checks the stream before letting go
    delivered, handed_back, released = result
    if released:
        return delivered  # the last ack emptied the stream and let go in the same step
    left, due = store.let_go(stream, token)
    # An event appended between our last look and the release found the lease taken;
    # look once more so it never waits for the sweeper.
    if handed_back or (left and due <= time.time()):
        ctx.kick(stream)
    return delivered


def _drain_leased(ctx: Context, stream: str, token: str) -> tuple[int, bool, bool] | None:
    """Deliver under the lease: (delivered, handed back unfinished, lease released by the
    last ack), None when busy."""
    store = ctx.store
    kind, _ = ev.split_stream(stream)
    handler = HANDLERS[kind]
    peek = PEEK.get(kind, 1)
    # Messages to the helpdesk need their conversation and author: read with the head.
    records = kind == ev.TO_HELPDESK
    delivered = 0
    acquire = True
    stop_at = time.monotonic() + MAX_TASK_SECONDS
    taken: Take | None = None  # the next step, when the last ack took it already

    def going_on() -> bool:
        return delivered < MAX_PER_TASK and time.monotonic() < stop_at and not STOPPING.is_set()

    # A step the last ack began is delivered whatever happens meanwhile: left begun, it
    # would count as a send cut short.
    while taken is not None or going_on():
        if taken is None:
            # A little slack so a countdown that fires a hair early is not sent back to wait.
            now = time.time() + 0.05
            taken = store.take(
                stream,
                token,
                ctx.settings.lease_seconds,
                now,
                peek,
                acquire=acquire,
                records=records,
            )
        if taken.status == BUSY:
            return None
        acquire = False
        if taken.status == LOST:
            log.warning("lease lost", extra={"stream": stream})
            return delivered, False, False
        if taken.status == EMPTY or taken.head is None:
            return delivered, False, False
        head, events, taken = taken.head, taken.events, None
        head_event = events[0]
        if head.status == 0:
            return delivered, False, False  # deferred; the due schedule wakes it
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
            fault = not isinstance(exc, (TransientError, *_PASSING))
            if fault:
                log.exception(
                    "unexpected error delivering",
                    extra={"stream": stream, "event_id": head_event.id},
                )
                reason = f"unexpected error: {type(exc).__name__}: {exc}"[:2000]
                if head.faults + 1 >= MAX_FAULTS:
                    failed = PermanentError(
                        f"{reason} ({head.faults + 1} tries failed this way; set aside so it "
                        "cannot block the conversation)"
                    )
                    _dead_letter(ctx, stream, token, head_event, failed, head.attempts)
                    continue
                exc = TransientError(reason)
            elif not isinstance(exc, TransientError):
                exc = TransientError(f"storage unavailable: {type(exc).__name__}")
            if not _defer(
                ctx, stream, token, head_event, head.attempts, head.first_failed, exc, fault
            ):
                continue  # window spent: dead-lettered, go on with the next event
            return delivered, False, False
        batch = events[: outcome.consumed]
        delivered += outcome.consumed
        acked = _commit(
            ctx,
            stream,
            token,
            batch,
            outcome,
            head.attempts,
            then=peek if going_on() else 0,
            records=records,
        )
        if acked is None:
            return delivered - outcome.consumed, False, False
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
        if acked.left == 0:
            return delivered, False, True
        taken = acked.next
    return delivered, True, False


def _commit(
    ctx: Context,
    stream: str,
    token: str,
    batch: Sequence[ev.Event],
    outcome: Outcome,
    attempts: int,
    *,
    then: int = 0,
    records: bool = False,
) -> Acked | None:
    """Record the batch as delivered (and, with `then`, take the next step: `Store.ack`);
    None when the lease was lost."""
    head_event = batch[0]
    acked = ctx.store.ack(
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
        then=then,
        lease_seconds=ctx.settings.lease_seconds,
        records=records,
    )
    if acked is None:
        log.warning("lease lost before ack", extra={"stream": stream, "event_id": head_event.id})
        return None
    if outcome.closed:
        ctx.store.close_conversation(outcome.closed)
    ctx.start(acked.pump)
    return acked


def _defer(
    ctx: Context,
    stream: str,
    token: str,
    event: ev.Event,
    attempts: int,
    first_failed: float,
    exc: TransientError,
    fault: bool = False,
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
    ctx.store.defer(
        stream,
        token,
        event.id,
        now + wait,
        exc.reason,
        exc.response or "",
        now,
        unsure=exc.maybe_applied,
        fault=fault,
    )
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
        ctx.dispatch.drain(stream, wait)
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
