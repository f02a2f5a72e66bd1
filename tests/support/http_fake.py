"""A small threaded HTTP server base for the fakes standing in for Botpress and helpdesks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout the test injected) is not news


class FakeServer:
    """Runs `handle(method, path, headers, body) -> (status, headers, body)` on 127.0.0.1.

    `port=0` picks a free port; `stop()` then `start()` serves again on the same port (so a
    test can make the service refuse connections for a while and come back).
    """

    def __init__(self, port: int = 0) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without TCP_NODELAY the body waits
            # for the client's delayed ACK (~40 ms a response), a stall no real server has.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = fake.handle(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._handler = Handler
        self._bind(port)

    def _bind(self, port: int) -> None:
        self.httpd = _QuietServer(("127.0.0.1", port), self._handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.running = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        if self.thread.ident is not None:  # served before and stopped: same port again
            self._bind(self.port)
        self.thread.start()
        self.running = True
        return self

    def stop(self) -> None:
        """Stop listening: new connections are refused until `start()`."""
        if self.running:
            self.httpd.shutdown()
            self.running = False
        self.httpd.server_close()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError
