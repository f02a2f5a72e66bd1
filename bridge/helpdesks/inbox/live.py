"""The `live` process: open agent consoles' live updates, as server-sent events.

    python -m bridge.helpdesks.inbox.live [--host 0.0.0.0]

Listens on LIVE_PORT. `GET /console/events?view=&c=` with the console's session cookie
(checked exactly as the web checks it: Flask's signed cookie, the agent's password version)
answers `text/event-stream`: the console's parts at once (parts.py: the same fragments
/console/parts renders), then one event per change of the inbox (the open conversation
only when it changed), a full redraw every 30 s (waiting times move on), and a comment
line when nothing was sent for 15 s.

One watcher thread reads the inbox's version from Redis every 150 ms, one GET for every
console, and wakes the streams (a Condition); each stream has a thread of its own, which
renders its console's parts and writes them with a timeout, so a slow reader holds only
itself. At most MAX_STREAMS streams at once (then 503). Pages on another origin
(CONSOLE_EVENTS_URL on another port, as scripts/dev runs it) get CORS for PUBLIC_BASE_URL's
origin, with credentials. docs/performance.md says why this and not polling the web.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import redis
from flask import Flask
from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

from bridge.config import Settings
from bridge.helpdesks.inbox import login
from bridge.helpdesks.inbox.agents import Agents
from bridge.helpdesks.inbox.desk import Desk
from bridge.helpdesks.inbox.parts import parts, view_of
from bridge.logs import configure, configure_root, secrets_of
from bridge.storage import Store

log = logging.getLogger("hitl.live")

#: Streams open at once; more are refused with 503 (each holds a thread and a socket).
MAX_STREAMS = 1000
#: How often the watcher reads the inbox's version (seconds).
WATCH_S = 0.15
#: A comment line when nothing else was sent for this long: proxies keep the stream open.
KEEPALIVE_S = 15.0
#: A full redraw this often: the waiting times in the queue move on.
REDRAW_S = 30.0
#: A write that blocks this long drops the stream (a reader that stopped reading).
WRITE_TIMEOUT_S = 10.0
#: What the browser waits before reconnecting a dropped stream (milliseconds).
RETRY_MS = 1000
#: Redis connections the streams share (a stream holds one only while it reads its parts):
#: a thousand open consoles must not be a thousand Redis clients.
REDIS_CONNECTIONS = 16
PATH = "/console/events"


class Sessions:
    """The console's session cookie, read exactly as the web reads it (login.configure on
    a minimal Flask app: the same key derivation, fallback key and lifetime)."""

    def __init__(self, settings: Settings) -> None:
        app = Flask("hitl-live")
        login.configure(app, settings)
        self.serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        self.max_age = int(app.permanent_session_lifetime.total_seconds())

    def claim(self, cookie_header: str) -> tuple[str, int] | None:
        """(agent, password version) the cookie names, None without a valid one."""
        value = parse_cookie(cookie_header).get(login.COOKIE)
        if not value or self.serializer is None:
            return None
        try:
            data = self.serializer.loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        name, version = data.get("agent"), data.get("v")
        if isinstance(name, str) and isinstance(version, int) and not isinstance(version, bool):
            return name, version
        return None


class Hub:
    """The inbox's version, read by one thread for every stream."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.cond = threading.Condition()
        self.version = -1
        self.stopping = threading.Event()

    def watch(self) -> None:
        failing = False
        while not self.stopping.is_set():
            try:
                v = self.desk.version()
                if failing:
                    log.warning("redis is back")
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("redis unreachable", extra={"error": type(exc).__name__})
                failing = True
                self.stopping.wait(1.0)
                continue
            if v != self.version:
                with self.cond:
                    self.version = v
                    self.cond.notify_all()
            self.stopping.wait(WATCH_S)

    def wait(self, shown: int, timeout: float) -> int:
        """The inbox's version once it differs from `shown`, or after `timeout`."""
        with self.cond:
            self.cond.wait_for(
                lambda: self.version != shown or self.stopping.is_set(), max(0.0, timeout)
            )
            return self.version

    def stop(self) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()


class LiveServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], settings: Settings, store: Store, *, max_streams: int
    ) -> None:
        super().__init__(address, Handler)
        self.settings = settings
        self.store = store
        self.sessions = Sessions(settings)
        self.hub = Hub(Desk(store))
        self.max_streams = max_streams
        self.streams = 0
        self._lock = threading.Lock()
        base = settings.public_base_url or ""
        parsed = urlparse(base)
        self.public_origin = f"{parsed.scheme}://{parsed.netloc}" if parsed.netloc else ""

    def admit(self) -> bool:
        with self._lock:
            if self.streams >= self.max_streams:
                return False
            self.streams += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.streams -= 1

    def allowed(self, origin: str, host: str) -> bool:
        """A page of the console's own origin (PUBLIC_BASE_URL's, or this very host when a
        proxy routes the stream on the console's origin)."""
        return origin == self.public_origin or urlparse(origin).netloc == host


class Handler(BaseHTTPRequestHandler):
    server: LiveServer
    # A client gets this long to send its request line and headers: a slow one holds its
    # thread for seconds, not forever (the stream itself sets its own write timeout).
    timeout = WRITE_TIMEOUT_S
    protocol_version = "HTTP/1.0"
    server_version = "hitl-live"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format % args)

    def _plain(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        for name, value in {**self._cors, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _ok(self) -> None:
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._cors: dict[str, str] = {}
        url = urlparse(self.path)
        if url.path == "/healthz":
            return self._ok()
        if url.path != PATH:
            return self._plain(404, "not found")
        origin = self.headers.get("Origin")
        if origin:
            if not self.server.allowed(origin, self.headers.get("Host", "")):
                return self._plain(403, "this stream is for the console's own pages")
            self._cors = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin",
            }
        claim = self.server.sessions.claim(self.headers.get("Cookie", ""))
        try:
            ok = claim is not None and Agents(self.server.store).version(claim[0]) == claim[1]
        except redis.RedisError:
            return self._plain(503, "redis unreachable", {"Retry-After": "5"})
        if not ok or claim is None:
            return self._plain(401, "sign in at /console/login")
        if not self.server.admit():
            return self._plain(503, "too many open consoles", {"Retry-After": "30"})
        try:
            query = parse_qs(url.query)
            view = view_of(query.get("view", [""])[0])
            tid = query.get("c", [""])[0] or None
            self._stream(claim, view, tid)
        except (OSError, TimeoutError):
            pass  # the console went away, or stopped reading
        except redis.RedisError as exc:
            log.warning("stream ended: redis", extra={"error": type(exc).__name__})
        finally:
            self.server.release()

    def _stream(self, claim: tuple[str, int], view: Any, tid: str | None) -> None:
        agent = claim[0]
        store, hub = self.server.store, self.server.hub
        self.connection.settimeout(WRITE_TIMEOUT_S)
        self.send_response(200)
        for name, value in self._cors.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
        seen = hub.version  # the watcher's, read before the parts: no change falls between
        p = parts(store, agent, view, tid)
        self._event(p)
        shown = int(p["v"])
        last_sent = last_full = time.monotonic()
        while not hub.stopping.is_set():
            now = time.monotonic()
            v = hub.wait(seen, min(last_sent + KEEPALIVE_S, last_full + REDRAW_S) - now)
            if hub.stopping.is_set():
                return
            now = time.monotonic()
            full = now - last_full >= REDRAW_S
            # The password changed (or the agent is gone): this session is over.
            if full and Agents(store).version(agent) != claim[1]:
                self.wfile.write(b"event: signed-out\ndata: {}\n\n")
                return
            if v != seen or full:
                seen = v
                # The watcher's version: the GET it made stands for every stream's.
                p = parts(store, agent, view, tid, None if full else shown, v if v >= 0 else None)
                if full or p["v"] != shown:  # else the page shows it already
                    self._event(p)
                    shown = int(p["v"])
                    last_sent = now
                if full:
                    last_full = now
            if now - last_sent >= KEEPALIVE_S:
                self.wfile.write(b": keep-alive\n\n")
                last_sent = now

    def _event(self, p: dict[str, Any]) -> None:
        if p["conversation"] is None:
            p = {k: v for k, v in p.items() if k != "conversation"}
        data = json.dumps(p, separators=(",", ":"), ensure_ascii=False)
        self.wfile.write(f"data: {data}\n\n".encode())


def shared_store(settings: Settings) -> Store:
    """The bridge's Store, its connections in one bounded pool shared by the threads (the
    bridge's own pool keeps one connection per thread, which suits a few busy threads, not
    a thousand waiting ones)."""
    own = Store.from_settings(settings).redis.connection_pool
    pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=own.connection_class,
        max_connections=REDIS_CONNECTIONS,
        timeout=10,
        **own.connection_kwargs,
    )
    return Store(redis.Redis(connection_pool=pool), settings.key_prefix, pumps=settings.pumps)


def serve(
    settings: Settings, host: str, port: int, *, max_streams: int = MAX_STREAMS
) -> LiveServer:
    """The server, listening, its watcher running; `serve_forever` it (or in a thread)."""
    store = shared_store(settings)
    server = LiveServer((host, port), settings, store, max_streams=max_streams)
    threading.Thread(target=server.hub.watch, name="live-watcher", daemon=True).start()
    return server


def stop(server: LiveServer) -> None:
    server.hub.stop()
    threading.Thread(target=server.shutdown, daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    from bridge.helpdesks import settings_or_exit

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    args = ap.parse_args(argv)
    settings = settings_or_exit(json_lines=True)
    redact = secrets_of(settings)
    configure(settings.log_level, redact)
    configure_root(logging.WARNING, redact)
    try:
        server = serve(settings, args.host, settings.live_port)
    except OSError as exc:
        log.error("cannot listen", extra={"port": settings.live_port, "error": str(exc)})
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop(server))
    log.info(
        "live: listening",
        extra={"host": args.host, "port": settings.live_port, "max_streams": MAX_STREAMS},
    )
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    log.info("live: stopped", extra={"streams": server.streams})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
