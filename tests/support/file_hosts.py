"""Local HTTP servers standing in for the hosts a chat message's URL may point to: a file
host, an internal "secret" service, an attacker's redirector, a host that trickles."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

AUTO = -1  # Content-Length: the body's real length


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    location: str = ""
    #: Seconds between bytes of the body (0: all at once).
    every: float = 0.0
    #: Trickle the status line and headers too, not just the body.
    trickle_head: bool = False
    #: Content-Length sent: AUTO (the body's), None (none: the body ends at close), or a lie.
    length: int | None = AUTO


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the fetcher hung up on a trickle: that is the point


class FileHost:
    """Serves `Route`s on 127.0.0.1 and records every request it gets."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = host.routes.get(urlsplit(self.path).path) or Route(b"not found", status=404)
                head = f"HTTP/1.0 {route.status} X\r\nContent-Type: {route.content_type}\r\n"
                if route.location:
                    head += f"Location: {route.location}\r\n"
                length = len(route.body) if route.length == AUTO else route.length
                if length is not None:
                    head += f"Content-Length: {length}\r\n"
                raw_head = (head + "\r\n").encode()
                try:
                    if route.trickle_head:
                        self._trickle(raw_head, route.every)
                    else:
                        self.wfile.write(raw_head)
                        self.wfile.flush()
                    self._trickle(route.body, route.every)
                except OSError:
                    pass  # the client gave up

            def _trickle(self, data: bytes, every: float) -> None:
                if not every:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                for i in range(len(data)):
                    if host.stopping.wait(every):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()

        self._server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.netloc = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.netloc}"

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return f"{self.url}{path}"

    def requested(self, path: str) -> int:
        """How many requests asked for `path`."""
        return sum(1 for s in self.seen if urlsplit(s.path).path == path)

    def start(self) -> FileHost:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
