"""bridge/fetcher.py: which URLs from chat messages may be downloaded, and how.

The fetcher's rules (addresses, schemes, ports, allow-list), its limits (deadline, size,
downloads in flight) against local servers, and the FETCH_* settings.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import AllowedHost, Settings, parse_allow_hosts
from bridge.errors import ConfigError
from bridge.fetcher import (
    Fetcher,
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    address_allowed,
    loggable,
)
from tests.support.file_hosts import FileHost, Route

GOOD = {"BRIDGE_SECRET": "Kx3_9vQ-Lm2pZr8T"}


@pytest.fixture
def host() -> Iterator[FileHost]:
    server = FileHost().start()
    yield server
    server.stop()


def allowing(*entries: str, **policy: float) -> FetchPolicy:
    allow, problems = parse_allow_hosts(",".join(entries))
    assert not problems
    return FetchPolicy(allow_hosts=allow, **policy)  # type: ignore[arg-type]


class Dns:
    """A fake resolver: a fixed answer per name, and a log of every question."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        return self.answers[host]


class Wire:
    """A fake network: records where the fetcher connects, and lands on a local server."""

    def __init__(self, server: FileHost) -> None:
        self.server = server
        self.dialed: list[tuple[str, int]] = []

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        self.dialed.append((address, port))
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)


# -- addresses ------------------------------------------------------------------------------
REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # AWS, GCP, Azure metadata
    "169.254.170.2",  # AWS ECS credentials
    "100.64.0.1",  # carrier-grade NAT
    "100.100.100.200",  # Alibaba metadata
    "192.0.0.192",  # Oracle metadata: `is_global` in Python 3.11
    "0.0.0.0",
    "224.0.0.1",  # multicast: `is_global` in Python 3.11
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "ff02::1",
    "fec0::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible: `is_global` in Python 3.11
    "::8.8.8.8",  # deprecated form, never a real host
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1: `is_global` in Python 3.11
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "2002:7f00:1::",  # 6to4 of 127.0.0.1: `is_global` in Python 3.11
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:0:808:808::80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2a00:1450:4007:80e::200e",
    "::ffff:8.8.8.8",  # mapped, judged by its IPv4 address
    "64:ff9b::808:808",  # NAT64 (IPv6-only hosts reach IPv4 sites this way)
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address))


def test_is_global_alone_would_let_disguised_loopback_through() -> None:
    # Why the fetcher unwraps: the standard library's answer is wrong for these.
    for disguised in ("::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "224.0.0.1"):
        assert ipaddress.ip_address(disguised).is_global
        assert not address_allowed(ipaddress.ip_address(disguised))


def test_a_name_is_refused_when_any_of_its_addresses_is_private(host: FileHost) -> None:
    dns = Dns({"files.example.com": ["93.184.215.14", "10.0.0.7"]})
    wire = Wire(host)
    with pytest.raises(FetchRefused, match=re.escape("resolves to 10.0.0.7, which is not")):
        Fetcher(FetchPolicy(), resolve=dns, connect=wire).fetch("http://files.example.com/a")
    assert wire.dialed == []


# -- URLs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com:70/_GET", "scheme 'gopher'"),
        ("ftp://example.com/a", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("//example.com/a", "scheme ''"),
        ("", "scheme ''"),
        ("http://user:pw@example.com/a", "credentials"),
        ("http://user@example.com/a", "credentials"),
        ("http://@example.com/a", "credentials"),
        ("http:///a", "no host"),
        ("http://[::1/a", "malformed URL"),
        ("http://example.com:99999/a", "malformed URL"),
        ("http://example.com:8080/a", "port 8080"),
        ("http://example.com:443/a", "port 443"),
        ("https://example.com:80/a", "port 80"),
        ("http://example.com:0/a", "port 0"),
    ],
)
def test_url_rules(url: str, reason: str, host: FileHost) -> None:
    wire = Wire(host)
    dns = Dns({"example.com": ["93.184.215.14"]})
    with pytest.raises(FetchRefused, match=reason):
        Fetcher(FetchPolicy(), resolve=dns, connect=wire).fetch(url)
    assert wire.dialed == []


def test_a_public_host_on_its_usual_port_is_fetched_from_the_checked_address(
    host: FileHost,
) -> None:
    host.add("/cat.png", Route(b"PNG", "Image/PNG; charset=binary"))
    wire = Wire(host)
    dns = Dns({"example.com": ["93.184.215.14"]})
    got = Fetcher(FetchPolicy(), resolve=dns, connect=wire).fetch("http://example.com/cat.png")
    assert (got.content, got.content_type, got.final_url) == (
        b"PNG",
        "image/png",
        "http://example.com/cat.png",
    )
    assert wire.dialed == [("93.184.215.14", 80)]
    assert dns.asked == ["example.com"]
    headers = host.seen[-1].headers
    assert headers["host"] == "example.com"
    assert headers["user-agent"].startswith("botpress-hitl-bridge/")


def test_https_is_allowed_on_443(host: FileHost) -> None:
    wire = Wire(host)  # a plain-HTTP server: the TLS handshake fails, after the rules passed
    dns = Dns({"example.com": ["2606:4700:4700::1111"]})
    with pytest.raises(FetchFailed):
        Fetcher(FetchPolicy(deadline=2), resolve=dns, connect=wire).fetch("https://example.com/a")
    assert wire.dialed == [("2606:4700:4700::1111", 443)]


def test_paths_are_sent_percent_encoded(host: FileHost) -> None:
    host.add("/a%20b/%C3%A9t%C3%A9.png", Route(b"x"))
    fetcher = Fetcher(allowing(host.netloc))
    assert fetcher.fetch(f"{host.url}/a b/été.png?x=1 2&y=%41").content == b"x"
    assert host.seen[-1].path == "/a%20b/%C3%A9t%C3%A9.png?x=1%202&y=%41"


def test_loggable_drops_credentials_query_and_fragment() -> None:
    assert loggable("https://u:p@Files.example.com:8443/a/b.png?token=s3cret#f") == (
        "https://files.example.com:8443/a/b.png"
    )
    assert loggable("http://[::1]/x?sig=1") == "http://[::1]/x"
    assert loggable("http://[::1/x") == "(a malformed URL)"


# -- the allow-list -------------------------------------------------------------------------
def test_an_entry_without_port_allows_a_private_host_on_the_usual_ports(host: FileHost) -> None:
    host.add("/f", Route(b"internal"))
    wire = Wire(host)
    dns = Dns({"files.internal": ["10.0.0.5"], "files.internal.": ["10.0.0.5"]})
    fetcher = Fetcher(allowing("files.internal"), resolve=dns, connect=wire)
    assert fetcher.fetch("http://FILES.internal/f").content == b"internal"
    with pytest.raises(FetchFailed):  # https on 443: allowed (this fake speaks no TLS)
        fetcher.fetch("https://files.internal/f", deadline=time.monotonic() + 2)
    with pytest.raises(FetchRefused, match=re.escape("resolves to 10.0.0.5")):
        fetcher.fetch("http://files.internal:8080/f")
    with pytest.raises(FetchRefused, match=re.escape("files.internal. resolves to 10.0.0.5")):
        fetcher.fetch("http://files.internal./f")  # another name, as far as entries go
    assert wire.dialed == [("10.0.0.5", 80), ("10.0.0.5", 443)]


def test_an_entry_with_a_port_allows_that_port_only(host: FileHost) -> None:
    host.add("/f", Route(b"internal"))
    wire = Wire(host)
    dns = Dns({"files.internal": ["10.0.0.5"], "public.example": ["10.0.0.5"]})
    fetcher = Fetcher(allowing("files.internal:8080"), resolve=dns, connect=wire)
    assert fetcher.fetch("http://files.internal:8080/f").content == b"internal"
    with pytest.raises(FetchRefused, match="not a public address"):
        fetcher.fetch("http://files.internal/f")
    # Another name for the same address is not allow-listed: entries name hosts.
    with pytest.raises(FetchRefused, match="not a public address"):
        fetcher.fetch("http://public.example:8080/f")
    assert wire.dialed == [("10.0.0.5", 8080)]


def test_ip_entries_match_any_spelling_of_the_address(host: FileHost) -> None:
    host.add("/f", Route(b"v6"))
    wire = Wire(host)
    fetcher = Fetcher(allowing("[0:0::1]:8080", "127.0.0.1:8081"), connect=wire)
    assert fetcher.fetch("http://[::1]:8080/f").content == b"v6"
    assert fetcher.fetch("http://127.0.0.1:8081/f").content == b"v6"
    # ...but not another way of writing it that only a resolver understands.
    with pytest.raises(FetchRefused, match=re.escape("127.0.0.1, which is not a public")):
        fetcher.fetch("http://2130706433:8081/f")
    assert wire.dialed == [("::1", 8080), ("127.0.0.1", 8081)]


# -- redirects ------------------------------------------------------------------------------
def test_three_redirects_are_followed_and_each_hop_is_asked_for(host: FileHost) -> None:
    host.add("/r1", Route(status=301, location=f"{host.url}/r2"))
    host.add("/r2", Route(status=302, location="/r3"))  # relative
    host.add("/r3", Route(status=307, location="r4?x=1"))
    host.add("/r4", Route(b"done", "text/plain"))
    got = Fetcher(allowing(host.netloc)).fetch(f"{host.url}/r1")
    assert (got.content, got.final_url) == (b"done", f"{host.url}/r4?x=1")
    assert [s.path for s in host.seen] == ["/r1", "/r2", "/r3", "/r4?x=1"]


def test_a_fourth_redirect_is_refused(host: FileHost) -> None:
    for i in range(1, 5):
        host.add(f"/r{i}", Route(status=308, location=f"/r{i + 1}"))
    host.add("/r5", Route(b"never"))
    with pytest.raises(FetchRefused, match="more than 3 redirects"):
        Fetcher(allowing(host.netloc)).fetch(f"{host.url}/r1")
    assert host.requested("/r5") == 0


def test_a_redirect_to_another_scheme_is_refused(host: FileHost) -> None:
    host.add("/r", Route(status=302, location="file:///etc/passwd"))
    with pytest.raises(FetchRefused, match="scheme 'file'"):
        Fetcher(allowing(host.netloc)).fetch(f"{host.url}/r")


# -- answers --------------------------------------------------------------------------------
def test_http_errors_fail(host: FileHost) -> None:
    host.add("/gone", Route(b"no", status=410))
    with pytest.raises(FetchFailed, match="HTTP 410"):
        Fetcher(allowing(host.netloc)).fetch(f"{host.url}/gone")
    with pytest.raises(FetchFailed, match="HTTP 404"):
        Fetcher(allowing(host.netloc)).fetch(f"{host.url}/missing")


def test_a_body_shorter_than_its_content_length_fails(host: FileHost) -> None:
    host.add("/short", Route(b"abc", length=10))
    with pytest.raises(FetchFailed, match="ended early"):
        Fetcher(allowing(host.netloc)).fetch(f"{host.url}/short")


def test_the_size_cap(host: FileHost) -> None:
    fetcher = Fetcher(allowing(host.netloc, max_bytes=10))
    host.add("/ten", Route(b"x" * 10))
    host.add("/declared", Route(b"x" * 11))
    host.add("/undeclared", Route(b"x" * 11, length=None))
    host.add("/lying", Route(b"x" * 5000, length=5))
    assert fetcher.fetch(f"{host.url}/ten").content == b"x" * 10
    with pytest.raises(FetchRefused, match=r"over 10 bytes \(Content-Length: 11\)"):
        fetcher.fetch(f"{host.url}/declared")
    with pytest.raises(FetchRefused, match="over 10 bytes"):
        fetcher.fetch(f"{host.url}/undeclared")
    with pytest.raises(FetchRefused, match="over 3 bytes"):
        fetcher.fetch(f"{host.url}/ten", max_bytes=3)
    # A Content-Length is a promise: what comes after it is never read.
    assert fetcher.fetch(f"{host.url}/lying").content == b"x" * 5


# -- time -----------------------------------------------------------------------------------
def test_a_body_trickled_byte_by_byte_stops_at_the_deadline(host: FileHost) -> None:
    # Each byte comes well within the per-read timeout: only the wall clock can stop it.
    host.add("/slow", Route(b"x" * 100, every=0.1))
    fetcher = Fetcher(allowing(host.netloc, deadline=1.0, http_timeout=5.0))
    start = time.monotonic()
    with pytest.raises(FetchFailed, match="deadline"):
        fetcher.fetch(f"{host.url}/slow")
    assert 0.9 < time.monotonic() - start < 1.5


def test_headers_trickled_byte_by_byte_stop_at_the_deadline(host: FileHost) -> None:
    host.add("/slow", Route(b"x", every=0.05, trickle_head=True))
    fetcher = Fetcher(allowing(host.netloc, deadline=1.0, http_timeout=5.0))
    start = time.monotonic()
    with pytest.raises(FetchFailed, match="deadline"):
        fetcher.fetch(f"{host.url}/slow")
    assert 0.9 < time.monotonic() - start < 1.5


def test_files_of_one_delivery_share_one_deadline(host: FileHost) -> None:
    host.add("/slow", Route(b"x" * 100, every=0.1))
    fetcher = Fetcher(allowing(host.netloc, deadline=10.0))
    start = time.monotonic()
    with pytest.raises(FetchFailed, match="deadline"):
        fetcher.fetch(f"{host.url}/slow", deadline=start + 0.5)
    assert time.monotonic() - start < 1.0
    with pytest.raises(FetchFailed, match="no time left"):
        fetcher.fetch(f"{host.url}/slow", deadline=start + 0.5)
    assert host.requested("/slow") == 1


def test_a_silent_tls_server_stops_at_the_deadline() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts, never says a word of TLS
        port = listener.getsockname()[1]
        fetcher = Fetcher(allowing(f"127.0.0.1:{port}", deadline=0.5, http_timeout=10.0))
        start = time.monotonic()
        with pytest.raises(FetchFailed):
            fetcher.fetch(f"https://127.0.0.1:{port}/")
        assert time.monotonic() - start < 1.0


def test_a_slow_resolver_stops_at_the_deadline() -> None:
    def stuck(host: str, port: int) -> list[str]:
        time.sleep(3)
        return ["93.184.215.14"]

    fetcher = Fetcher(FetchPolicy(deadline=0.5), resolve=stuck)
    start = time.monotonic()
    with pytest.raises(FetchFailed, match=re.escape("deadline passed resolving example.com")):
        fetcher.fetch("http://example.com/a")
    assert time.monotonic() - start < 1.0


def test_a_name_that_does_not_resolve_fails() -> None:
    with pytest.raises(FetchFailed, match=re.escape("could not resolve nowhere.example")):
        Fetcher(FetchPolicy(), resolve=Dns()).fetch("http://nowhere.example/a")


# -- downloads in flight --------------------------------------------------------------------
def test_a_download_that_finds_no_free_slot_is_refused_at_once(host: FileHost) -> None:
    host.add("/slow", Route(b"x" * 100, every=0.1))
    host.add("/fast", Route(b"fast"))
    fetcher = Fetcher(allowing(host.netloc, concurrency=1, slot_wait=0.3, deadline=2.0))
    errors: list[Exception] = []

    def slow() -> None:
        try:
            fetcher.fetch(f"{host.url}/slow")
        except FetchFailed as exc:
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    while not host.requested("/slow"):
        time.sleep(0.01)
    start = time.monotonic()
    with pytest.raises(FetchRefused, match=r"too many downloads in flight \(1\)"):
        fetcher.fetch(f"{host.url}/fast")
    assert 0.25 < time.monotonic() - start < 0.6
    assert host.requested("/fast") == 0
    t.join()
    assert len(errors) == 1  # the slow one hit its deadline, and gave its slot back
    assert fetcher.fetch(f"{host.url}/fast").content == b"fast"


def test_slots_are_given_back_whatever_happens(host: FileHost) -> None:
    host.add("/ok", Route(b"ok"))
    fetcher = Fetcher(allowing(host.netloc, concurrency=1, slot_wait=0.1))
    for url in (f"{host.url}/missing", "http://10.0.0.1/", f"{host.url}/missing"):
        with pytest.raises((FetchFailed, FetchRefused)):
            fetcher.fetch(url)
    assert fetcher.fetch(f"{host.url}/ok").content == b"ok"


# -- TLS ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA and a certificate it signed for `localhost` (openssl's command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=CA")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "ext").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext",
    )  # fmt: skip
    return d


@pytest.fixture
def tls_host(certificates: Path) -> Iterator[FileHost]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    server = FileHost(tls=ctx).start()
    yield server
    server.stop()


def test_https_checks_the_certificate_against_the_host_name(
    tls_host: FileHost, certificates: Path
) -> None:
    tls_host.add("/f", Route(b"secure"))
    trust = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    port = tls_host.port
    fetcher = Fetcher(allowing(f"localhost:{port}", f"127.0.0.1:{port}"), tls=trust)
    assert fetcher.fetch(f"https://localhost:{port}/f").content == b"secure"
    assert tls_host.seen[-1].headers["host"] == f"localhost:{port}"
    # The certificate names localhost, not 127.0.0.1.
    with pytest.raises(FetchFailed, match="SSLCertVerificationError"):
        fetcher.fetch(f"https://127.0.0.1:{port}/f")
    # And the default trust (certifi's bundle) does not know the test CA.
    with pytest.raises(FetchFailed, match="SSLCertVerificationError"):
        Fetcher(fetcher.policy).fetch(f"https://localhost:{port}/f")


# -- settings -------------------------------------------------------------------------------
def test_allow_hosts_entries() -> None:
    entries, problems = parse_allow_hosts(
        " files.internal, 127.0.0.1:8080,[::1]:9000, [0:0::1] ,Example.COM:443,, my_host "
    )
    assert problems == []
    assert entries == (
        AllowedHost("files.internal"),
        AllowedHost("127.0.0.1", 8080),
        AllowedHost("::1", 9000),
        AllowedHost("::1"),
        AllowedHost("example.com", 443),
        AllowedHost("my_host"),
    )


def test_each_bad_allow_hosts_entry_is_one_problem() -> None:
    bad = [
        "http://files.internal",
        "::1",
        "[::1",
        "host:0",
        "host:70000",
        "host:http",
        "a b",
        "[1.2.3.4]",
        "[zz::1]",
        "files.internal/path",
        "-bad.example",
        "trailing.",
    ]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "FETCH_ALLOW_HOSTS": ",".join(["ok.example", *bad])})
    assert len(info.value.problems) == len(bad)
    for entry, line in zip(bad, info.value.problems, strict=True):
        assert line.startswith(f"FETCH_ALLOW_HOSTS entry {entry!r} is not host or host:port")


def test_fetch_defaults() -> None:
    s = Settings.from_env(GOOD)
    assert (s.fetch_allow_hosts, s.fetch_deadline, s.fetch_concurrency) == ((), 20.0, 8)
    policy = FetchPolicy.from_settings(s)
    assert (policy.deadline, policy.concurrency, policy.http_timeout) == (20.0, 8, 10.0)
    assert policy.max_bytes == 20 * 1024 * 1024 and policy.max_redirects == 3


def test_fetch_concurrency_is_a_quarter_of_the_worker_concurrency_at_most_8_unless_set() -> None:
    def concurrency(**env: str) -> int:
        return Settings.from_env({**GOOD, **env}).fetch_concurrency

    assert concurrency(WORKER_CONCURRENCY="4") == 1
    assert concurrency(WORKER_CONCURRENCY="2") == 1
    assert concurrency(WORKER_CONCURRENCY="40") == 8  # each may hold FETCH_MAX_BYTES
    assert concurrency() == 8  # 256 greenlets by default
    assert concurrency(WORKER_CONCURRENCY="4", FETCH_CONCURRENCY="7") == 7
    for bad in ("0", "x", "1.5", "-2"):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**GOOD, "FETCH_CONCURRENCY": bad})
        assert info.value.problems == [
            f"FETCH_CONCURRENCY={bad!r} must be a whole number, at least 1"
        ]


def test_the_deadline_must_leave_room_in_the_lease() -> None:
    assert Settings.from_env({**GOOD, "FETCH_DEADLINE_SECONDS": "24"}).fetch_deadline == 24
    for bad in ("25", "60", "nan", "inf"):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**GOOD, "FETCH_DEADLINE_SECONDS": bad})
        [line] = info.value.problems
        assert line.startswith("FETCH_DEADLINE_SECONDS must be shorter than LEASE_SECONDS")
        assert "(25s)" in line
    with pytest.raises(ConfigError, match="is not a number"):
        Settings.from_env({**GOOD, "FETCH_DEADLINE_SECONDS": "soon"})
    # Unset, it shrinks to fit a short lease (or a long HTTP timeout) by itself.
    short = Settings.from_env({**GOOD, "HTTP_TIMEOUT_SECONDS": "1", "LEASE_SECONDS": "3"})
    assert short.fetch_deadline == pytest.approx(0.8)
    long = Settings.from_env({**GOOD, "HTTP_TIMEOUT_SECONDS": "20"})
    assert long.fetch_deadline == pytest.approx(4.0)
