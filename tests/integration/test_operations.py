"""Operations through real processes: metrics from a real worker, gunicorn's multiprocess
metrics, and Flower's password."""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BridgeClient
from tests.integration.test_end_to_end import wait_until
from tests.support.processes import Process
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(m: dict[Any, float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_real_worker_moves_the_delivery_counters(
    bridge: BridgeClient, workers: Callable[..., Process]
) -> None:
    def scrape() -> dict[Any, float]:
        r = bridge.client.get("/metrics")
        assert r.status_code == 200
        return parse(r.get_data(as_text=True))

    hd = {"stream": "hd", "direction": "to_helpdesk"}
    before = scrape()
    assert sample(before, "hitl_events_delivered_total", **hd) == 0
    uid = bridge.user()
    cid = bridge.conversation()
    for i in range(3):
        bridge.say(cid, uid, {"text": f"message {i}"})
    waiting = scrape()
    assert sample(waiting, "hitl_queue_depth", **hd) == 4
    assert sample(waiting, "hitl_oldest_event_age_seconds", **hd) > 0
    worker = workers()
    # A scrape reads the gauges and the counters one after the other, not as one snapshot:
    # an ack between them shows the queue before it and the counters after it.
    done = wait_until(
        lambda: (
            (m := scrape())
            and sample(m, "hitl_events_delivered_total", **hd) == 4
            and sample(m, "hitl_queue_depth", **hd) == 0
            and m
        ),
        what="4 deliveries counted and none waiting",
    )
    assert sample(done, "hitl_delivery_latency_seconds_count", **hd) == 4
    assert sample(done, "hitl_delivery_latency_seconds_bucket", le="+Inf", **hd) == 4
    assert 0 < sample(done, "hitl_delivery_latency_seconds_sum", **hd) < 60
    assert sample(done, "hitl_queue_depth", **hd) == 0
    assert sample(done, "hitl_redis_up") == 1
    # This test, a worker and beat hold connections; the cap is redis-server's default.
    assert (
        3 <= sample(done, "hitl_redis_connected_clients") < sample(done, "hitl_redis_max_clients")
    )
    report = bridge.client.get(
        f"/admin/api/conversations/{cid}",
        headers={"Authorization": f"Bearer {bridge_admin_token()}"},
    ).get_json()
    assert [h["outcome"] for h in report["history"]] == ["delivered"] * 4
    # Celery's own lines still reach the worker's output next to the JSON delivery lines.
    out = worker.output()
    assert "ready." in out and '"msg": "delivered"' in out
    assert "message 1" not in out


def bridge_admin_token() -> str:
    from tests.conftest import ADMIN_TOKEN

    return ADMIN_TOKEN


@pytest.fixture
def web(bridge_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **bridge_env,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    proc = Process("web", env, tmp_path)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return get(f"{url}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=30, what=f"web on {url}:\n{proc.output()[-2000:]}")
        yield url, metrics_dir
    finally:
        proc.stop(timeout=20)


def test_two_gunicorn_workers_report_one_total(web: tuple[str, Path]) -> None:
    url, metrics_dir = web
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}

    def total() -> float:
        return sample(parse(get(f"{url}/metrics")[1]), "hitl_http_requests_total", **healthz)

    # The fixture's readiness probe must show (wait_until fails the test if it does not):
    # the worker that answered it may not have flushed its count yet when the other one
    # answers this scrape, so allow a few flush intervals.
    start = n = int(wait_until(total, timeout=5, what="the readiness probe counted"))

    def pids() -> set[str]:
        return {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}

    # Bursts of concurrent requests until both workers have answered some. Each worker
    # writes its counter file at its first flush (once a second), so the bound is time:
    # a fast machine answers thousands of requests before the second file appears.
    deadline = time.monotonic() + 20
    with ThreadPoolExecutor(16) as pool:
        while time.monotonic() < deadline and (n - start < 100 or len(pids()) < 2):
            statuses = list(pool.map(lambda _: get(f"{url}/healthz")[0], range(50)))
            assert statuses == [200] * 50
            n += 50
    assert len(pids()) >= 2, "both gunicorn workers answered"

    # Each worker writes its counts once a second (bridge.metrics.Tally): the total shows
    # once both have written theirs, and from then on whichever worker answers sees it.
    wait_until(lambda: total() == n, timeout=10, what=f"{n} requests counted")
    for _ in range(6):
        status, text = get(f"{url}/metrics")
        assert status == 200
        m = parse(text)
        assert sample(m, "hitl_http_requests_total", **healthz) == n
        assert sample(m, "hitl_redis_up") == 1


def test_flower_runs_only_behind_its_password(bridge_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in bridge_env.items() if k != "FLOWER_BASIC_AUTH"}
    refused = Process("flower", env, tmp_path, tag="-open")
    assert refused.proc.wait(30) == 2
    assert "FLOWER_BASIC_AUTH is not set" in refused.output()

    port = free_port()
    flower = Process(
        "flower",
        {**env, "PORT": str(port), "FLOWER_BASIC_AUTH": "ops:flower-password-1"},
        tmp_path,
    )
    url = f"http://127.0.0.1:{port}/"

    def answering() -> int | None:
        try:
            return get(url)[0]
        except OSError:
            return None

    try:
        assert wait_until(answering, timeout=60, what=f"flower:\n{flower.output()[-2000:]}") == 401
        good = base64.b64encode(b"ops:flower-password-1").decode()
        assert get(url, {"Authorization": f"Basic {good}"})[0] == 200
        assert "flower-password-1" not in " ".join(os.popen(f"ps -o args= -p {flower.proc.pid}"))
    finally:
        flower.stop(timeout=20)


def test_an_idle_conversation_with_a_full_history_stays_under_2_kib(redis_url: str) -> None:
    """Measured on a real Redis: MEMORY USAGE of everything one closed conversation keeps."""
    import redis as redis_lib

    from bridge import events as ev
    from bridge.storage import Conversation, Store

    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    store = Store(r)
    cid = "c_" + "J" * 16
    store.create_conversation(
        Conversation(cid, time.time(), title="Refund please", description="Order 42"),
        ev.Event(ev.CONVERSATION_CREATE, f"hd:{cid}", {}),
    )
    for i in range(60):
        stream = f"bp:{cid}" if i % 2 else f"hd:{cid}"
        if i:
            store.append(ev.Event(ev.AGENT_MESSAGE if i % 2 else ev.MESSAGE, stream, {}))
        token = store.acquire_lease(stream, 10)
        assert token
        e = store.peek(stream, 1)[0]
        head = store.begin(stream, token, e.id, 10, time.time())
        index = (store.key("ticket", "T-123456"), cid) if i == 0 else None
        store.ack(stream, token, e.id, 1, delivered=[e], attempts=head.attempts, index=index)
        store.release_lease(stream, token)
    store.close_conversation(cid)
    keys = [k for k in r.keys("*") if cid in k or k.endswith("T-123456")]
    keys = [k for k in keys if not k.startswith(store.key("kick"))]  # expire within 30 s
    assert store.key("hist", cid) in keys and len(store.history(cid)) == 20
    used = sum(int(r.memory_usage(k) or 0) for k in keys)
    assert used < 2048, {k: r.memory_usage(k) for k in keys}
