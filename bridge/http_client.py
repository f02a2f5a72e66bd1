"""Outbound HTTP shared by every external service: one place decides what is retryable.

Sent with the standard library's http.client over connections kept here, per host: a
webhook call costs about 125 µs of CPU this way, 190 µs through urllib3 and 620 µs through
a requests.Session, and a worker keeping hundreds of sends in flight is bound by exactly
that (docs/performance.md, "Latency hidden").
"""

from __future__ import annotations

import base64
import collections
import contextlib
import email.utils
import functools
import gzip
import http.client
import io
import select
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import certifi

from bridge import __version__, json_codec
from bridge.errors import PermanentError, TransientError

USER_AGENT = f"botpress-hitl-bridge/{__version__}"

#: Keep-alive connections kept per host, at least: one per send that may be in flight at
#: once (a busier worker would otherwise open a new connection for every call above it).
POOL_SIZE = 64
#: A connection idle this long is checked before reuse: the server may have closed it
#: (Node's default keep-alive is 5 s), and a request sent into a closed connection is
#: one whose fate is unknown.
CHECK_AFTER_IDLE = 1.0


class TransportError(Exception):
    """A request that got no answer."""


class ConnectError(TransportError):
    """No connection: nothing was sent."""


class ReadTimeout(TransportError):
    """Sent, and no answer in time: the other side may have applied it."""


class Dropped(TransportError):
    """The connection failed once the request had (perhaps) gone out."""


class Headers(dict[str, str]):
    """Response headers by lower-case name; `get` and `[]` take any case."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in pairs)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class Response:
    """An answer, read whole: status, headers (case-insensitive) and body."""

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        content: bytes,
    ) -> None:
        self.status_code = status_code
        self.headers = Headers(headers.items() if isinstance(headers, Mapping) else headers)
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json_codec.loads(self.content)


class Streamed:
    """An answer whose body is read piece by piece (a file relayed as it arrives); its
    connection is never reused, and is closed by `close` or by reading to the end."""

    def __init__(
        self,
        status_code: int,
        headers: Iterable[tuple[str, str]],
        read: Callable[[int], bytes],
        close: Callable[[], None],
    ) -> None:
        self.status_code = status_code
        self.headers = Headers(headers)
        self._read = read
        self._close = close

    def read(self, n: int) -> bytes:
        """Up to `n` bytes of the body, b"" at its end; raises TransportError."""
        with _failures("no more of the body in time"):
            return self._read(n)

    def close(self) -> None:
        self._close()


#: Sends one request: (method, url, body, headers, timeout) -> Response, raising
#: TransportError. Tests put the Flask test client here.
Transport = Callable[[str, str, bytes | None, dict[str, str], float], Response]


@functools.cache
def _tls() -> ssl.SSLContext:
    """certifi's authorities, as requests trusted. Made on first use, after gevent (when the
    worker runs it) has patched the ssl module."""
    return ssl.create_default_context(cafile=certifi.where())


class _Origin:
    """Idle keep-alive connections to one scheme://host:port, most recently used first."""

    def __init__(self, scheme: str, host: str, port: int, proxy: str | None) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.idle: collections.deque[tuple[http.client.HTTPConnection, float]] = collections.deque()
        self.absolute = False  # plain http through a proxy: the request line is the URL
        self.proxy: tuple[str, int, dict[str, str]] | None = None
        if proxy:
            p = urlsplit(proxy)
            auth = {}
            if p.username is not None:
                pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                auth["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
            self.proxy = (p.hostname or "", p.port or 80, auth)
            self.absolute = scheme == "http"

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        host, port = (self.proxy[0], self.proxy[1]) if self.proxy else (self.host, self.port)
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls())
            if self.proxy:
                conn.set_tunnel(self.host, self.port, headers=self.proxy[2])
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def take(self, timeout: float) -> http.client.HTTPConnection:
        while self.idle:
            try:
                conn, since = self.idle.pop()
            except IndexError:
                break
            if time.monotonic() - since > CHECK_AFTER_IDLE and _closed(conn):
                conn.close()
                continue
            conn.sock.settimeout(timeout)
            return conn
        return self.connect(timeout)


def _closed(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed (or wrote unasked to) an idle connection."""
    try:
        poller = select.poll()  # not select(): a busy worker's descriptors pass 1,024
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class Client:
    """Keep-alive connections to any number of hosts, up to `concurrency` idle per host.

    Proxies come from HTTPS_PROXY / HTTP_PROXY unless NO_PROXY names the host, and
    certificate authorities from certifi, as with requests.
    """

    def __init__(
        self,
        concurrency: int = POOL_SIZE,
        *,
        auth: tuple[str, str] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.pool_size = max(POOL_SIZE, concurrency)
        self.headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._proxies = urllib.request.getproxies_environment()
        self._origins: dict[tuple[str, str], _Origin] = {}
        self.transport = transport or self._send
        self._own_transport = transport is None

    def origin(self, url: str) -> tuple[_Origin, str]:
        """The origin `url` goes to, and the target of its request line."""
        scheme, netloc, path, query, _ = urlsplit(url)
        if (scheme, netloc) not in self._origins:
            parts = urlsplit(url)
            try:
                port = parts.port or (443 if scheme == "https" else 80)
            except ValueError:
                port = 0
            if scheme not in ("http", "https") or not parts.hostname or not port:
                raise ConnectError(f"not an http(s) URL: {url[:200]!r}")
            proxy = self._proxies.get(scheme)
            if proxy and urllib.request.proxy_bypass(parts.hostname):
                proxy = None
            self._origins[scheme, netloc] = _Origin(scheme, parts.hostname, port, proxy)
        origin = self._origins[scheme, netloc]
        if origin.absolute:
            return origin, url
        return origin, (path or "/") + (f"?{query}" if query else "")

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Response:
        # Never retried or redirected here: a resend is the drain loop's decision, made
        # knowing the event may have landed; a redirect is refused by `raise_for_status`.
        origin, target = self.origin(url)
        if origin.absolute and origin.proxy:
            headers = {**headers, **origin.proxy[2]}  # plain http: the proxy reads each request
        conn = origin.take(timeout)
        resp = _exchange(conn, method, target, body, headers, timeout)
        with _failures(f"no answer within {timeout:g}s", conn.close):
            data = resp.read()
        if resp.will_close or len(origin.idle) >= self.pool_size:
            conn.close()
        else:
            origin.idle.append((conn, time.monotonic()))
        if data and resp.getheader("Content-Encoding", "").lower() == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise Dropped(f"undecodable gzip body: {exc}") from exc
        return Response(resp.status, resp.getheaders(), data)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        params: Mapping[str, str | int] | None = None,
        data: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and read the whole answer; raises TransportError."""
        hdrs = {**self.headers, **(headers or {})}
        if json is not None:
            data = json_codec.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return self.transport(method, url, data, hdrs, timeout)

    def stream(
        self,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        credentials: bool = True,
    ) -> Streamed:
        """GET `url`, returning once the headers are in; raises TransportError.

        `credentials=False` leaves the client's Authorization out (a host that is not the
        service's own). The body comes as sent (no gzip asked for), read with `timeout`.
        """
        hdrs = {**self.headers, "Accept-Encoding": "identity", **(headers or {})}
        if not credentials:
            hdrs.pop("Authorization", None)
        if not self._own_transport:  # tests' transports answer whole
            whole = self.transport("GET", url, None, hdrs, timeout)
            body = io.BytesIO(whole.content)
            return Streamed(whole.status_code, whole.headers.items(), body.read, body.close)
        origin, target = self.origin(url)
        if origin.absolute and origin.proxy:
            hdrs.update(origin.proxy[2])
        conn = origin.connect(timeout)
        resp = _exchange(conn, "GET", target, None, hdrs, timeout)

        def close() -> None:
            resp.close()
            conn.close()

        return Streamed(resp.status, resp.getheaders(), resp.read1, close)


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
) -> http.client.HTTPResponse:
    """Send the request and read the answer's head; the connection is closed on failure."""
    with _failures(f"no answer within {timeout:g}s", conn.close):
        conn.request(method, target, body=body, headers=dict(headers))
        return conn.getresponse()
    raise AssertionError("unreachable")  # mypy: a context manager may swallow


@contextlib.contextmanager
def _failures(timed_out: str, close: Callable[[], None] = lambda: None) -> Iterator[None]:
    """A socket's failures once the request may have gone out, as TransportErrors
    (`close` first: the connection is never used again)."""
    try:
        yield
    except TimeoutError as exc:
        close()
        raise ReadTimeout(timed_out) from exc
    except (OSError, http.client.HTTPException) as exc:
        close()
        raise Dropped(f"{type(exc).__name__}: {exc}") from exc


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def raise_for_status(resp: Response, what: str) -> None:
    """Turn an unsuccessful answer into TransientError (429, 5xx) or PermanentError (4xx,
    and redirects: an endpoint that moved is a configuration to fix, never a delivery)."""
    if resp.status_code < 300:
        return
    body = resp.text[:4000]
    reason = f"{what}: HTTP {resp.status_code}"
    if resp.status_code < 400:
        where = resp.headers.get("Location", "")[:300]
        raise PermanentError(
            f"{reason}: redirected to {where!r}; set the URL it points to",
            response=body,
            status=resp.status_code,
        )
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TransientError(
            reason,
            response=body,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )
    if resp.status_code == 408:
        raise TransientError(reason, response=body, status=408)
    raise PermanentError(reason, response=body, status=resp.status_code)


def request(client: Client, method: str, url: str, *, what: str, **kwargs: Any) -> Response:
    """Send one request; network failures become TransientError, statuses are classified.

    `kwargs` are `Client.request`'s (timeout, params, data, json, headers).
    """
    timeout: float = kwargs["timeout"]
    try:
        resp = client.request(method, url, **kwargs)
    except ConnectError as exc:
        # Refused, unresolvable, or no handshake in time: nothing was sent.
        raise TransientError(f"{what}: could not connect ({exc})") from exc
    except ReadTimeout as exc:
        # Sent, then no answer in time: the other side may well have applied it.
        raise TransientError(f"{what}: timed out after {timeout:g}s", maybe_applied=True) from exc
    except Dropped as exc:
        # Failed after the request went out (not refused before it): the same doubt.
        raise TransientError(f"{what}: connection failed ({exc})", maybe_applied=True) from exc
    raise_for_status(resp, what)
    return resp
