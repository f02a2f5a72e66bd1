"""Prometheus metrics: what the web process counts itself, and what it reads from Redis.

Two sources make up one scrape of `GET /metrics`:

- Counters the web process increments (requests, events accepted). gunicorn runs several
  worker processes, so when PROMETHEUS_MULTIPROC_DIR is set (bridge/gunicorn_conf.py sets
  it up) prometheus-client keeps them in per-process files and the scrape adds them up.
- `RedisCollector`, run at scrape time: the workers' delivery counters and latency
  histogram (kept in Redis by the delivery scripts, see bridge/stats.py), and gauges read
  from the live state: queue depth and oldest waiting event per stream kind, dead letters,
  retries scheduled, the Celery broker queue. If Redis cannot be read, the scrape still
  answers, with `hitl_redis_up 0`.

Cost of a scrape: a handful of O(1) commands, plus one pass over the `P:pending` set
(SSCAN, at most SCAN_CAP streams, then one small Lua call per SCAN_CHUNK streams that
returns each stream's length and head timestamp). Past the cap the queue gauges undercount
and `hitl_queue_scan_truncated` is 1.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import redis
from prometheus_client import Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from bridge import events as ev
from bridge import stats
from bridge.redis_client import Script
from bridge.storage import Store

log = logging.getLogger("hitl.metrics")
web_log = logging.getLogger("hitl.web")

#: Streams looked at per scrape, and per Lua call.
SCAN_CAP = 10_000
SCAN_CHUNK = 500
#: The Celery queue drain tasks wait in (a Redis list of that name): bridge/publisher.py.
BROKER_QUEUE = "hitl"

# -- counted by the web process ---------------------------------------------------------
REQUESTS = Counter(
    "hitl_http_requests",
    "HTTP requests answered, by route template and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "hitl_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ACCEPTED = Counter(
    "hitl_events_accepted",
    "Events accepted (durably stored) by the web process, by stream kind and direction",
    ["stream", "direction"],
)

_KINDS = ev.STREAM_KINDS

# For each stream: its length, and the `at` of its head event (the JSON is written by
# bridge.events.Event.to_json with `at` before `data`, so the first match is the event's).
# KEYS: queues
_HEADS = """
local out = {}
for i = 1, #KEYS do
  local n = redis.call('LLEN', KEYS[i])
  local at = '0'
  if n > 0 then
    local head = redis.call('LINDEX', KEYS[i], 0)
    at = string.match(head, '"at":([-0-9.eE+]+)') or '0'
  end
  out[#out + 1] = n
  out[#out + 1] = at
end
return out
"""


def labels(kind: str) -> list[str]:
    return [kind, stats.DIRECTIONS.get(kind, kind)]


class Tally:
    """Counts kept in the process and added to prometheus-client's values once a second.

    In multiprocess mode every `inc()` takes a lock, asks the OS for the pid and writes a
    mmap'ed file: the four a request made cost more than all the rest of the bridge's own
    work on it. Here a request costs a dict update; a flusher thread adds the sums up every
    `interval` seconds, so a scrape sees another process's counts at most that late (its
    own process flushes first) and the files see a write per series per second at most.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # a scrape waits for a flush under way to end
        self._counts: dict[tuple[Any, tuple[str, ...]], int] = {}
        # (histogram, labels) -> [count per bucket..., sum of the values]
        self._observed: dict[tuple[Any, tuple[str, ...]], list[float]] = {}
        self._flusher: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self.flush)

    def inc(self, counter: Counter, *labels: str) -> None:
        key = (counter, labels)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        if self._flusher is None:
            self._start()

    def observe(self, histogram: Histogram, value: float, *labels: str) -> None:
        bounds = histogram._upper_bounds  # ends with +Inf
        key = (histogram, labels)
        with self._lock:
            tally = self._observed.get(key)
            if tally is None:
                tally = self._observed[key] = [0.0] * (len(bounds) + 1)
            tally[bisect.bisect_left(bounds, value)] += 1
            tally[-1] += value
        if self._flusher is None:
            self._start()

    def flush(self) -> None:
        """Add what was counted since the last flush to prometheus-client's values."""
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, {}
                observed, self._observed = self._observed, {}
            for (counter, labels), n in counts.items():
                series(counter, *labels).inc(n)
            for (histogram, labels), tally in observed.items():
                child = series(histogram, *labels)
                # No public bulk observe: add to the buckets and sum observe() itself adds
                # to (tests/unit/test_metrics.py holds the two to the same exposition).
                for bucket, hits in zip(child._buckets, tally[:-1], strict=True):
                    if hits:
                        bucket.inc(hits)
                child._sum.inc(tally[-1])

    def _start(self) -> None:
        with self._lock:
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._run, name="hitl-metrics-flush", daemon=True
                )
                self._flusher.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # a flush that failed must not end the flushing
                log.exception("metrics: could not flush the process counters")

    def _forked(self) -> None:
        # The child has no flusher thread, and the parent's counts are the parent's to flush.
        self._lock, self._flushing = threading.Lock(), threading.Lock()
        self._counts, self._observed, self._flusher = {}, {}, None


_series: dict[tuple[Any, tuple[str, ...]], Any] = {}


def series(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once per process: `labels()` checks and locks on
    every call, and the same few label combinations come back again and again."""
    if not values:
        return metric  # a metric without labels is its own only series
    key = (metric, values)
    found = _series.get(key)
    if found is None:
        found = _series[key] = metric.labels(*values)
    return found


#: The web process's counts: requests, their durations, events accepted.
TALLY = Tally()


def accepted(event: ev.Event, route: str) -> None:
    """Count and log one event the web stored (ids only: never its text)."""
    kind, _ = ev.split_stream(event.stream)
    TALLY.inc(ACCEPTED, *labels(kind))
    if web_log.isEnabledFor(logging.INFO):  # the fields cost more than the check
        web_log.info(
            "accepted",
            extra={
                "stream": event.stream,
                "event_id": event.id,
                "kind": event.kind,
                "route": route,
            },
        )


def rang(conversation_id: str, route: str) -> None:
    """Count and log one doorbell ring from a helpdesk webhook."""
    TALLY.inc(ACCEPTED, *labels(ev.INBOUND))
    web_log.info(
        "accepted",
        extra={
            "stream": ev.stream(ev.INBOUND, conversation_id),
            "kind": ev.RING,
            "route": route,
        },
    )


class RedisCollector:
    """Reads the system's state from Redis at scrape time (never raises)."""

    def __init__(self, store: Store, *, scan_cap: int = SCAN_CAP) -> None:
        self.store = store
        self.scan_cap = scan_cap
        self._heads = Script(store.redis, _HEADS)

    def describe(self) -> list[Metric]:
        return []  # collected fresh at every scrape; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hitl_redis_up", "1 when Redis answered this scrape")
        try:
            families = list(self._collect())
        except Exception as exc:  # a scrape must answer whatever happens
            log.warning("metrics: cannot read Redis", extra={"error": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _collect(self) -> Iterator[Metric]:
        store, now = self.store, time.time()
        r = store.redis
        streams: list[str] = []
        truncated = False
        for s in r.sscan_iter(store.key("pending"), count=1000):
            if len(streams) >= self.scan_cap:
                truncated = True
                break
            streams.append(str(s))
        depth = dict.fromkeys(_KINDS, 0)
        busy = dict.fromkeys(_KINDS, 0)
        oldest = dict.fromkeys(_KINDS, 0.0)
        for i in range(0, len(streams), SCAN_CHUNK):
            chunk = streams[i : i + SCAN_CHUNK]
            out = cast(list[Any], self._heads(keys=[store.queue_key(s) for s in chunk]))
            for j, s in enumerate(chunk):
                kind = s.partition(":")[0]
                n, at = int(out[2 * j]), float(out[2 * j + 1] or 0)
                if kind not in depth or n == 0:
                    continue
                depth[kind] += n
                busy[kind] += 1
                if at > 0:
                    oldest[kind] = max(oldest[kind], now - at)
        pipe = r.pipeline(transaction=False)
        pipe.zcard(store.key("dlq", "order"))
        pipe.zcard(store.key("due"))
        pipe.zcard(store.key("open"))
        pipe.llen(BROKER_QUEUE)
        pipe.hgetall(store.key("stats"))
        dead, deferred, open_, broker, counters = pipe.execute()

        def gauge(name: str, doc: str, values: dict[str, Any]) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["stream", "direction"])
            for kind, v in values.items():
                g.add_metric(labels(kind), v)
            return g

        yield gauge("hitl_queue_depth", "Events waiting for delivery, by stream kind", depth)
        yield gauge(
            "hitl_pending_streams", "Streams (conversations, users) with events waiting", busy
        )
        yield gauge(
            "hitl_oldest_event_age_seconds",
            "Age of the oldest undelivered event at the head of a stream (0: none waiting)",
            {k: round(v, 3) for k, v in oldest.items()},
        )
        yield GaugeMetricFamily(
            "hitl_queue_scan_truncated",
            f"1 when more than {self.scan_cap} streams were pending and the queue gauges "
            "undercount",
            value=int(truncated),
        )
        yield GaugeMetricFamily("hitl_dead_letters", "Dead letters stored", value=int(dead))
        yield GaugeMetricFamily(
            "hitl_deferred_streams", "Streams whose head waits for a retry", value=int(deferred)
        )
        yield GaugeMetricFamily(
            "hitl_open_conversations", "Conversations handed off and not closed", value=int(open_)
        )
        broker_g = GaugeMetricFamily(
            "hitl_broker_queue_length", "Celery tasks waiting in the broker", labels=["queue"]
        )
        broker_g.add_metric([BROKER_QUEUE], int(broker))
        yield broker_g
        yield from self._clients()
        yield from self._counters(cast(dict[str, str], counters))

    def _clients(self) -> Iterator[Metric]:
        """Connections against the server's cap: hosted plans allow few (Heroku's smallest
        20) and every process holds several (docs/operating.md, "Production Redis")."""
        try:
            info = self.store.redis.info("clients")
        except redis.ResponseError:
            return  # some hosted Redis (and test doubles) refuse INFO
        for name, field, doc in (
            ("hitl_redis_connected_clients", "connected_clients", "Clients connected to Redis"),
            ("hitl_redis_max_clients", "maxclients", "Redis's client cap (maxclients)"),
        ):
            if field in info:
                yield GaugeMetricFamily(name, doc, value=int(info[field]))

    def _counters(self, h: dict[str, str]) -> Iterator[Metric]:
        def num(field: str) -> float:
            return float(h.get(field) or 0)

        for name, code, doc in (
            ("hitl_events_delivered", stats.DELIVERED, "Events delivered, by stream kind"),
            ("hitl_delivery_retries", stats.RETRIED, "Failed attempts scheduled to retry"),
            ("hitl_dead_lettered", stats.DEAD_LETTERED, "Events moved to the dead letters"),
            ("hitl_dead_letters_replayed", stats.REPLAYED, "Dead letters put back to deliver"),
        ):
            c = CounterMetricFamily(name, doc, labels=["stream", "direction"])
            for kind in _KINDS:
                if code == stats.DELIVERED:
                    c.add_metric(labels(kind), float(stats.delivered(h, kind)))
                else:
                    c.add_metric(labels(kind), num(stats.counter(code, kind)))
            yield c
        hist = HistogramMetricFamily(
            "hitl_delivery_latency_seconds",
            "From an event's acceptance to its delivery, retries included",
            labels=["stream", "direction"],
        )
        for kind in _KINDS:
            cumulative, buckets = 0.0, []
            bounds = [*map(str, stats.LATENCY_BUCKETS), "+Inf"]
            for i, bound in enumerate(bounds):
                cumulative += num(stats.bucket_field(kind, i))
                buckets.append((bound, cumulative))
            hist.add_metric(labels(kind), buckets, num(stats.latency_sum_field(kind)))
        yield hist
