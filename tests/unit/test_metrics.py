"""`/metrics` after real traffic, `/healthz` and `/readyz`, against fakeredis."""

from __future__ import annotations

import os
import time
from typing import Any

import fakeredis
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from bridge import contract, stats
from bridge import events as ev
from bridge import metrics as metrics_module
from bridge.app import create_app
from bridge.errors import PermanentError, TransientError
from bridge.metrics import Tally
from bridge.runtime import Runtime
from bridge.storage import Store
from bridge.web import metrics as web_metrics
from tests.conftest import BridgeClient
from tests.support.scripted import ScriptedHelpdesk, helpdesk, open_conversation, say
from workers.context import Context
from workers.drain import drain


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict[Any, float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def hd(name: str, m: dict[Any, float], **extra: str) -> float:
    return value(m, name, stream="hd", direction="to_helpdesk", **extra)


def test_requests_and_accepted_events_are_counted_by_route_and_direction(
    bp: BridgeClient, client: FlaskClient
) -> None:
    before = scrape(client)
    uid = bp.user()
    cid = bp.conversation()
    bp.say(cid, uid, {"text": "hello"})
    bp.say(cid, "BOT", {"text": "hi"})
    assert bp.call("botSendsMessage", {"type": "nope"}).status_code == 400
    client.get("/nowhere")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/botpress/<secret>/botSendsMessage"
    assert delta("hitl_http_requests_total", route=route, method="POST", status="200") == 2
    assert delta("hitl_http_requests_total", route=route, method="POST", status="400") == 1
    assert delta("hitl_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("hitl_http_request_duration_seconds_count", route=route) == 3
    assert delta("hitl_events_accepted_total", stream="hd", direction="to_helpdesk") == 3
    assert delta("hitl_events_accepted_total", stream="hu", direction="to_helpdesk") == 1
    # The secret never becomes a label.
    assert not any("test-secret" in str(k) for k in after)


def test_unknown_methods_share_one_series(client: FlaskClient) -> None:
    """Clients may send any method token; each must not become a series of its own."""
    before = scrape(client)
    for method in ("BREW", "WHEN", "SPAM1"):
        assert client.open("/nowhere", method=method).status_code == 404
    after = scrape(client)
    series = [k for k in after if k[0] == "hitl_http_requests_total"]
    assert not any(m in str(k) for k in series for m in ("BREW", "WHEN", "SPAM1"))
    labels = {"route": "unmatched", "method": "other", "status": "404"}
    assert (
        value(after, "hitl_http_requests_total", **labels)
        - value(before, "hitl_http_requests_total", **labels)
        == 3
    )


def test_request_time_counts_from_arrival_to_the_answer(
    bp: BridgeClient, client: FlaskClient, monkeypatch: Any
) -> None:
    route = "/botpress/<secret>/botSendsMessage"
    before = scrape(client)
    real_check = contract.usual_message  # on both paths: the express lane's and Flask's

    def slow_check(*args: Any) -> Any:
        time.sleep(0.03)
        return real_check(*args)

    monkeypatch.setattr(contract, "usual_message", slow_check)
    uid, cid = bp.user(), bp.conversation()
    bp.say(cid, uid, {"text": "hello"})
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        labels["route"] = route
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hitl_http_request_duration_seconds_count") == 1
    assert delta("hitl_http_request_duration_seconds_bucket", le="0.025") == 0
    assert delta("hitl_http_request_duration_seconds_bucket", le="0.1") == 1
    assert 0.03 <= delta("hitl_http_request_duration_seconds_sum") < 0.1


def test_a_counter_that_fails_never_breaks_the_answer(
    bp: BridgeClient, monkeypatch: Any, caplog: Any
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("metrics file gone")

    monkeypatch.setattr(web_metrics.TALLY, "observe", broken)
    uid = bp.user()
    assert uid
    assert "could not count a request" in caplog.text


def test_metric_files_that_fail_break_neither_an_answer_nor_a_scrape(
    bp: BridgeClient, client: FlaskClient, monkeypatch: Any, caplog: Any
) -> None:
    """The files are written by the flush, off the request's path: an event stored is
    answered 200 whatever they do, and a scrape still answers with what Redis says."""

    def broken(*args: Any) -> Any:
        raise OSError("metrics file gone")

    monkeypatch.setattr(metrics_module, "series", broken)
    uid, cid = bp.user(), bp.conversation()
    bp.say(cid, uid, {"text": "hello"})
    m = scrape(client)
    assert value(m, "hitl_redis_up") == 1
    assert "could not flush the process counters" in caplog.text


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_tally_flushes_to_what_counting_each_one_gives() -> None:
    """The tally writes to the histogram's buckets and sum itself (prometheus-client has no
    bulk observe): its exposition must be what observe() and inc() one by one give."""

    def family(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
        counter = Counter("c", "c", ["route"], registry=registry)
        hist = Histogram("h", "h", ["route"], buckets=(0.01, 0.1, 1.0), registry=registry)
        return counter, hist

    direct, tallied = CollectorRegistry(), CollectorRegistry()
    (c1, h1), (c2, h2) = family(direct), family(tallied)
    tally = Tally(interval=3600)
    values = [0.0, 0.005, 0.01, 0.010001, 0.1, 0.5, 1.0, 7.5, 1e9, 0.02]
    for i, v in enumerate(values):
        route = "/a" if i % 3 else "/b"
        c1.labels(route).inc()
        h1.labels(route).observe(v)
        tally.inc(c2, route)
        tally.observe(h2, v, route)
    assert samples(tallied) == {}  # nothing written before the flush
    tally.flush()
    assert samples(tallied) == samples(direct)
    tally.flush()  # nothing new: nothing added twice
    assert samples(tallied) == samples(direct)


def test_a_tally_flushes_by_itself_without_a_scrape() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    tally = Tally(interval=0.05)
    for _ in range(3):
        tally.inc(counter)
    deadline = time.monotonic() + 5
    while registry.get_sample_value("c_total") != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.get_sample_value("c_total") == 3


def test_a_forked_child_starts_its_tally_afresh() -> None:
    """What the parent counted is the parent's to flush; the child must not add it again."""
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    tally = Tally(interval=3600)
    tally.inc(counter)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: flush, report what it sees, leave at once
        tally.flush()
        tally.inc(counter)
        tally.flush()
        os.write(write, str(registry.get_sample_value("c_total")).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"1.0"
    tally.flush()
    assert registry.get_sample_value("c_total") == 1


def test_queue_gauges_show_what_waits_and_for_how_long(
    runtime: Runtime, client: FlaskClient
) -> None:
    store = runtime.store
    old = time.time() - 120
    for cid in ("c_1", "c_2"):
        store.append(ev.Event(ev.MESSAGE, f"hd:{cid}", {"author": "BOT"}, at=old))
    store.append(ev.Event(ev.MESSAGE, "hd:c_1", {"author": "BOT"}))
    store.append(ev.Event(ev.AGENT_MESSAGE, "bp:c_1", {}))
    store.redis.rpush("hitl", "task-1", "task-2")
    m = scrape(client)
    assert value(m, "hitl_redis_up") == 1
    assert hd("hitl_queue_depth", m) == 3
    assert hd("hitl_pending_streams", m) == 2
    assert 119 <= hd("hitl_oldest_event_age_seconds", m) <= 130
    assert value(m, "hitl_queue_depth", stream="bp", direction="to_botpress") == 1
    assert value(m, "hitl_queue_depth", stream="in", direction="from_helpdesk") == 0
    assert value(m, "hitl_broker_queue_length", queue="hitl") == 2
    assert value(m, "hitl_queue_scan_truncated") == 0


def test_worker_outcomes_reach_the_web_scrape_through_redis(
    ctx: Context, runtime: Runtime, client: FlaskClient
) -> None:
    # The worker's Context and the web's Runtime share one (fake) Redis.
    assert ctx.store.redis is runtime.store.redis
    stream = open_conversation(ctx)
    say(ctx, "c_1", "BOT", "one")
    say(ctx, "c_1", "BOT", "two")
    helpdesk(ctx).failures = [TransientError("HTTP 503")]
    drain(ctx, stream)  # the creation fails once
    ctx.store.redis.hset(ctx.store.key("head", stream), "due", "0")
    assert drain(ctx, stream) == 3
    open_conversation(ctx, "c_2")
    helpdesk(ctx).failures = [PermanentError("HTTP 422")]
    drain(ctx, "hd:c_2")

    m = scrape(client)
    assert hd("hitl_events_delivered_total", m) == 3
    assert hd("hitl_delivery_retries_total", m) == 1
    assert hd("hitl_dead_lettered_total", m) == 1
    assert value(m, "hitl_dead_letters") == 1
    assert hd("hitl_delivery_latency_seconds_count", m) == 3
    assert hd("hitl_delivery_latency_seconds_bucket", m, le="+Inf") == 3
    assert hd("hitl_delivery_latency_seconds_bucket", m, le="60.0") == 3
    assert 0 <= hd("hitl_delivery_latency_seconds_sum", m) < 60
    assert hd("hitl_queue_depth", m) == 0


def test_latency_buckets_are_cumulative(
    ctx: Context, runtime: Runtime, client: FlaskClient
) -> None:
    stream = "bp:c_9"
    now = time.time()
    for age in (0.0, 3.0, 4000.0):
        ctx.store.append(ev.Event(ev.AGENT_MESSAGE, stream, {"payload": {}}, at=now - age))
    assert drain(ctx, stream) == 3
    m = scrape(client)

    def bucket(le: str) -> float:
        return value(
            m, "hitl_delivery_latency_seconds_bucket", stream="bp", direction="to_botpress", le=le
        )

    assert bucket("0.05") == 1 and bucket("5.0") == 2 and bucket("1800.0") == 2
    assert bucket("7200.0") == 3 and bucket("+Inf") == 3
    assert (
        4003
        <= value(m, "hitl_delivery_latency_seconds_sum", stream="bp", direction="to_botpress")
        < 4010
    )


def test_metrics_answers_with_redis_down(settings: Any) -> None:
    server = fakeredis.FakeServer()
    store = Store(fakeredis.FakeRedis(server=server, decode_responses=True))
    rt = Runtime(settings, store, ScriptedHelpdesk(settings, store), lambda s, c: None)
    client = create_app(runtime=rt).test_client()
    server.connected = False
    m = scrape(client)
    assert value(m, "hitl_redis_up") == 0
    assert not any(name == "hitl_queue_depth" for name, _ in m)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["redis"].startswith("unreachable")
    assert client.get("/healthz").status_code == 200


def test_readyz_names_the_helpdesk_and_its_config(client: FlaskClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {
        "ok": True,
        "redis": "ok",
        "helpdesk": "inbox",
        "helpdesk_config": "ok",
    }


def test_stats_fields_are_documented_names() -> None:
    assert stats.counter(stats.DELIVERED, "hd") == "d:hd"
    assert stats.bucket_index(0.05) == 0 and stats.bucket_index(0.051) == 1
    assert stats.bucket_index(10**9) == len(stats.LATENCY_BUCKETS)
