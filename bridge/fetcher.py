"""The one way to download a URL that came from a chat message (issue 14, server-side
request forgery).

Chat messages come from anonymous end users, so every URL in one is hostile: fetched
naively it reaches the bridge's own network (loopback, private ranges, cloud metadata at
169.254.169.254) and the bytes end up in a public ticket. `Fetcher.fetch`:

- accepts only http and https on their usual ports, and no credentials in the URL;
- resolves the host itself and refuses unless every address is on the public internet
  (IPv6 forms that embed an IPv4 address are judged by that address too), unless the
  host is in FETCH_ALLOW_HOSTS;
- connects to the very address it checked (no second lookup: DNS rebinding cannot swap
  it), through no proxy;
- follows at most three redirects itself, checking every hop the same way;
- stops at a wall-clock deadline (a watchdog shuts the socket down) and at a size cap;
- refuses at once when too many downloads are already in flight in this process, so
  slow files never hold every worker thread.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests.utils

from bridge import __version__
from bridge.config import DEFAULT_FETCH_DEADLINE, AllowedHost, Settings
from bridge.errors import BridgeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: `resolve(host, port)`: every address of `host`, as strings (socket.getaddrinfo's).
Resolve = Callable[[str, int], Sequence[str]]
#: `connect(address, port, timeout)`: a TCP socket connected to that very address.
Connect = Callable[[str, int, float], socket.socket]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 3
#: How long a download waits for a free slot before it is refused: the thread asking
#: moves on (the file goes as its link) rather than queueing behind slow downloads.
SLOT_WAIT = 1.0
PORTS = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
USER_AGENT = f"botpress-hitl-bridge/{__version__}"

#: Cloud metadata endpoints: AWS, GCP and Azure (169.254.169.254), AWS ECS task
#: credentials, AWS over IPv6, Alibaba, Oracle. Most are not global anyway; the list
#: states the intent and does not depend on `ipaddress`'s tables.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class FetchError(BridgeError):
    """A URL from a message was not downloaded; the caller shows the link instead.

    Never a DeliveryError: a file that cannot be fetched must not hold up the message.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class FetchRefused(FetchError):
    """The rules said no: scheme, port, credentials, address, redirects, size, or too
    many downloads in flight."""


class FetchFailed(FetchError):
    """The download was allowed and did not work: network error, HTTP status, deadline."""


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str  # without parameters; "" when the server sent none
    final_url: str  # after redirects


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched, and how long and how much a fetch may take."""

    allow_hosts: tuple[AllowedHost, ...] = ()
    deadline: float = DEFAULT_FETCH_DEADLINE
    concurrency: int = 4
    max_bytes: int = DEFAULT_MAX_BYTES
    http_timeout: float = 10.0
    max_redirects: int = MAX_REDIRECTS
    slot_wait: float = SLOT_WAIT

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            allow_hosts=settings.fetch_allow_hosts,
            deadline=settings.fetch_deadline,
            concurrency=settings.fetch_concurrency,
            http_timeout=settings.http_timeout,
        )

    def allow_listed(self, scheme: str, host: str, port: int) -> bool:
        """Whether FETCH_ALLOW_HOSTS names this host on this port (an entry without a
        port names the scheme's usual one)."""
        return any(e.host == host and (e.port or PORTS[scheme]) == port for e in self.allow_hosts)


def address_allowed(addr: IPAddress) -> bool:
    """Whether `addr` is on the public internet and no metadata endpoint.

    IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are
    judged by it too: Python 3.11's `is_global` is true of `::127.0.0.1`,
    `64:ff9b::7f00:1` and `2002:7f00:1::`, all of them loopback in disguise.
    """
    if addr in METADATA_ADDRESSES:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return address_allowed(addr.ipv4_mapped)
        if addr in _NAT64:
            return address_allowed(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
        if addr in _IPV4_COMPATIBLE:
            return False  # ::, ::1 and the deprecated ::a.b.c.d: never a public host
        embedded = [addr.sixtofour] if addr.sixtofour else []
        embedded += list(addr.teredo or ())
        if not all(address_allowed(v4) for v4 in embedded) or addr.is_site_local:
            return False
    return addr.is_global and not (
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
    )


def loggable(url: str) -> str:
    """The URL without credentials, query string or fragment (they may carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "(a malformed URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def resolve_host(host: str, port: int) -> list[str]:
    """Every address of `host` from the system resolver."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def connect_to(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to an address (a literal: no lookup happens)."""
    return socket.create_connection((address, port), timeout=timeout)


@dataclass(frozen=True)
class _Hop:
    """One URL to request, checked for its form (not yet for its addresses)."""

    url: str
    scheme: str
    host: str  # ASCII, lower case; IPv6 without brackets
    port: int
    host_header: str
    target: str  # path and query of the request line
    allow_listed: bool


class _Watchdog:
    """Shuts the current socket down when the deadline passes: a server that trickles a
    byte now and then satisfies every per-read timeout, so only a wall clock stops it."""

    def __init__(self, end: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, end - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        """Watch `sock` from now on (None before closing one: never shut a closed socket)."""
        with self._lock:
            self._sock = sock
            if self.fired and sock is not None:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                _shut(self._sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # The kernel's shutdown, also under TLS: it wakes a thread blocked reading the socket.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Connection(http.client.HTTPConnection):
    """http.client's request and response handling over a socket the fetcher opened.

    http.client reads no proxy settings from the environment, on purpose: a proxy would
    resolve the name again itself, after the check.
    """

    def __init__(self, hop: _Hop, timeout: float, open_socket: Callable[[], socket.socket]):
        super().__init__(hop.host, hop.port, timeout=timeout)
        self._open_socket = open_socket

    def connect(self) -> None:
        self.sock = self._open_socket()


class Fetcher:
    """Downloads URLs from messages under a FetchPolicy; build one per process (its bound
    on downloads in flight is per instance) and share it between threads."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolve: Resolve = resolve_host,
        connect: Connect = connect_to,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolve = resolve
        self._connect = connect
        # certifi's bundle, as requests (every other outbound call) uses.
        self._tls = tls or ssl.create_default_context(cafile=requests.utils.DEFAULT_CA_BUNDLE_PATH)
        self._slots = threading.BoundedSemaphore(policy.concurrency)
        self._lock = threading.Lock()
        self._dns: ThreadPoolExecutor | None = None

    def fetch(
        self, url: str, *, deadline: float | None = None, max_bytes: int | None = None
    ) -> Fetched:
        """Download `url`; raises FetchRefused or FetchFailed.

        `deadline` (a time.monotonic() instant) lets several downloads of one delivery
        share one budget; a fetch never takes longer than the policy's deadline anyway.
        """
        now = time.monotonic()
        end = now + self.policy.deadline
        if deadline is not None:
            end = min(end, deadline)
        cap = self.policy.max_bytes if max_bytes is None else max_bytes
        hop = self._hop(url)  # a malformed URL needs no slot
        if end <= now:
            raise FetchFailed("no time left for downloads")
        if not self._slots.acquire(timeout=min(self.policy.slot_wait, end - now)):
            raise FetchRefused(f"too many downloads in flight ({self.policy.concurrency})")
        watchdog = _Watchdog(end)
        location = url
        try:
            for redirects in range(self.policy.max_redirects + 1):
                if redirects:
                    hop = self._hop(location)
                got = self._get(hop, self._addresses(hop, end), watchdog, end, cap)
                if isinstance(got, Fetched):
                    return got
                location = got
            raise FetchRefused(f"more than {self.policy.max_redirects} redirects")
        finally:
            watchdog.cancel()
            self._slots.release()

    # -- the rules -------------------------------------------------------------------------
    def _hop(self, url: str) -> _Hop:
        try:
            parts = urlsplit(url)
            explicit_port = parts.port
        except ValueError as exc:
            raise FetchRefused(f"malformed URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in PORTS:
            raise FetchRefused(f"scheme {scheme!r} is not http or https")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused("credentials in the URL")
        try:
            host = (parts.hostname or "").encode("idna").decode("ascii")
        except UnicodeError:
            raise FetchRefused("malformed host name") from None
        if not host:
            raise FetchRefused("no host in the URL")
        with contextlib.suppress(ValueError):
            host = str(ipaddress.ip_address(host))  # canonical, as FETCH_ALLOW_HOSTS holds it
        port = PORTS[scheme] if explicit_port is None else explicit_port
        header = f"[{host}]" if ":" in host else host
        if explicit_port is not None:
            header += f":{explicit_port}"
        # Percent-encode what a browser would (spaces, non-ASCII); keep existing escapes.
        target = quote(parts.path or "/", safe="/%!$&'()*+,;=:@~")
        if parts.query:
            target += "?" + quote(parts.query, safe="/%!$&'()*+,;=:@~?")
        return _Hop(
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            host_header=header,
            target=target,
            allow_listed=self.policy.allow_listed(scheme, host, port),
        )

    def _addresses(self, hop: _Hop, end: float) -> list[IPAddress]:
        """The hop's addresses, each checked (unless the host is allow-listed)."""
        try:
            found: list[IPAddress] = [ipaddress.ip_address(hop.host)]
        except ValueError:
            found = self._lookup(hop, end)
        if not hop.allow_listed:
            # The address first: when the port is wrong too, it is the graver problem.
            for addr in found:
                if not address_allowed(addr):
                    named = "" if str(addr) == hop.host else f"{hop.host} resolves to "
                    raise FetchRefused(f"{named}{addr}, which is not a public address")
            if hop.port != PORTS[hop.scheme]:
                raise FetchRefused(f"port {hop.port} is not the usual port of {hop.scheme}")
        return found

    def _lookup(self, hop: _Hop, end: float) -> list[IPAddress]:
        # getaddrinfo cannot be interrupted: wait for it at most until the deadline.
        future = self._dns_pool().submit(self._resolve, hop.host, hop.port)
        try:
            answers = future.result(timeout=max(0.0, end - time.monotonic()))
        except TimeoutError:
            future.cancel()
            raise FetchFailed(f"the deadline passed resolving {hop.host}") from None
        except (OSError, UnicodeError, ValueError) as exc:
            raise FetchFailed(f"could not resolve {hop.host} ({type(exc).__name__})") from None
        found: list[IPAddress] = []
        for answer in answers:
            try:
                addr = ipaddress.ip_address(answer)
            except ValueError:
                raise FetchRefused(f"{hop.host} resolved to a non-address") from None
            if addr not in found:
                found.append(addr)
        if not found:
            raise FetchFailed(f"{hop.host} has no address")
        return found

    def _dns_pool(self) -> ThreadPoolExecutor:
        with self._lock:  # made on first use, in the process that uses it (prefork)
            if self._dns is None:
                self._dns = ThreadPoolExecutor(
                    max_workers=self.policy.concurrency + 1, thread_name_prefix="fetch-dns"
                )
            return self._dns

    # -- the request -----------------------------------------------------------------------
    def _get(
        self, hop: _Hop, addresses: list[IPAddress], watchdog: _Watchdog, end: float, cap: int
    ) -> Fetched | str:
        """GET one hop: the file, or where a redirect points."""
        conn = _Connection(
            hop,
            self._timeout(end),
            lambda: self._open(hop, addresses, watchdog, end),
        )
        resp: http.client.HTTPResponse | None = None
        try:
            conn.request(
                "GET",
                hop.target,
                headers={
                    "Host": hop.host_header,
                    "User-Agent": USER_AGENT,
                    "Accept": "*/*",
                    "Connection": "close",
                },
            )
            self._arm(conn, end)
            resp = conn.getresponse()
            location = (resp.getheader("Location") or "").strip()
            if resp.status in REDIRECTS and location:
                return urljoin(hop.url, location)
            if resp.status != 200:
                raise FetchFailed(f"HTTP {resp.status}")
            declared = (resp.getheader("Content-Length") or "").strip()
            if declared.isdigit() and int(declared) > cap:
                raise FetchRefused(f"over {cap} bytes (Content-Length: {declared})")
            body = bytearray()
            while chunk := self._read(conn, resp, end, min(CHUNK, cap + 1 - len(body))):
                body += chunk
                if len(body) > cap:
                    raise FetchRefused(f"over {cap} bytes")
            # The watchdog's shutdown reads as a clean end of the body: never keep it.
            if watchdog.fired:
                raise self._too_late()
            if resp.length:
                raise FetchFailed("the body ended early")
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            return Fetched(bytes(body), ctype, hop.url)
        except FetchError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if watchdog.fired or time.monotonic() >= end:
                raise self._too_late() from None
            raise FetchFailed(f"{type(exc).__name__} from {hop.host}") from None
        finally:
            watchdog.watch(None)
            if resp is not None:
                resp.close()
            conn.close()

    def _read(self, conn: _Connection, resp: http.client.HTTPResponse, end: float, n: int) -> bytes:
        self._arm(conn, end)
        return resp.read1(n)

    def _open(
        self, hop: _Hop, addresses: list[IPAddress], watchdog: _Watchdog, end: float
    ) -> socket.socket:
        """A connection to one of the checked addresses, TLS set up for https."""
        error: OSError = ConnectionError(f"no address for {hop.host}")
        for addr in addresses:
            try:
                sock = self._connect(str(addr), hop.port, self._timeout(end))
            except OSError as exc:
                error = exc
                continue
            watchdog.watch(sock)
            if hop.scheme == "http":
                return sock
            tls: ssl.SSLSocket | None = None
            try:
                tls = self._tls.wrap_socket(
                    sock, server_hostname=hop.host, do_handshake_on_connect=False
                )
                watchdog.watch(tls)  # wrap_socket took over the descriptor
                tls.settimeout(self._timeout(end))
                tls.do_handshake()
            except BaseException:
                watchdog.watch(None)
                (tls or sock).close()
                raise
            return tls
        raise error

    def _timeout(self, end: float) -> float:
        left = end - time.monotonic()
        if left <= 0:
            raise self._too_late()
        return min(self.policy.http_timeout, left)

    def _arm(self, conn: _Connection, end: float) -> None:
        if conn.sock is not None:
            conn.sock.settimeout(self._timeout(end))

    def _too_late(self) -> FetchFailed:
        return FetchFailed(f"over the deadline ({self.policy.deadline:g} s for a delivery's files)")
