"""`/metrics` after real traffic, `/healthz` and `/readyz`, against fakeredis."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from bridge import contract, stats
from bridge import events as ev
from bridge.app import create_app
from bridge.errors import PermanentError, TransientError
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
    real_load = contract.load

    def slow_load(*args: Any) -> Any:
        time.sleep(0.03)
        return real_load(*args)

    monkeypatch.setattr(contract, "load", slow_load)
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

    monkeypatch.setattr(web_metrics, "series", broken)
    uid = bp.user()
    assert uid
    assert "could not count a request" in caplog.text


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
