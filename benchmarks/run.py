"""Run every benchmark and print one table: `python -m benchmarks.run` (or `python -m benchmarks`).

Everything runs on loopback, in bounded loops, and stops by itself. Each comparison is
measured side by side in the same run, so its ratio holds on a noisy machine. See
benchmarks/README.md for what each figure means, and docs/performance.md for the latest.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from bridge import events as ev  # noqa: E402
from bridge import procfile  # noqa: E402
from bridge.app import build_runtime  # noqa: E402
from bridge.config import DEFAULT_WORKER_CONCURRENCY, Settings  # noqa: E402
from bridge.storage import Conversation, User  # noqa: E402
from tests.support.fake_botpress import FakeBotpress  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

SECRET = "bench-secret-0123456789"
#: Ingress rounds per side (each `seconds / 5` long).
ROUNDS = 12
ADMIN = "bench-admin-0123456789"


@dataclass
class Row:
    area: str
    metric: str
    value: str
    target: str
    ok: bool | None

    def cells(self) -> list[str]:
        verdict = {True: "yes", False: "NO", None: "-"}[self.ok]
        return [self.area, self.metric, self.value, self.target, verdict]


#: The worker's pool and concurrency (WORKER_POOL, WORKER_CONCURRENCY) for the end-to-end and
#: scale runs, the Procfile's defaults unless set; plain Celery gets the same.
POOL = os.environ.get("BENCH_POOL", "gevent")
WORKERS = int(os.environ.get("BENCH_WORKERS", {"gevent": "256", "threads": "16"}.get(POOL, "2")))

ROWS: list[Row] = []


def row(area: str, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
    ROWS.append(Row(area, metric, value, target, ok))
    print(f"  {area:<10} {metric:<58} {value:>16}  {target}", flush=True)


def worker_env(concurrency: int) -> dict[str, str]:
    return {"WORKER_POOL": POOL, "WORKER_CONCURRENCY": str(concurrency)}


# -- processes ------------------------------------------------------------------------------
class Env:
    def __init__(self, redis_url: str, botpress: FakeBotpress, logs: Path) -> None:
        self.redis_url = redis_url
        self.logs = logs
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "BOTPRESS"))},
            "REDIS_URL": redis_url,
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN,
            "BOTPRESS_WEBHOOK_URL": botpress.webhook_url,
            "HELPDESK": "inbox",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def spawn(self, name: str, command: str | None = None, **extra: str) -> subprocess.Popen[bytes]:
        env = {**self.env, **extra}
        log = (self.logs / f"{name}.log").open("ab")
        if command is None:
            return procfile.spawn(name, env, stdout=log, stderr=subprocess.STDOUT)
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        procfile.stop([proc], timeout=30)


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.post(f"http://127.0.0.1:{port}/x/ping", json={}, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


def wait_worker(env: Env, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in (env.logs / f"{name}.log").read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} never became ready")


def gunicorn(env: Env, name: str, app: str, port: int) -> subprocess.Popen[bytes]:
    """The Procfile's web command, or the same gunicorn settings serving `app`."""
    extra = {"PORT": str(port), "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}"}
    if app == "bridge":
        return env.spawn("web", **extra)
    return env.spawn(name, f"gunicorn --config python:bridge.gunicorn_conf {app}", **extra)


# -- ingress --------------------------------------------------------------------------------
def open_conversations(port: int, n: int) -> list[tuple[str, str]]:
    """n (user id, conversation id) pairs created through the web process, as Botpress does."""
    s = requests.Session()
    base = f"http://127.0.0.1:{port}/botpress/{SECRET}"
    pairs = []
    for i in range(n):
        uid = s.post(
            f"{base}/createRemoteUser",
            json={"type": "createRemoteUser", "payload": {"name": f"u{i}"}},
        ).json()["id"]
        cid = s.post(
            f"{base}/createRemoteConversation",
            json={"type": "createRemoteConversation", "payload": {"title": f"c{i}"}},
        ).json()["id"]
        pairs.append((uid, cid))
    return pairs


def bridge_bodies(port: int, n_conversations: int) -> list[bytes]:
    bodies = []
    for uid, cid in open_conversations(port, n_conversations):
        body = {
            "type": "botSendsMessage",
            "remoteConversationId": cid,
            "remoteUserId": uid,
            "payload": {"text": "Hello, I would like to change my delivery address please."},
        }
        bodies.append(
            loadgen.request_bytes(
                "127.0.0.1", port, f"/botpress/{SECRET}/botSendsMessage", json.dumps(body).encode()
            )
        )
    return bodies


def request(port: int, path: str, body: bytes) -> bytes:
    return loadgen.request_bytes("127.0.0.1", port, path, body)


class Consoles:
    """`benchmarks/consoles.py` in a process of its own: fifty open agent consoles on the
    bridge's web, their event streams on the live process (`live`: its pid, for its CPU
    time), opened and closed round by round."""

    def __init__(
        self, env: Env, port: int, consoles: int, live: subprocess.Popen[bytes], live_port: int
    ) -> None:
        self.live = live
        self.live_cpu = 0.0
        argv = ["-m", "benchmarks.consoles", "--port", str(port), "--consoles", str(consoles)]
        argv += ["--live-port", str(live_port)]
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=env.env,
            start_new_session=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(env.logs / "consoles.log").open("ab"),
        )
        if self._line() != "ready":
            raise RuntimeError(f"the console simulator did not start: see {env.logs}")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().strip()

    def _say(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        self.proc.stdin.flush()

    def start(self, mode: str) -> None:
        """Open the consoles; returns once each has its first event (open before the round)."""
        self._say(f"start {mode}")
        if (line := self._line()) != "open":
            raise RuntimeError(f"the consoles did not open: {line!r}")
        self.live_cpu = cpu_seconds(self.live.pid)

    def stop(self) -> dict[str, Any]:
        self._say("stop")
        done = cast(dict[str, Any], json.loads(self._line()))
        done["live_cpu"] = cpu_seconds(self.live.pid) - self.live_cpu
        return done


#: The ingress sides: (the bridge or the trivial app, route, consoles open: '', idle, busy).
SIDES = {
    "bridge": ("bridge", "", ""),
    "trivial": ("trivial", "/trivial", ""),
    "stored": ("trivial", "/stored", ""),
    "consoles idle": ("bridge", "", "idle"),
    "consoles busy": ("bridge", "", "busy"),
}


def bench_ingress(env: Env, seconds: float, connections: int, consoles: int = 50) -> None:
    print("ingress: botSendsMessage through the Procfile's web vs a trivial Flask route")
    p_bridge, p_trivial, p_live = free_port(), free_port(), free_port()
    live_cmd = "python -m bridge.helpdesks.inbox.live --host 127.0.0.1"
    with (
        running(gunicorn(env, "web", "bridge", p_bridge)),
        running(gunicorn(env, "trivial", "benchmarks.trivial_app:app", p_trivial)),
        running(env.spawn("live", live_cmd, LIVE_PORT=str(p_live))) as live,
    ):
        wait_http(p_bridge)
        wait_http(p_trivial)
        wait_http(p_live)
        bridge = loadgen.rotate(bridge_bodies(p_bridge, 1000))
        doc = bridge(0).split(b"\r\n\r\n", 1)[1]  # the same JSON document for all sides
        sim = Consoles(env, p_bridge, consoles, live, p_live)
        with running(sim.proc):
            rates, console_stats = ingress_rounds(
                sim, p_bridge, p_trivial, bridge, doc, seconds, connections
            )

        def ratio(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

        b, t, s = (statistics.median(rates[n]) for n in ("bridge", "trivial", "stored"))
        bt, st, bs = (
            ratio("bridge", "trivial"),
            ratio("stored", "trivial"),
            ratio("bridge", "stored"),
        )
        row("ingress", "trivial Flask JSON route, requests/s (median)", f"{t:,.0f}")
        row("ingress", "same + one Redis round trip (PING), requests/s", f"{s:,.0f}")
        row("ingress", "bridge botSendsMessage, requests/s", f"{b:,.0f}")
        row(
            "ingress",
            "ratio bridge / trivial (median of rounds)",
            f"{bt:.2f}x",
            ">= 0.70x",
            bt >= 0.7,
        )
        row("ingress", "ratio trivial + one round trip / trivial (Flask floor)", f"{st:.2f}x")
        row("ingress", "ratio bridge / trivial + one round trip", f"{bs:.2f}x")
        spread = sorted(x / y for x, y in zip(rates["bridge"], rates["trivial"], strict=True))
        row(
            "ingress",
            "ratio bridge / trivial, lowest / highest round",
            f"{spread[0]:.2f}x / {spread[-1]:.2f}x",
        )
        for mode in ("idle", "busy"):
            name = f"consoles {mode}"
            ct = ratio(name, "trivial")
            row(
                "ingress",
                f"{consoles} {mode} consoles: bridge requests/s",
                f"{statistics.median(rates[name]):,.0f}",
            )
            row("ingress", f"{consoles} {mode} consoles: ratio bridge / trivial", f"{ct:.2f}x")
            # The same round's bridge without consoles is the reference: (consoles / trivial)
            # / (bridge / trivial) within a round is consoles / bridge, and rounds next to each
            # other in time share this VM's phase, which a ratio of two medians does not.
            within = ratio(name, "bridge")
            row(
                "ingress",
                f"{consoles} {mode} consoles: ratio with / without them, per round",
                f"{within:.2f}x",
                ">= 0.90x",
                within >= 0.9,
            )
            row(
                "ingress",
                f"{consoles} {mode} consoles: ratio of the medians (for comparison)",
                f"{ct / bt:.2f}x",
            )
            stats = console_stats[mode]
            secs = sum(x["seconds"] for x in stats)
            events = sum(x["events"] for x in stats) / secs
            keepalives = sum(x["keepalives"] for x in stats) / secs
            cpu = sum(x["live_cpu"] for x in stats) / secs
            bad = sum(x["errors"] for x in stats) + sum(
                n for x in stats for code, n in x["statuses"].items() if code != "200"
            )
            row(
                "ingress",
                f"{consoles} {mode} consoles: events, keep-alives per s (errors, non-200)",
                f"{events:,.1f}, {keepalives:,.1f} ({bad})",
            )
            row(
                "ingress",
                f"{consoles} {mode} consoles: live process CPU, % of a core",
                f"{cpu * 100:.1f} %",
            )
            if mode == "busy":
                d = loadgen.Result(latencies=[x for s_ in stats for x in s_["delays"]])
                changes = sum(x["changes"] for x in stats) / secs
                p50, p99 = d.percentile(50) * 1000, d.percentile(99) * 1000
                row(
                    "ingress",
                    f"{consoles} busy consoles: change -> event p50 / p99 ({changes:.1f}/s)",
                    f"{p50:,.0f} / {p99:,.0f} ms",
                    "< 1 s",
                    p99 < 1000 if d.latencies else None,  # none settled in --quick rounds
                )
        r = loadgen.open_loop("127.0.0.1", p_bridge, bridge, rate=500, seconds=seconds)
        assert set(r.statuses) == {200}, r.statuses
        row("ingress", "bridge latency at 500 req/s: p50", f"{r.percentile(50) * 1000:.1f} ms")
        p99 = r.percentile(99) * 1000
        row("ingress", "bridge latency at 500 req/s: p99", f"{p99:.1f} ms", "< 15 ms", p99 < 15)


def ingress_rounds(
    sim: Consoles,
    p_bridge: int,
    p_trivial: int,
    bridge: Callable[[int], bytes],
    doc: bytes,
    seconds: float,
    connections: int,
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, Any]]]]:
    """Requests/s of every side, round by round; what the consoles did, round by round."""
    makes = {
        "bridge": (p_bridge, bridge),
        "/trivial": (p_trivial, loadgen.rotate([request(p_trivial, "/trivial", doc)])),
        "/stored": (p_trivial, loadgen.rotate([request(p_trivial, "/stored", doc)])),
    }
    rates: dict[str, list[float]] = {name: [] for name in SIDES}
    stats: dict[str, list[dict[str, Any]]] = {"idle": [], "busy": []}

    def one(name: str, length: float) -> float:
        _, route, consoles = SIDES[name]
        port, make = makes[route or "bridge"]
        if consoles:
            sim.start(consoles)
        r = loadgen.closed_loop("127.0.0.1", port, make, connections=connections, seconds=length)
        if consoles:
            stats[consoles].append(sim.stop())
        assert set(r.statuses) == {200}, (name, r.statuses)
        return r.rate

    # Warm every side, then alternate short rounds (order reversed every other round),
    # so each round of a side has a round of the others beside it in time. This VM's
    # speed moves in phases of seconds to minutes: a ratio is taken within each round
    # and the median over rounds kept; a phase that favours one side in one round
    # (which a best-of-N per side would keep) moves the median by one rank at most.
    for name in SIDES:
        one(name, 2)
    stats = {"idle": [], "busy": []}
    names = list(SIDES)
    for k in range(ROUNDS):
        for name in names if k % 2 == 0 else names[::-1]:
            rates[name].append(one(name, seconds / 5))
    return rates, stats


# -- end to end -----------------------------------------------------------------------------
def _flush(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushall()
    return client


def bench_plain_celery(env: Env, events: int, concurrency: int) -> float:
    client = _flush(env.redis_url)
    os.environ["REDIS_URL"] = env.redis_url
    from benchmarks.plain_celery import app as plain

    cmd = (
        f"celery -A benchmarks.plain_celery worker --loglevel=INFO --queues=plain "
        f"--pool={POOL} --concurrency={concurrency} --without-gossip --without-mingle"
    )
    with running(env.spawn("plain-worker", cmd, REDIS_URL=env.redis_url)):
        wait_worker(env, "plain-worker")
        plain.conf.broker_url = env.redis_url
        t0 = time.perf_counter()
        with plain.producer_or_acquire() as producer:
            for i in range(events):
                plain.send_task("bench.noop", args=[f"e{i}"], queue="plain", producer=producer)
        while client.llen("plain") or client.hlen("unacked"):
            time.sleep(0.01)
        return events / (time.perf_counter() - t0)


def _settings(env: Env) -> Settings:
    return Settings.from_env(env.env)


def _seed(env: Env, n: int, *, messages: int = 0) -> list[tuple[str, str]]:
    """n users and conversations written as ingress writes them (no HTTP), with their
    creation events queued; returns (user id, conversation id) pairs."""
    rt = build_runtime(_settings(env))
    store = rt.store
    pairs = []
    for i in range(n):
        user = User(id=f"u_b{i:06d}", name=f"user {i}")
        upsert = ev.Event(ev.USER_UPSERT, ev.stream(ev.USER, user.id), {"user": user.id})
        rt.start(store.create_user(user, upsert))
        conv = Conversation(id=f"c_b{i:06d}", created_at=time.time(), title=f"conversation {i}")
        create = ev.Event(
            ev.CONVERSATION_CREATE,
            ev.stream(ev.TO_HELPDESK, conv.id),
            {"title": conv.title, "description": "", "user_id": user.id, "history": []},
        )
        rt.start(store.create_conversation(conv, create))
        pairs.append((user.id, conv.id))
        for k in range(messages):
            rt.append(_message(conv.id, user.id, k))
    return pairs


def _message(cid: str, uid: str, k: int) -> ev.Event:
    return ev.Event(
        ev.MESSAGE,
        ev.stream(ev.TO_HELPDESK, cid),
        {"author": uid, "type": "text", "payload": {"text": f"message {k}"}},
    )


def _wait_drained(client: redis.Redis, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while client.scard("hb:pending"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.scard('hb:pending')} streams never drained")
        time.sleep(0.01)


def bridge_drain_rate(env: Env, pairs: list[tuple[str, str]], events: int) -> float:
    """Queue `events` messages over `pairs` exactly as ingress does (append + kick), and time
    them until the inbox holds them all. Returns events/s."""
    rt = build_runtime(_settings(env))
    client = redis.Redis.from_url(env.redis_url, decode_responses=True)
    t0 = time.perf_counter()
    per = events // len(pairs)
    for k in range(per):
        for uid, cid in pairs:
            rt.append(_message(cid, uid, 1000 + k))
    _wait_drained(client)
    return per * len(pairs) / (time.perf_counter() - t0)


def bench_end_to_end(
    env: Env, botpress: FakeBotpress, events: int, concurrency: int, seconds: float
) -> None:
    print("end to end: the bridge's workers vs plain Celery (one no-op task per event)")
    plain = bench_plain_celery(env, events, concurrency)
    client = _flush(env.redis_url)
    with running(env.spawn("worker", **worker_env(concurrency))):
        wait_worker(env, "worker")
        pairs = _seed(env, 100)
        _wait_drained(client)
        bridge = bridge_drain_rate(env, pairs, events)
    row(
        "e2e",
        f"plain Celery, no-op task per event, events/s ({POOL}, {concurrency})",
        f"{plain:,.0f}",
    )
    row("e2e", "bridge, queued -> in the helpdesk (inbox), events/s", f"{bridge:,.0f}")
    row(
        "e2e",
        "ratio bridge / plain Celery",
        f"{bridge / plain:.2f}x",
        ">= 1.5x",
        bridge / plain >= 1.5,
    )
    latency_at_rate(env, botpress, concurrency, seconds)


def latency_at_rate(env: Env, botpress: FakeBotpress, concurrency: int, seconds: float) -> None:
    """200 events/s through the whole loop: 150 botSendsMessage/s (ingress accepted ->
    written in the inbox) and 50 agent replies/s (inbox API accepted -> received by the
    fake Botpress)."""
    client = _flush(env.redis_url)
    port = free_port()
    web = gunicorn(env, "web", "bridge", port)
    worker = env.spawn("worker", **worker_env(concurrency))
    beat = env.spawn("beat")
    with running(web), running(worker), running(beat):
        wait_http(port)
        wait_worker(env, "worker")
        n_conv = 100
        convs = open_conversations(port, n_conv)
        _wait_drained(client)
        sent_msg: dict[str, float] = {}
        sent_reply: dict[str, float] = {}

        def msg(i: int) -> bytes:
            uid, cid = convs[i % n_conv]
            body = {
                "type": "botSendsMessage",
                "remoteConversationId": cid,
                "remoteUserId": uid,
                "payload": {"text": f"m{i}"},
            }
            return loadgen.request_bytes(
                "127.0.0.1", port, f"/botpress/{SECRET}/botSendsMessage", json.dumps(body).encode()
            )

        def reply(i: int) -> bytes:
            _, cid = convs[i % n_conv]
            body = json.dumps({"agent": "alice", "text": f"r{i}"}).encode()
            return (
                f"POST /inbox/api/conversations/{cid}/messages HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body

        results: dict[str, loadgen.Result] = {}

        def run_replies() -> None:
            results["reply"] = loadgen.open_loop(
                "127.0.0.1",
                port,
                reply,
                rate=50,
                seconds=seconds,
                connections=16,
                on_sent=lambda i, t: sent_reply.__setitem__(f"r{i}", t),
            )

        t = threading.Thread(target=run_replies)
        t.start()
        results["msg"] = loadgen.open_loop(
            "127.0.0.1",
            port,
            msg,
            rate=150,
            seconds=seconds,
            connections=32,
            on_sent=lambda i, t: sent_msg.__setitem__(f"m{i}", t),
        )
        t.join()
        for name, res in results.items():
            row(
                "e2e",
                f"at 200 ev/s: ingress answers ({name}) p50 / p99",
                f"{res.percentile(50) * 1000:.1f} / {res.percentile(99) * 1000:.1f} ms",
            )
        assert set(results["msg"].statuses) == {200}, results["msg"].statuses
        assert set(results["reply"].statuses) == {200}, results["reply"].statuses
        _wait_drained(client)
        time.sleep(0.5)
        lat_msg = []
        for _, cid in convs:
            for raw in client.lrange(f"hb:adapter:inbox:log:{cid}", 0, -1):
                e = json.loads(raw)
                if e["by"] == "bot" or e["by"] == "end_user":
                    text = e.get("text", "")
                    if text in sent_msg:
                        lat_msg.append(e["at"] - sent_msg[text])
        lat_reply = [
            r["at"] - sent_reply[r["body"]["payload"]["text"]]
            for r in botpress.received
            if r["body"].get("payload", {}).get("text") in sent_reply
        ]
        assert len(lat_msg) == len(sent_msg), (len(lat_msg), len(sent_msg))
        assert len(lat_reply) == len(sent_reply), (len(lat_reply), len(sent_reply))
        both = loadgen.Result(latencies=lat_msg + lat_reply)
        m, r = loadgen.Result(latencies=lat_msg), loadgen.Result(latencies=lat_reply)
        row(
            "e2e",
            "at 200 ev/s: Botpress -> helpdesk p50 / p99",
            f"{m.percentile(50) * 1000:.1f} / {m.percentile(99) * 1000:.1f} ms",
        )
        row(
            "e2e",
            "at 200 ev/s: agent reply -> Botpress p50 / p99",
            f"{r.percentile(50) * 1000:.1f} / {r.percentile(99) * 1000:.1f} ms",
        )
        p50, p99 = both.percentile(50) * 1000, both.percentile(99) * 1000
        row("e2e", "at 200 ev/s: all events p50", f"{p50:.1f} ms", "< 20 ms", p50 < 20)
        row("e2e", "at 200 ev/s: all events p99", f"{p99:.1f} ms", "< 200 ms", p99 < 200)
        row(
            "scale",
            "worker RSS, largest process (MiB)",
            f"{max_rss(worker.pid):.0f}",
            "< 150 MiB",
            max_rss(worker.pid) < 150,
        )


def bench_scale_out(env: Env, per: int) -> None:
    """1, 2 and 4 worker processes on one Redis, agent messages to a Botpress answering
    every call after 100 ms (benchmarks/remote.py), `per` on each of 1,000 conversations,
    queued while the workers run: events/s per process count over the steady state, and
    Redis CPU per 1,000 events (what each added worker costs the one shared piece)."""
    print("scale-out: 1, 2, 4 workers (the Procfile's) -> a 100 ms Botpress, 1,000 conversations")
    with remote_endpoints(env) as (port, renv):
        for n in (1, 2, 4):
            client = _flush(renv.redis_url)
            _remote(port, "/control", {})
            names = [f"worker{i}" for i in range(n)]
            pumps = str(DEFAULT_WORKER_CONCURRENCY * n)
            procs = [renv.spawn(name, procfile.read()["worker"], PUMPS=pumps) for name in names]
            try:
                for name in names:
                    wait_worker(renv, name)
                pairs = _seed(renv, 1000)
                _wait_drained(client)
                _remote(port, "/control", {"bp_delay": 0.1})
                rt = build_runtime(_settings(renv))
                events = per * len(pairs)
                window = _Steady(port, events, functools.partial(redis_cpu, client))
                for k in range(per):
                    for _, cid in pairs:
                        data = {
                            "agent_id": "a",
                            "message_type": "text",
                            "payload": {"text": f"#{k}"},
                        }
                        rt.append(ev.Event(ev.AGENT_MESSAGE, ev.stream(ev.TO_BOTPRESS, cid), data))
                window.join()
                _wait_drained(client)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(timeout=60)
            stats = _remote(port, "/stats")
            row("scale", f"{n} worker(s): events/s to a 100 ms Botpress", f"{window.rate:,.0f}")
            per_k = window.probe / window.events * 1000
            row("scale", f"{n} worker(s): Redis CPU per 1,000 events", f"{per_k * 1000:,.0f} ms")
            bad = events - stats["numbers"] + stats["out_of_order"] + stats["duplicates"]
            row(
                "scale", f"{n} worker(s): lost, duplicated or out of order", f"{bad}", "0", bad == 0
            )


#: Worker settings compared by the latency benchmark: the Procfile's defaults first.
LATENCY_WORKERS: dict[str, dict[str, str]] = {
    "gevent, 256 (the default)": {},
    "gevent, 512": {"WORKER_POOL": "gevent", "WORKER_CONCURRENCY": "512"},
    "threads, 16": {"WORKER_POOL": "threads", "WORKER_CONCURRENCY": "16"},
    "threads, 128": {"WORKER_POOL": "threads", "WORKER_CONCURRENCY": "128"},
}


def _remote(port: int, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    r = requests.post(url, json=body, timeout=5) if body is not None else requests.get(url)
    return cast(dict[str, Any], r.json())


@contextmanager
def remote_endpoints(env: Env) -> Iterator[tuple[int, Env]]:
    """benchmarks/remote.py running, and a copy of `env` with Botpress and Zendesk on it."""
    port = free_port()
    remote = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.remote", str(port)], cwd=ROOT, env=env.env
    )
    try:
        for _ in range(100):
            try:
                _remote(port, "/stats")
                break
            except requests.RequestException:
                time.sleep(0.05)
        renv = Env(env.redis_url, FakeBotpress(), env.logs)
        base = f"http://127.0.0.1:{port}"
        renv.env.update(
            HELPDESK="zendesk",
            ZENDESK_URL=base,
            ZENDESK_EMAIL="bench@example.com",
            ZENDESK_API_TOKEN="bench-token-0123456789",
            BOTPRESS_WEBHOOK_URL=f"{base}/hook",
        )
        yield port, renv
    finally:
        remote.terminate()
        remote.wait(timeout=10)


class _Steady(threading.Thread):
    """Watches the remote from the 20th to the 80th percent of `events` (past the workers'
    start and ramp-up, before the last conversations run out): the rate over that window,
    the remote's calls in it, and how much `probe` (a CPU counter) moved."""

    def __init__(self, port: int, events: int, probe: Callable[[], float]) -> None:
        super().__init__(daemon=True)
        self.port, self.total, self.read = port, events, probe
        self.rate = self.calls = self.probe = 0.0
        self.events = 0
        self.start()

    def run(self) -> None:
        marks: list[tuple[float, float, dict[str, Any]]] = []
        for share in (0.2, 0.8):
            while (now := _remote(self.port, "/stats"))["numbers"] < share * self.total:
                time.sleep(0.002)
            marks.append((time.time(), self.read(), now))
        (t0, p0, s0), (t1, p1, s1) = marks
        self.events = s1["numbers"] - s0["numbers"]
        self.rate = self.events / (t1 - t0)
        self.calls = (s1["calls"] - s0["calls"]) / (t1 - t0)
        self.probe = p1 - p0


def latency_leg(
    env: Env, port: int, worker: dict[str, str], kind: str, delays: tuple[float, float], per: int
) -> dict[str, float]:
    """`per` events on each of 1,000 conversations, queued while no worker runs, then
    drained by one worker process against a remote answering after `delays` (Botpress,
    helpdesk). kind "bp": agent messages to Botpress; "hd": end-user messages to Zendesk."""
    client = _flush(env.redis_url)
    _remote(port, "/control", {})
    with running(env.spawn("worker", **worker)):
        wait_worker(env, "worker")
        pairs = _seed(env, 1000)
        _wait_drained(client)
    rt = build_runtime(_settings(env))
    _remote(port, "/control", {"bp_delay": delays[0], "hd_delay": delays[1]})
    for k in range(per):
        for uid, cid in pairs:
            if kind == "bp":
                data = {"agent_id": "a", "message_type": "text", "payload": {"text": f"r #{k}"}}
                rt.append(ev.Event(ev.AGENT_MESSAGE, ev.stream(ev.TO_BOTPRESS, cid), data))
            else:
                msg = {"author": uid, "type": "text", "payload": {"text": f"m #{k}"}}
                rt.append(ev.Event(ev.MESSAGE, ev.stream(ev.TO_HELPDESK, cid), msg))
    events = per * len(pairs)
    with running(env.spawn("worker", **worker)) as proc:
        wait_worker(env, "worker")
        window = _Steady(port, events, lambda: cpu_seconds(proc.pid))
        window.join()
        _wait_drained(client, timeout=600)
        rss = max_rss(proc.pid)
    stats = _remote(port, "/stats")
    return {
        "rate": window.rate,
        "calls": window.calls,
        "cpu_ms": window.probe / window.events * 1000,
        "rss": rss,
        "lost": events - stats["numbers"],
        "out_of_order": stats["out_of_order"] + stats["duplicates"],
    }


def bench_latency(env: Env, per: int, workers: dict[str, dict[str, str]]) -> None:
    """Latency hidden: one worker process against a Botpress answering every call after
    100 ms and a Zendesk answering after 300 ms (benchmarks/remote.py), 1,000 active
    conversations, beside the same worker against the same endpoints answering at once."""
    print("latency: one worker, 1,000 conversations, Botpress 100 ms / Zendesk 300 ms")
    with remote_endpoints(env) as (port, lenv):
        for name, worker in workers.items():
            instant = latency_leg(lenv, port, worker, "bp", (0.0, 0.0), per)
            slow = latency_leg(lenv, port, worker, "bp", (0.1, 0.0), per)
            hd = latency_leg(lenv, port, worker, "hd", (0.0, 0.3), per)
            ratio = slow["rate"] / instant["rate"]
            row("latency", f"{name}: events/s, instant Botpress", f"{instant['rate']:,.0f}")
            row(
                "latency",
                f"{name}: events/s, 100 ms Botpress",
                f"{slow['rate']:,.0f}",
                ">= 2,000",
                slow["rate"] >= 2000,
            )
            row(
                "latency",
                f"{name}: ratio 100 ms / instant",
                f"{ratio:.2f}",
                ">= 0.25",
                ratio >= 0.25,
            )
            row(
                "latency",
                f"{name}: worker CPU per event, instant / 100 ms",
                f"{instant['cpu_ms']:.2f} / {slow['cpu_ms']:.2f} ms",
            )
            row(
                "latency",
                f"{name}: user messages/s (Zendesk calls/s), 300 ms Zendesk",
                f"{hd['rate']:,.0f} ({hd['calls']:,.0f})",
            )
            rss = max(instant["rss"], slow["rss"], hd["rss"])
            row("latency", f"{name}: worker RSS (MiB)", f"{rss:.0f}", "< 150 MiB", rss < 150)
            bad = sum(leg["lost"] + leg["out_of_order"] for leg in (instant, slow, hd))
            row("latency", f"{name}: lost, duplicated or out of order", f"{bad:.0f}", "0", bad == 0)


def bench_redis_cost(url: str, botpress: FakeBotpress) -> None:
    """Redis commands (those inside scripts included) and round trips per delivered event
    (benchmarks/redis_cost.py): what every worker adds on the one shared Redis."""
    from benchmarks import redis_cost

    print("redis: commands and round trips per delivered event (1,000 conversations, one each)")
    for kind, helpdesk, what in redis_cost.CASES:
        cmds, trips = redis_cost.measure(kind, 1000, url, botpress, helpdesk)
        own = helpdesk != "inbox" or kind == "bp"
        row(
            "redis",
            f"{what}: commands",
            f"{cmds:.1f}",
            "<= 20" if own else "",
            cmds <= 20 if own else None,
        )
        row(
            "redis",
            f"{what}: round trips",
            f"{trips:.1f}",
            "<= 3" if own else "",
            trips <= 3 if own else None,
        )


#: The scaled Zendesk minute: this many requests per this many seconds (9,000 a real
#: minute), so 500 hand-offs take about a minute.
ZENDESK_WINDOW, ZENDESK_PER_WINDOW = 3.0, 450


def bench_zendesk(env: Env, handoffs: int) -> None:
    """The API budget against a Zendesk enforcing its per-minute limit in scaled time
    (benchmarks/zendesk_budget.py): requests per user message and per agent reply, 429s,
    order, and the run's time against the least the limit allows."""
    from benchmarks import zendesk_budget

    rate = ZENDESK_PER_WINDOW / ZENDESK_WINDOW
    print(
        f"zendesk: {handoffs} hand-offs x (10 user messages, 5 agent replies), "
        f"{rate:.0f} requests/s allowed"
    )
    fig = zendesk_budget.measure(env, handoffs, ZENDESK_WINDOW, ZENDESK_PER_WINDOW)
    per_msg, per_reply = fig.per_user_message, fig.per_agent_reply
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(fig.requests.items()))
    row("zendesk", "requests by kind", kinds)
    row(
        "zendesk",
        "requests per user message (2 sent back to back)",
        f"{per_msg:.2f}",
        "<= 1",
        per_msg <= 1,
    )
    row("zendesk", "requests per agent reply", f"{per_reply:.2f}", "<= 2", per_reply <= 2)
    setup = fig.total - fig.requests["add comment"] - fig.requests["recheck comments"]
    setup -= fig.requests["show ticket"] + fig.requests["list comments"]
    row("zendesk", "other requests per hand-off (user, ticket, ...)", f"{setup / handoffs:.2f}")
    share = fig.limited / fig.total * 100
    row(
        "zendesk",
        f"requests answered 429 ({fig.limited} of {fig.total})",
        f"{share:.2f} %",
        "<= 1 %",
        share <= 1,
    )
    bad = fig.lost + fig.duplicated + fig.out_of_order + fig.unfinished
    row(
        "zendesk",
        "lost / duplicated / out of order (hand-offs unfinished)",
        f"{fig.lost} / {fig.duplicated} / {fig.out_of_order} ({fig.unfinished})",
        "0",
        bad == 0,
    )
    over = fig.seconds / fig.least
    row(
        "zendesk",
        "total time / least the limit allows",
        f"{fig.seconds:.1f} / {fig.least:.1f} s = {over:.2f}x",
        "<= 1.15x",
        over <= 1.15,
    )


def max_rss(pid: int) -> float:
    """The largest RSS among `pid` and its descendants, in MiB."""
    pids = [pid]
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids += [int(p) for p in out]
    best = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return best


# -- scale ----------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) spent so far by `pid` and its children, in seconds."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    ticks = 0
    for p in [pid, *map(int, out)]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def trickle_cost(
    env: Env, pairs: list[tuple[str, str]], rounds: int, worker_pid: int
) -> tuple[float, float]:
    """One message per conversation, all drained before the next round: every event is a
    drain of its own (the costliest case) and batching is the same however many
    conversations are open. Returns (worker + Redis CPU microseconds per event, Redis
    commands per event)."""
    rt = build_runtime(_settings(env))
    client = redis.Redis.from_url(env.redis_url, decode_responses=True)
    commands0 = int(client.info("stats")["total_commands_processed"])
    cpu0 = cpu_seconds(worker_pid) + redis_cpu(client)
    for k in range(rounds):
        for uid, cid in pairs:
            rt.append(_message(cid, uid, 1000 + k))
        _wait_drained(client)
    cpu = cpu_seconds(worker_pid) + redis_cpu(client) - cpu0
    commands = int(client.info("stats")["total_commands_processed"]) - commands0
    n = rounds * len(pairs)
    return cpu / n * 1e6, commands / n


def bench_scale(env: Env, many: int, events: int, concurrency: int) -> None:
    print(f"scale: {many:,} open conversations")
    client = _flush(env.redis_url)
    with running(env.spawn("worker", **worker_env(concurrency))) as worker:
        wait_worker(env, "worker")
        active = _seed(env, 100)
        _wait_drained(client)
        rounds = events // len(active)
        trickle_cost(env, active, 3, worker.pid)  # warm up
        cpu_few, cmds_few = trickle_cost(env, active, rounds, worker.pid)
        rate_few = bridge_drain_rate(env, active, events)
        used0 = int(client.info("memory")["used_memory"])
        idle = _seed(env, many - 100, messages=0)
        _wait_drained(client)
        used1 = int(client.info("memory")["used_memory"])
        inbox = [k for k in client.scan_iter("hb:adapter:inbox:*", count=1000)]
        inbox_bytes = sum(client.memory_usage(k) or 0 for k in inbox)
        cpu_many, cmds_many = trickle_cost(env, active, rounds, worker.pid)
        rate_many = bridge_drain_rate(env, active, events)
        rss = max_rss(worker.pid)
    per_conv = (used1 - used0) / len(idle)
    per_conv_bridge = per_conv - inbox_bytes / many
    row("scale", "Redis per idle conversation, bridge + inbox helpdesk", f"{per_conv:,.0f} B")
    row(
        "scale",
        "Redis per idle conversation, bridge's own keys",
        f"{per_conv_bridge:,.0f} B",
        "<= 2 KiB",
        per_conv_bridge <= 2048,
    )
    row(
        "scale",
        f"CPU per event, worker + Redis: 100 / {many:,} open",
        f"{cpu_few:,.0f} / {cpu_many:,.0f} us",
    )
    row(
        "scale",
        f"Redis commands per event (scripts' too): 100 / {many:,} open",
        f"{cmds_few:.1f} / {cmds_many:.1f}",
    )
    row(
        "scale",
        f"cost per event, {many:,} / 100 open (CPU)",
        f"{cpu_many / cpu_few:.2f}x",
        "~1x (no growth)",
        cpu_many / cpu_few < 1.25,
    )
    row(
        "scale",
        f"backlog drained, events/s: 100 / {many:,} open",
        f"{rate_few:,.0f} / {rate_many:,.0f}",
    )
    row("scale", "worker RSS after the scale run (MiB)", f"{rss:.0f}", "< 150 MiB", rss < 150)


# -- main -----------------------------------------------------------------------------------
def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    py = platform.python_version()
    return f"{os.cpu_count()} cores, {cpu}, {mem / 1024:.0f} GiB RAM, Python {py}"


def table() -> str:
    head = ["area", "metric", "value", "target", "met"]
    rows = [head] + [r.cells() for r in ROWS]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    ap.add_argument(
        "--only",
        choices=["ingress", "e2e", "scale", "latency", "redis", "scaleout", "zendesk"],
        action="append",
    )
    args = ap.parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so every process this run started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seconds = 4.0 if args.quick else 10.0
    events = 3000 if args.quick else 10000
    many = 2000 if args.quick else 10000
    only = set(args.only or ["ingress", "e2e", "scale", "latency", "redis", "scaleout", "zendesk"])
    print(f"machine: {machine()}")
    logs = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    server = RedisServer(persistent=True).start()
    botpress = FakeBotpress()
    botpress.start()
    env = Env(server.url, botpress, logs)
    try:
        if "ingress" in only:
            bench_ingress(env, seconds, connections=32)
        if "e2e" in only:
            bench_end_to_end(env, botpress, events, concurrency=WORKERS, seconds=seconds)
        if "scale" in only:
            bench_scale(env, many, events // 2, concurrency=WORKERS)
        if "latency" in only:
            bench_latency(env, 3 if args.quick else 10, LATENCY_WORKERS)
        if "redis" in only:
            bench_redis_cost(server.url, botpress)
        if "scaleout" in only:
            bench_scale_out(env, 4 if args.quick else 8)
        if "zendesk" in only:
            bench_zendesk(env, 100 if args.quick else 500)
    finally:
        botpress.stop()
        server.cleanup()
    print()
    print(f"machine: {machine()}")
    print(table())
    print(f"process logs: {logs}")
    return 0 if all(r.ok is not False for r in ROWS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
