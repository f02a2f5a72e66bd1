"""How the bridge talks to Redis: the client, its connection pool, and Lua scripts.

Every command costs a round trip, and in Python the round trip's CPU, not Redis, bounds
how many events a process accepts or delivers per second. redis-py's generic layers
(a pool checkout under a lock with a readiness poll, then the client's retry and
observability wrappers) cost about as much as the round trip itself, so:

- `ThreadPool` lets each thread keep the connection it used last (no lock, no poll);
- `Script` runs a Lua script straight on that connection, without the client's wrappers
  (the bridge configures no retries, and its scripts must never be retried blindly: an
  append that timed out may have landed);
- `KernelTimeoutConnection` has the kernel enforce the socket timeout, so each send and
  each read is one blocking system call that lets go of the GIL once, where Python's own
  socket timeouts poll before every call and let go of it twice.

Measured on a 2-core VM, one append (the ingress's only write): 157 µs of CPU through the
client, 95 µs this way (docs/performance.md).

In a process whose sockets gevent made cooperative (the worker's default pool), hundreds
of greenlets share a bounded pool instead (`pool_size` connections, waited for),
with Python's socket timeouts, which gevent enforces in its loop (the kernel's would
never fire on its non-blocking sockets).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from typing import Any

import redis
from hiredis import pack_command
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from bridge.config import DEFAULT_REDIS_POOL_SIZE


class ThreadPool(redis.ConnectionPool):
    """A connection pool whose threads keep their last connection between commands.

    A released connection stays with its thread (still counted as in use) instead of
    going back to the shared list, and the thread's next checkout takes it back without
    the lock and readiness poll. A thread holds at most one idle connection, so a process
    still opens at most one connection per thread that talks to Redis at once; a thread's
    connection goes back to the pool when the thread ends.
    """

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        held: _Held | None = getattr(self._mine, "held", None)
        if held is not None and held.conn is not None:
            conn, held.conn = held.conn, None
            if conn.pid == os.getpid():
                return conn
            # Inherited through a fork: the socket is the parent's; never touch it.
        return super().get_connection()

    def release(self, connection: Any) -> None:
        held: _Held | None = getattr(self._mine, "held", None)
        if held is None:
            held = self._mine.held = _Held(self)
        if (
            held.conn is None
            and connection.pid == os.getpid() == self.pid
            and not connection.should_reconnect()
        ):
            held.conn = connection
            return
        super().release(connection)

    def reset(self) -> None:
        """Forget every connection (redis-py calls this at start and after a fork)."""
        super().reset()
        # Connections held by the parent's threads are not this process's to reuse.
        self._mine = threading.local()


class _Held:
    """A thread's idle connection; handed back to the pool when the thread ends."""

    __slots__ = ("conn", "pool")

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool
        self.conn: Any = None

    def __del__(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            # At interpreter shutdown there may be nothing left to hand it back to.
            with contextlib.suppress(Exception):
                redis.ConnectionPool.release(self.pool, conn)


class KernelTimeoutConnection(redis.Connection):
    """A TCP connection whose read and write timeout the kernel enforces (SO_RCVTIMEO,
    SO_SNDTIMEO) on a blocking socket.

    With a Python socket timeout, every recv and send is a poll then the call, each
    releasing and taking back the GIL: in a threaded process every round trip pays two
    extra GIL handoffs, and under load each may be a context switch. Running out of time
    raises TimeoutError and drops the connection, as with Python's timeouts.
    """

    def __init__(self, *, socket_timeout: float | None = None, **kwargs: Any) -> None:
        # redis-py sees a blocking socket; custom timeouts it sets for a moment (a
        # non-blocking readiness check) are undone back to blocking, and the kernel's stay.
        super().__init__(socket_timeout=None, **kwargs)  # type: ignore[no-untyped-call]
        self.kernel_timeout = socket_timeout

    def _connect(self) -> socket.socket:
        sock: socket.socket = super()._connect()  # type: ignore[no-untyped-call]
        if self.kernel_timeout:
            seconds = int(self.kernel_timeout)
            micros = int((self.kernel_timeout - seconds) * 1_000_000)
            timeval = struct.pack("ll", seconds, micros)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        return sock

    # The kernel says "timed out" with EAGAIN, which redis-py reports as a ConnectionError
    # (having dropped the connection already); say what happened.
    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().send_packed_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.ConnectionError as exc:
            if not _kernel_timeout(exc):
                raise
            raise redis.TimeoutError("Timeout writing to socket") from exc

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.ConnectionError as exc:
            if not _kernel_timeout(exc):
                raise
            raise redis.TimeoutError("Timeout reading from socket") from exc


def _kernel_timeout(exc: redis.ConnectionError) -> bool:
    return isinstance(exc.__cause__ or exc.__context__, BlockingIOError)


#: How long a greenlet waits for a free connection before the command fails (as a
#: timeout would: the delivery is retried).
POOL_WAIT = 5.0
#: Threads keep one connection each; redis-py 8 caps a pool at 100 by default, which a
#: worker with 128 threads overran (its pumps failed with MaxConnectionsError).
THREAD_POOL_MAX = 100_000


def cooperative() -> bool:
    """Whether gevent has made this process's sockets cooperative (`--pool=gevent`)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def connect(
    url: str, *, ssl_cert_reqs: str = "required", pool_size: int = DEFAULT_REDIS_POOL_SIZE
) -> redis.Redis:
    """A client for `url`; `ssl_cert_reqs` applies to rediss:// (Heroku needs "none");
    `pool_size` bounds the connections of a cooperative (gevent) process."""
    kwargs: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }
    if url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = ssl_cert_reqs
    if cooperative():
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=POOL_WAIT, **kwargs
        )
        return redis.Redis(connection_pool=pool)
    kwargs["max_connections"] = THREAD_POOL_MAX
    # TLS keeps Python's own timeouts: OpenSSL reports a kernel timeout its own way.
    if url.startswith("redis://"):
        kwargs["connection_class"] = KernelTimeoutConnection
    return redis.Redis(connection_pool=ThreadPool.from_url(url, **kwargs))


class Script:
    """A Lua script: `script(keys=[...], args=[...])`, or queued on a pipeline with
    `client=pipe`. Raises what redis-py raises (ConnectionError, TimeoutError,
    ResponseError for an error inside the script)."""

    def __init__(self, client: redis.Redis, source: str) -> None:
        self._script = client.register_script(source)
        self._pool = client.connection_pool

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    def __call__(
        self,
        keys: Sequence[Any] = (),
        args: Sequence[Any] = (),
        client: Pipeline | None = None,
    ) -> Any:
        if client is not None:
            return self._script(keys=keys, args=args, client=client)
        pool = self._pool
        conn: Any = pool.get_connection()
        try:
            # Packed by hiredis, as redis-py's own packer does, minus its argument checks.
            conn.send_packed_command(
                [pack_command(("EVALSHA", self._script.sha, len(keys), *keys, *args))]
            )
            try:
                return conn.read_response()
            except NoScriptError:
                # Redis lost its script cache (a restart); EVAL runs the script and caches it.
                conn.send_packed_command(
                    [pack_command(("EVAL", self._script.script, len(keys), *keys, *args))]
                )
                return conn.read_response()
        finally:
            # A connection a socket error left half-used was disconnected by redis-py
            # before raising; it reconnects on its next command.
            pool.release(conn)
