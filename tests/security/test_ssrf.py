"""Issue 14 §1: URLs in chat messages must not reach the bridge's own network (SSRF).

Before the fetcher, the Zendesk adapter downloaded any http(s) URL named in an image,
file, audio or video message, followed redirects, and uploaded the bytes to a public
ticket comment. Here a "secret" internal service listens on 127.0.0.1 and an "attacker"
host is allow-listed (FETCH_ALLOW_HOSTS, standing in for a public host); each attack
the issue names is refused, and the secret service never gets a request.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import fakeredis
import pytest

from bridge.config import Settings, parse_allow_hosts
from bridge.fetcher import Fetcher, FetchPolicy, FetchRefused
from bridge.helpdesks.base import Author, OutboundMessage, TicketRequest
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.storage import Conversation, Store
from tests.support.fake_zendesk import FakeZendesk
from tests.support.file_hosts import FileHost, Route

SECRET = b"TOP SECRET: internal service credentials"
PUBLIC = "93.184.215.14"  # what the fake resolvers answer for a "public" host


@pytest.fixture
def secret() -> Iterator[FileHost]:
    """An internal service the bridge's network can reach and the internet cannot."""
    server = FileHost()
    for path in ("/", "/secret", "/latest/meta-data/"):
        server.add(path, Route(SECRET, "image/png"))
    yield server.start()
    server.stop()


@pytest.fixture
def attacker() -> Iterator[FileHost]:
    """A host the attacker controls; allow-listed, as a public host would pass the rules."""
    server = FileHost()
    server.add("/cat.png", Route(b"\x89PNG harmless", "image/png"))
    yield server.start()
    server.stop()


class Wire:
    """Records every connection the fetcher opens, then makes it for real; `lands_on`
    sends connections to "public" addresses to a local server instead."""

    def __init__(self, lands_on: FileHost | None = None) -> None:
        self.lands_on = lands_on
        self.dialed: list[tuple[str, int]] = []

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        self.dialed.append((address, port))
        if self.lands_on is not None and address == PUBLIC:
            address, port = "127.0.0.1", self.lands_on.port
        return socket.create_connection((address, port), timeout=timeout)


def fetcher_for(*allow: str, resolve: Any = None, wire: Wire | None = None) -> Fetcher:
    hosts, problems = parse_allow_hosts(",".join(allow))
    assert not problems
    kwargs: dict[str, Any] = {"connect": wire or Wire()}
    if resolve is not None:
        kwargs["resolve"] = resolve
    return Fetcher(FetchPolicy(allow_hosts=hosts, deadline=5), **kwargs)


def refused(fetcher: Fetcher, url: str, reason: str) -> None:
    with pytest.raises(FetchRefused, match=re.escape(reason)):
        fetcher.fetch(url)


# -- each attack, at the fetcher ------------------------------------------------------------
def test_loopback_url_is_refused(secret: FileHost, attacker: FileHost) -> None:
    wire = Wire()
    fetcher = fetcher_for(attacker.netloc, wire=wire)
    refused(fetcher, f"http://127.0.0.1:{secret.port}/secret", "127.0.0.1, which is not a public")
    assert wire.dialed == [] and secret.seen == []


def test_redirect_from_an_allowed_host_to_an_internal_one_is_refused(
    secret: FileHost, attacker: FileHost
) -> None:
    attacker.add("/r", Route(status=302, location=f"http://127.0.0.1:{secret.port}/secret"))
    wire = Wire()
    fetcher = fetcher_for(attacker.netloc, wire=wire)
    refused(fetcher, f"{attacker.url}/r", "127.0.0.1, which is not a public")
    assert attacker.requested("/r") == 1
    assert wire.dialed == [("127.0.0.1", attacker.port)]  # the first hop only
    assert secret.seen == []


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::ffff:7f00:1]",  # the same, in hex
        "[::127.0.0.1]",  # IPv4-compatible IPv6
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f000001",  # ... as one hex number
        "0x7f.1",  # ... in the shortened dotted form
        "0177.0.0.1",  # ... in octal
        "127.1",
        "localhost",  # a name that resolves to loopback
        "LocalHost",
    ],
)
def test_other_spellings_of_loopback_are_refused(
    host: str, secret: FileHost, attacker: FileHost
) -> None:
    wire = Wire()
    fetcher = fetcher_for(attacker.netloc, wire=wire)
    with pytest.raises(FetchRefused, match="which is not a public address"):
        fetcher.fetch(f"http://{host}:{secret.port}/secret")
    assert wire.dialed == [] and secret.seen == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, which is not a public"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254, which is not a public"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "metadata.google.internal resolves to 169.254.169.254",
        ),
        ("http://100.100.100.200/latest/meta-data/", "100.100.100.200, which is not a public"),
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "64:ff9b::a9fe:a9fe, which is not"),
    ],
)
def test_cloud_metadata_is_refused(url: str, reason: str) -> None:
    wire = Wire()
    resolve = {"metadata.google.internal": ["169.254.169.254"]}
    fetcher = fetcher_for(resolve=lambda host, port: resolve[host], wire=wire)
    refused(fetcher, url, reason)
    assert wire.dialed == []


def test_a_name_that_resolves_to_a_private_address_is_refused(secret: FileHost) -> None:
    wire = Wire()
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return {"files.example.com": [PUBLIC, "10.1.2.3"], "intranet.example": ["192.168.0.10"]}[
            host
        ]

    fetcher = fetcher_for(resolve=resolve, wire=wire)
    refused(fetcher, "http://intranet.example/", "intranet.example resolves to 192.168.0.10")
    # One private address among public ones is enough to refuse.
    refused(fetcher, "http://files.example.com/a.png", "resolves to 10.1.2.3")
    assert asked == ["intranet.example", "files.example.com"] and wire.dialed == []


def test_dns_rebinding_cannot_swap_the_checked_address(
    secret: FileHost, attacker: FileHost
) -> None:
    """The attacker's DNS answers a public address to the check and 127.0.0.1 to any
    later lookup: the fetcher looks up once per hop and connects to what it checked."""
    answers: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        answers.append(PUBLIC if not answers else "127.0.0.1")
        return [answers[-1]]

    wire = Wire(lands_on=attacker)  # the "public" address is the attacker's server
    attacker.add("/secret", Route(b"what the public host serves", "image/png"))
    got = fetcher_for(resolve=rebinding, wire=wire).fetch("http://rebind.example/secret")
    assert got.content == b"what the public host serves"
    assert answers == [PUBLIC]  # one lookup
    assert wire.dialed == [(PUBLIC, 80)]  # to the checked address
    assert attacker.seen[-1].headers["host"] == "rebind.example"
    assert secret.seen == []


def test_each_redirect_hop_is_looked_up_and_checked_again(
    secret: FileHost, attacker: FileHost
) -> None:
    answers: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        answers.append(PUBLIC if not answers else "127.0.0.1")
        return [answers[-1]]

    attacker.add("/hop", Route(status=301, location="http://rebind.example/secret"))
    wire = Wire(lands_on=attacker)
    fetcher = fetcher_for(resolve=rebinding, wire=wire)
    refused(fetcher, "http://rebind.example/hop", "rebind.example resolves to 127.0.0.1")
    assert answers == [PUBLIC, "127.0.0.1"]  # one lookup per hop
    assert wire.dialed == [(PUBLIC, 80)]
    assert secret.seen == []


def test_more_than_three_redirects_are_refused(attacker: FileHost) -> None:
    for i in range(4):
        attacker.add(f"/r{i}", Route(status=302, location=f"/r{i + 1}"))
    attacker.add("/r4", Route(b"fourth redirect's target", "image/png"))
    refused(fetcher_for(attacker.netloc), f"{attacker.url}/r0", "more than 3 redirects")
    assert [s.path for s in attacker.seen] == ["/r0", "/r1", "/r2", "/r3"]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://example.com/x",
        "dict://127.0.0.1:11211/stat",
        "data:image/png;base64,AAAA",
    ],
)
def test_schemes_other_than_http_and_https_are_refused(url: str) -> None:
    wire = Wire()
    with pytest.raises(FetchRefused, match="is not http or https"):
        fetcher_for(wire=wire).fetch(url)
    assert wire.dialed == []


def test_non_standard_ports_are_refused_even_on_public_hosts() -> None:
    wire = Wire()
    fetcher = fetcher_for(resolve=lambda host, port: [PUBLIC], wire=wire)
    for url, port in [
        ("http://files.example.com:8080/a.png", 8080),
        ("http://files.example.com:6379/", 6379),
        ("https://files.example.com:22/", 22),
    ]:
        refused(fetcher, url, f"port {port} is not the usual port")
    assert wire.dialed == []


def test_credentials_in_the_url_are_refused() -> None:
    refused(
        fetcher_for(resolve=lambda host, port: [PUBLIC]),
        "http://admin:admin@files.example.com/",
        "credentials in the URL",
    )


# -- end to end, through the Zendesk adapter ------------------------------------------------
@pytest.fixture
def zd_for(zendesk: FakeZendesk) -> Callable[..., tuple[ZendeskHelpdesk, Conversation]]:
    def build(allow: str) -> tuple[ZendeskHelpdesk, Conversation]:
        settings = Settings.from_env(
            {
                "BRIDGE_SECRET": "test-secret-0123456789",
                "HELPDESK": "zendesk",
                "HTTP_TIMEOUT_SECONDS": "5",
                "ZENDESK_URL": zendesk.url,
                "ZENDESK_EMAIL": zendesk.email,
                "ZENDESK_API_TOKEN": zendesk.api_token,
                "FETCH_ALLOW_HOSTS": allow,
            }
        )
        zd = ZendeskHelpdesk(settings, Store(fakeredis.FakeRedis(decode_responses=True)))
        conv = Conversation(id="c_ssrf", created_at=time.time(), title="Help")
        tid = zd.create_ticket(
            conv, TicketRequest("Help", "d"), idempotency_key="e_1", maybe_applied=False
        )
        return zd, replace(conv, ticket_id=tid)

    return build


ATTACKS = {
    "loopback": "http://127.0.0.1:{secret}/secret",
    "redirect": "{attacker}/to-secret",
    "mapped": "http://[::ffff:127.0.0.1]:{secret}/secret",
    "decimal": "http://2130706433:{secret}/secret",
    "hex": "http://0x7f000001:{secret}/secret",
    "localhost": "http://localhost:{secret}/secret",
    "redirects": "{attacker}/r0",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_image_pointing_inside_becomes_its_link_and_nothing_is_uploaded(
    attack: str,
    zd_for: Callable[..., tuple[ZendeskHelpdesk, Conversation]],
    zendesk: FakeZendesk,
    secret: FileHost,
    attacker: FileHost,
) -> None:
    attacker.add("/to-secret", Route(status=302, location=f"http://127.0.0.1:{secret.port}/secret"))
    for i in range(3):
        attacker.add(f"/r{i}", Route(status=302, location=f"/r{i + 1}"))
    attacker.add("/r3", Route(status=302, location=f"http://127.0.0.1:{secret.port}/secret"))
    url = ATTACKS[attack].format(secret=secret.port, attacker=attacker.url)
    zd, conv = zd_for(attacker.netloc)
    image = OutboundMessage("e_2", "image", {"imageUrl": url, "title": "receipt.png"}, time.time())
    zd.append_messages(conv, Author("bot"), [image], maybe_applied=False)
    comment = zendesk.comments(conv.ticket_id)[-1]
    assert comment["body"] == f"🤖 Bot: 🖼️ receipt.png (not attached, link: {url})"
    assert comment.get("attachments", []) == []
    assert zendesk.calls("POST", "/api/v2/uploads") == []
    assert secret.seen == []


def test_an_image_from_an_allowed_host_is_still_attached(
    zd_for: Callable[..., tuple[ZendeskHelpdesk, Conversation]],
    zendesk: FakeZendesk,
    attacker: FileHost,
) -> None:
    # The same path as the attacks above, with a URL the rules allow: the refusals above
    # come from the rules, not from a broken download.
    zd, conv = zd_for(attacker.netloc)
    image = OutboundMessage("e_2", "image", {"imageUrl": f"{attacker.url}/cat.png"}, time.time())
    zd.append_messages(conv, Author("bot"), [image], maybe_applied=False)
    [upload] = zendesk.calls("POST", "/api/v2/uploads")
    assert upload.body == b"\x89PNG harmless"
    assert zendesk.comments(conv.ticket_id)[-1]["body"] == "🤖 Bot: 🖼️ cat.png"
