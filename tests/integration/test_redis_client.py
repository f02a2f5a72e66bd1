"""bridge/redis_client.py against a real redis-server: connections kept per thread, scripts
run straight on them, and both survive forks, thread ends, script-cache loss and restarts."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bridge.redis_client import KernelTimeoutConnection, Script, ThreadPool, connect
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

_ECHO = "return {KEYS[1], ARGV[1]}"
_FAIL = "return redis.error_reply('no such thing')"


def in_thread(fn: Callable[[], Any]) -> Any:
    """fn's result, run on a new thread that has ended when this returns."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def pool_of(client: redis.Redis) -> ThreadPool:
    pool = client.connection_pool
    assert isinstance(pool, ThreadPool)
    return pool


def created(client: redis.Redis) -> int:
    return int(pool_of(client)._created_connections)


def test_a_thread_keeps_its_connection_between_commands(redis_url: str) -> None:
    r = connect(redis_url)
    ids = {r.client_id() for _ in range(5)}
    r.set("k", "v")
    assert r.get("k") == "v"
    assert len(ids) == 1
    assert created(r) == 1


def test_threads_talking_at_once_each_get_their_own(redis_url: str) -> None:
    r = connect(redis_url)
    n = 6
    barrier = threading.Barrier(n)
    seen: dict[str, set[int]] = {}

    def work() -> None:
        mine = seen.setdefault(threading.current_thread().name, set())
        for _ in range(20):
            barrier.wait()  # all n want a connection at the same moment
            mine.add(r.client_id())

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(ids) == 1 for ids in seen.values())  # each kept its own all along
    assert len(set().union(*seen.values())) == n
    assert created(r) == n


def test_an_ended_threads_connection_goes_back_to_the_pool(redis_url: str) -> None:
    r = connect(redis_url)
    first = in_thread(r.client_id)
    gc.collect()
    assert in_thread(r.client_id) == first
    assert r.client_id() == first
    assert created(r) == 1


def test_a_nested_checkout_gets_a_second_connection_and_both_come_back(redis_url: str) -> None:
    r = connect(redis_url)
    pool = pool_of(r)
    outer = pool.get_connection()
    try:
        assert r.ping()  # while this thread holds `outer`
        pipe = r.pipeline()
        pipe.set("a", "1").get("a")
        assert pipe.execute() == [True, "1"]
    finally:
        pool.release(outer)
    assert created(r) == 2
    # The thread keeps one; the other is free for any thread.
    ids = {r.client_id(), in_thread(r.client_id)}
    assert len(ids) == 2
    assert created(r) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_uses_its_parents_connection(redis_url: str) -> None:
    r = connect(redis_url)
    parent_id = r.client_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its own connection's id, then leave at once
        try:
            os.write(write, str(r.client_id()).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = int(os.read(read, 64) or b"0")
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id not in (0, parent_id)
    assert r.client_id() == parent_id  # the parent's socket was left alone


def test_script_runs_on_the_threads_connection(redis_url: str) -> None:
    r = connect(redis_url)
    echo = Script(r, _ECHO)
    assert echo(keys=["k"], args=["a"]) == ["k", "a"]
    assert echo(keys=["k"], args=[1.5]) == ["k", "1.5"]
    assert created(r) == 1


def test_script_reloads_itself_when_redis_lost_its_cache(redis_url: str) -> None:
    r = connect(redis_url)
    echo = Script(r, _ECHO)
    assert echo(keys=["k"], args=["a"]) == ["k", "a"]
    r.script_flush()
    assert echo(keys=["k"], args=["b"]) == ["k", "b"]
    assert r.script_exists(echo.sha) == [True]


def test_script_error_raises_and_the_connection_stays_usable(redis_url: str) -> None:
    r = connect(redis_url)
    with pytest.raises(redis.ResponseError, match="no such thing"):
        Script(r, _FAIL)()
    assert r.ping()
    assert created(r) == 1


def test_script_queued_on_a_pipeline(redis_url: str) -> None:
    r = connect(redis_url)
    echo = Script(r, _ECHO)
    pipe = r.pipeline(transaction=True)
    pipe.set("x", "1")
    echo(keys=["k"], args=["p"], client=pipe)
    assert pipe.execute() == [True, ["k", "p"]]


def test_after_a_redis_restart_the_next_call_reconnects() -> None:
    server = RedisServer().start()
    try:
        r = connect(server.url)
        echo = Script(r, _ECHO)
        assert echo(keys=["k"], args=["before"]) == ["k", "before"]
        server.restart()
        # The kept socket is dead: the first call may fail (nothing is retried blindly:
        # a script that timed out may have run), and the connection is dropped, not reused.
        with contextlib.suppress(redis.ConnectionError):
            echo(keys=["k"], args=["probe"])
        assert echo(keys=["k"], args=["after"]) == ["k", "after"]  # script cache empty too
        assert r.ping()
    finally:
        server.cleanup()


def _timeval(sock: socket.socket, option: int) -> tuple[int, int]:
    sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, 16))
    return sec, usec


def test_the_kernel_keeps_the_socket_timeout(redis_url: str) -> None:
    r = connect(redis_url)
    r.ping()
    conn = pool_of(r).get_connection()
    try:
        assert isinstance(conn, KernelTimeoutConnection)
        sock = conn._sock
        assert sock is not None
        assert sock.gettimeout() is None  # blocking: one system call per send or read
        assert _timeval(sock, socket.SO_RCVTIMEO) == (5, 0)
        assert _timeval(sock, socket.SO_SNDTIMEO) == (5, 0)
    finally:
        pool_of(r).release(conn)


def test_a_stalled_redis_times_out_writes_and_reads_then_is_used_again() -> None:
    server = RedisServer().start()
    assert server.proc is not None
    pool = ThreadPool.from_url(
        server.url, connection_class=KernelTimeoutConnection, socket_timeout=0.5
    )
    r = redis.Redis(connection_pool=pool)
    try:
        assert r.ping()
        os.kill(server.proc.pid, signal.SIGSTOP)  # alive, connected, and reading nothing
        try:
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError, match="writing"):
                r.set("big", b"x" * (32 << 20))  # more than the socket buffers hold
            with pytest.raises(redis.TimeoutError, match="reading"):
                r.ping()  # on a new connection: the one that timed out was dropped
            assert time.monotonic() - started < 5
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert r.ping()
        assert r.get("big") is None  # the cut-off write never became a command
    finally:
        server.cleanup()


def test_more_threads_than_redis_pys_default_cap_each_get_a_connection(redis_url: str) -> None:
    """redis-py 8 caps a pool at 100 connections unless told otherwise: a worker with 128
    threads had pumps fail with MaxConnectionsError (issue 16)."""
    client = connect(redis_url)
    n = 130
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def wait() -> None:
        barrier.wait()
        try:
            client.blpop(["nothing-comes"], timeout=0.5)  # all 130 hold one at once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    clients = redis.Redis.from_url(redis_url).client_list()
    assert len(clients) >= n  # one each, kept by their threads until they ended
    client.connection_pool.disconnect()


# Run in a process of its own: gevent's patching must never touch the test runner.
_COOPERATIVE = r"""
import gevent.monkey
gevent.monkey.patch_all()
import json, sys, time
import gevent, redis
from bridge.redis_client import Script, connect, cooperative
from bridge.storage import Store

url = sys.argv[1]
assert cooperative()
client = connect(url, pool_size=4)
pool = client.connection_pool
store = Store(client, "co", waiting=1)
echo = Script(client, "return ARGV[1]")
waited, answered, peak = [], [], [0]

def idle_pump():
    waited.append(store.next_ready(timeout=1.0))

def busy_pump(i):
    t0 = time.monotonic()
    for k in range(20):
        assert echo(args=[f"{i}:{k}"]) == f"{i}:{k}"
    answered.append(time.monotonic() - t0)

probe = redis.Redis.from_url(url)
before = len(probe.client_list())  # the probe's own, and any other test's

def watch():
    for _ in range(20):
        peak[0] = max(peak[0], len(probe.client_list()) - before)
        gevent.sleep(0.05)

jobs = [gevent.spawn(idle_pump) for _ in range(50)]
gevent.sleep(0.05)  # the idle ones are waiting first
jobs += [gevent.spawn(busy_pump, i) for i in range(100)] + [gevent.spawn(watch)]
gevent.joinall(jobs, raise_error=True)
print(json.dumps({"peak": peak[0], "slowest": max(answered), "waited": waited.count(None),
                  "kind": type(pool).__name__}))
"""


def test_a_gevent_process_shares_a_bounded_pool_and_idle_pumps_hold_little(
    redis_url: str,
) -> None:
    """Hundreds of greenlets share `pool_size` connections (hosted plans cap clients), and
    pumps waiting for work hold at most `waiting` of them, so the busy ones never queue
    behind the idle ones' 1-second waits."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _COOPERATIVE, redis_url],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["kind"] == "BlockingConnectionPool"
    assert 1 <= got["peak"] <= 4
    assert got["waited"] == 50  # nothing was woken: every idle pump came back empty-handed
    assert got["slowest"] < 0.5  # 2,000 scripts behind 50 one-second waits: not queued
