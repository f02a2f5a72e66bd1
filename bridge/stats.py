"""What the workers count in Redis, and the per-conversation delivery history.

Workers are Celery processes that nobody scrapes, so they keep their counters in Redis
(`P:stats`, one hash for the whole system) and the web's `/metrics` reads them back
(bridge/metrics.py): one scrape shows every worker on every machine. The counters are
written by the ack, defer and dead-letter Lua scripts (bridge/storage.py), in the same
round trip as the delivery outcome they count.

`P:stats` fields (`<k>` is a stream kind: hd, hu, rs, in, bp):

    d:<k>        events delivered: no longer written (the sum of the lb:<k>:* buckets is the
                 same count, one command less per delivery); `delivered()` reads it
    r:<k>        delivery attempts that failed and were scheduled again (retries)
    x:<k>        events dead-lettered
    p:<k>        dead letters replayed
    lb:<k>:<i>   deliveries whose latency (delivery time - event `at`) fell in bucket i of
                 LATENCY_BUCKETS (i == len(LATENCY_BUCKETS): above the last bound);
                 not cumulative: the collector sums them into Prometheus's `le` buckets
    ls:<k>       sum of those latencies, seconds (float)

`P:hist:<cid>` is a list, oldest first, capped at HISTORY_CAP entries, of what happened
to the conversation's events. Entries are compact strings, about 44 bytes each:

    <epoch seconds>|<outcome>|<attempts>|<stream kind>|<event kind code>|<event id>

with outcome d (delivered), x (dead-lettered) or p (replayed from the dead letters), and
the event kind shortened by KIND_CODES (a kind without a code is written in full).
Doorbell rings (`in`) are recorded only when dead-lettered: a delivered ring says
nothing, and polling would push everything else out.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bridge import events as ev

#: Seconds. Deliveries take milliseconds when all is well, and hours when a helpdesk is
#: down (the retry window is two days), so the buckets span both.
LATENCY_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    7200.0,
    86400.0,
)
#: Entries kept per conversation. Measured on Redis 7.0: a full history costs about
#: 1.2 KB (MEMORY USAGE), which with the conversation's record and ticket index keeps an
#: idle conversation under its 2 KiB budget (tests/integration/test_operations.py).
HISTORY_CAP = 20

KIND_CODES = {
    ev.CONVERSATION_CREATE: "cc",
    ev.MESSAGE: "m",
    ev.CONVERSATION_CLOSE: "cl",
    ev.CLOSE_RESOLVE: "cr",
    ev.USER_UPSERT: "uu",
    ev.RING: "r",
    ev.AGENT_MESSAGE: "am",
    ev.AGENT_ASSIGNED: "aa",
    ev.HITL_STOP: "hs",
}
_CODE_KINDS = {v: k for k, v in KIND_CODES.items()}

DELIVERED = "d"
RETRIED = "r"
DEAD_LETTERED = "x"
REPLAYED = "p"
OUTCOMES = {DELIVERED: "delivered", DEAD_LETTERED: "dead_lettered", REPLAYED: "replayed"}


def counter(name: str, kind: str) -> str:
    return f"{name}:{kind}"


def bucket_field(kind: str, index: int) -> str:
    return f"lb:{kind}:{index}"


def latency_sum_field(kind: str) -> str:
    return f"ls:{kind}"


def bucket_index(latency: float) -> int:
    """Index of the first bound >= latency (Prometheus's `le`)."""
    return bisect.bisect_left(LATENCY_BUCKETS, latency)


def delivered_increments(
    kind: str, ats: Iterable[float], now: float
) -> tuple[dict[str, int], dict[str, float]]:
    """(integer, float) field increments for events delivered at `now`, created at `ats`."""
    ints: Counter[str] = Counter()
    total = 0.0
    for at in ats:
        latency = max(0.0, now - at)
        ints[bucket_field(kind, bucket_index(latency))] += 1
        total += latency
    return dict(ints), ({latency_sum_field(kind): round(total, 6)} if ints else {})


def delivered(fields: Mapping[str, str], kind: str) -> int:
    """Events of `kind` delivered so far: the latency buckets hold one count per delivery."""
    return sum(int(fields.get(bucket_field(kind, i)) or 0) for i in range(len(LATENCY_BUCKETS) + 1))


def conversation_of(stream: str) -> str | None:
    """The conversation whose history records this stream's events (None: no history)."""
    kind, owner = ev.split_stream(stream)
    return owner if kind in (ev.TO_HELPDESK, ev.INBOUND, ev.TO_BOTPRESS) else None


def records(stream: str, outcome: str) -> bool:
    """Whether `outcome` on `stream` goes into the conversation's history."""
    if conversation_of(stream) is None:
        return False
    return not (stream.startswith(ev.INBOUND + ":") and outcome == DELIVERED)


def history_entry(
    at: float, outcome: str, attempts: int | str, stream: str, event: ev.Event
) -> str:
    kind, _ = ev.split_stream(stream)
    code = KIND_CODES.get(event.kind, event.kind)
    return f"{int(at)}|{outcome}|{attempts}|{kind}|{code}|{event.id}"


def history_halves(at: float, outcome: str, stream: str, event: ev.Event) -> tuple[str, str]:
    """An entry split where its attempt count goes (for a script that knows the count)."""
    before, _, after = history_entry(at, outcome, "#", stream, event).partition("|#|")
    return before + "|", "|" + after


def parse_history(raw: str) -> dict[str, Any]:
    at, outcome, attempts, kind, event_kind, event_id = raw.split("|", 5)
    return {
        "event_id": event_id,
        "kind": _CODE_KINDS.get(event_kind, event_kind),
        "stream": kind,
        "direction": DIRECTIONS.get(kind, kind),
        "outcome": OUTCOMES.get(outcome, outcome),
        "at": int(at),
        "attempts": int(attempts or 0),
    }


#: Stream kind -> the direction its events travel (metrics and logs label them so).
DIRECTIONS = {
    ev.TO_HELPDESK: "to_helpdesk",
    ev.USER: "to_helpdesk",
    ev.RESOLVE: "to_helpdesk",
    ev.INBOUND: "from_helpdesk",
    ev.TO_BOTPRESS: "to_botpress",
}
