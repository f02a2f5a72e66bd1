"""Agents' files on accounts with private attachments: the bridge's signed, expiring links
(PUBLIC_BASE_URL/files/<token>) and the web process relaying them from Zendesk."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.base import AgentMessage
from bridge.helpdesks.zendesk import ZendeskHelpdesk, files
from bridge.runtime import Runtime
from bridge.storage import Conversation, Store
from tests.support.fake_zendesk import FakeZendesk

BASE = "https://bridge.example.com"
PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 100
PDF = b"%PDF-1.7 " + b"d" * 200_000  # several chunks


class NoTasks:
    """The web's task publisher: these tests start none."""

    def drain(self, stream: str, countdown: float) -> None:
        raise AssertionError("no task expected")

    def pump(self, pump_id: str) -> None:
        raise AssertionError("no task expected")


@pytest.fixture
def private(fake: FakeZendesk) -> FakeZendesk:
    fake.private_attachments = True
    return fake


@pytest.fixture
def pzd(
    make_settings: Callable[..., Settings], store: Store, private: FakeZendesk
) -> ZendeskHelpdesk:
    return ZendeskHelpdesk(make_settings(PUBLIC_BASE_URL=BASE), store)


@pytest.fixture
def web(pzd: ZendeskHelpdesk, store: Store) -> FlaskClient:
    return create_app(runtime=Runtime(pzd.settings, store, pzd, NoTasks())).test_client()


def sent(zd: ZendeskHelpdesk, conv: Conversation) -> list[AgentMessage]:
    return [i for i in zd.changes_since(conv, "").items if isinstance(i, AgentMessage)]


def attach(fake: FakeZendesk, conv: Conversation, *files_: tuple[str, str, bytes]) -> int:
    """An agent comments on the conversation's ticket with `files_` (a.txt by default)."""
    chosen = list(files_) or [("a.txt", "text/plain", b"a")]
    return fake.agent_comment(conv.ticket_id, fake.add_agent("Sam"), "x", attachments=chosen)


def path(url: str) -> str:
    assert url.startswith(f"{BASE}/files/")
    return url.removeprefix(BASE)


def test_files_of_a_private_account_go_as_the_bridges_links_and_are_relayed(
    pzd: ZendeskHelpdesk, private: FakeZendesk, ticketed: Conversation, web: FlaskClient
) -> None:
    files_ = [("shot.png", "image/png", PNG), ("guide €.pdf", "application/pdf", PDF)]
    private.agent_comment(ticketed.ticket_id, private.add_agent("Sam"), "see", attachments=files_)
    image, pdf = sent(pzd, ticketed)[1:]
    shown = web.get(path(image.payload["imageUrl"]))
    assert shown.status_code == 200 and shown.data == PNG
    assert shown.headers["Content-Type"] == "image/png"
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    assert shown.headers["Content-Disposition"].startswith("inline;")
    got = web.get(path(pdf.payload["fileUrl"]))
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["Content-Disposition"] == (
        "attachment; filename=\"guide _.pdf\"; filename*=UTF-8''guide%20%E2%82%AC.pdf"
    )
    assert pdf.payload["title"] == "guide €.pdf"
    # Credentials go to the account's own origin, never to where it redirects.
    asked = [r for r in private.requests if r.path.startswith("/attachments/")]
    assert [r.path.split("/")[2] for r in asked] == ["token", "download"] * 2
    for r in asked:
        has_auth = any(k.lower() == "authorization" for k in r.headers)
        assert has_auth == (r.path.split("/")[2] == "token")


def test_the_account_setting_is_read_once_and_public_accounts_keep_zendesks_links(
    make_settings: Callable[..., Settings], store: Store, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd = ZendeskHelpdesk(make_settings(PUBLIC_BASE_URL=BASE), store)
    for _ in range(2):
        fake.agent_comment(
            ticketed.ticket_id,
            fake.add_agent("Sam"),
            "x",
            attachments=[("a.txt", "text/plain", b"a")],
        )
    urls = [m.payload["fileUrl"] for m in sent(zd, ticketed) if m.message_type == "file"]
    assert len(urls) == 2 and all(u.startswith(f"{fake.url}/attachments/token/") for u in urls)
    sent(zd, ticketed)
    assert len(fake.calls("GET", "/api/v2/account/settings")) == 1


def test_without_public_base_url_files_go_as_zendesk_links_and_check_says_why(
    zd: ZendeskHelpdesk, private: FakeZendesk, ticketed: Conversation
) -> None:
    attach(private, ticketed)
    assert sent(zd, ticketed)[1].payload["fileUrl"].startswith(f"{private.url}/attachments/")
    problems = zd.check()
    assert len(problems) == 1
    assert "requires sign-in to download attachments" in problems[0]
    assert "PUBLIC_BASE_URL is not set" in problems[0]
    private.private_attachments = False
    assert zd.check() == []


def test_forged_altered_and_expired_links_are_json_404_and_410(
    pzd: ZendeskHelpdesk, private: FakeZendesk, ticketed: Conversation, web: FlaskClient
) -> None:
    attach(private, ticketed)
    good = path(sent(pzd, ticketed)[1].payload["fileUrl"])
    aid, expires, sig = good.removeprefix("/files/").split(".")
    other = Settings.from_env(
        {"BRIDGE_SECRET": "another-secret-9876543210", "PUBLIC_BASE_URL": BASE}
    )
    forged = path(files.link(other, int(aid), now=time.time(), ttl=3600))
    for bad in (
        "/files/nothing",
        f"/files/{int(aid) + 1}.{expires}.{sig}",
        f"/files/{aid}.{int(expires) + 1}.{sig}",
        f"/files/{aid}.{expires}.{sig[:-1]}A"
        if sig[-1] != "A"
        else f"/files/{aid}.{expires}.{sig[:-1]}B",
        forged,
        "/files/" + "9" * 400,
    ):
        answer = web.get(bad)
        assert answer.status_code == 404 and answer.json == {
            "error": "no such file",
            "details": None,
        }
    expired = path(
        files.link(pzd.settings, int(aid), now=time.time() - 8 * 24 * 3600, ttl=7 * 24 * 3600)
    )
    answer = web.get(expired)
    assert answer.status_code == 410 and "expired" in answer.json["error"]
    assert web.get(good).status_code == 200


def test_links_outlive_a_secret_rotation(
    make_settings: Callable[..., Settings],
    store: Store,
    private: FakeZendesk,
    ticketed: Conversation,
) -> None:
    old = make_settings(PUBLIC_BASE_URL=BASE)
    attach(private, ticketed)
    url = sent(ZendeskHelpdesk(old, store), ticketed)[1].payload["fileUrl"]
    rotated = make_settings(
        PUBLIC_BASE_URL=BASE,
        BRIDGE_SECRET="a-new-secret-0123456789",
        BRIDGE_SECRET_PREVIOUS=old.bridge_secret,
    )
    zd = ZendeskHelpdesk(rotated, store)
    web = create_app(runtime=Runtime(rotated, store, zd, NoTasks())).test_client()
    assert web.get(path(url)).data == b"a"


def test_files_deleted_or_flagged_since_are_gone_and_unknown_ones_not_found(
    pzd: ZendeskHelpdesk, private: FakeZendesk, ticketed: Conversation, web: FlaskClient
) -> None:
    cid = attach(private, ticketed, ("a.txt", "text/plain", b"a"), ("b.txt", "text/plain", b"b"))
    first, second = (path(m.payload["fileUrl"]) for m in sent(pzd, ticketed)[1:])
    private.scan(cid, "malware_found", "a.txt")
    private.attachments[max(private.attachments)]["deleted"] = True
    for gone in (first, second):
        answer = web.get(gone)
        assert (
            answer.status_code == 410 and answer.json["error"] == "this file is no longer available"
        )
    unknown = path(files.link(pzd.settings, 123456789, now=time.time(), ttl=60))
    assert web.get(unknown).status_code == 404


def test_files_over_the_size_cap_are_not_relayed(
    make_settings: Callable[..., Settings],
    store: Store,
    private: FakeZendesk,
    ticketed: Conversation,
) -> None:
    settings = make_settings(PUBLIC_BASE_URL=BASE, ZENDESK_MAX_ATTACHMENT_BYTES="1000")
    zd = ZendeskHelpdesk(settings, store)
    attach(private, ticketed, ("big.bin", "x/y", b"b" * 1001))
    assert sent(zd, ticketed)[1].payload["fileUrl"].startswith(private.url)  # linked instead
    web = create_app(runtime=Runtime(settings, store, zd, NoTasks())).test_client()
    answer = web.get(path(files.link(settings, max(private.attachments), now=time.time(), ttl=60)))
    assert answer.status_code == 502 and answer.json["error"] == "file too large"


def test_a_zendesk_outage_is_a_json_502_and_frees_the_slot(
    pzd: ZendeskHelpdesk, private: FakeZendesk, ticketed: Conversation, web: FlaskClient
) -> None:
    attach(private, ticketed)
    url = path(sent(pzd, ticketed)[1].payload["fileUrl"])
    private.fail_next(files.RELAYS + 1, 503)
    for _ in range(files.RELAYS + 1):
        answer = web.get(url)
        assert answer.status_code == 502 and answer.json["details"] == "try again later"
    assert web.get(url).data == b"a"


def test_the_link_settings_are_checked(make_settings: Callable[..., Any]) -> None:
    from bridge.helpdesks.zendesk.config import config_problems

    env = dict(make_settings().environ)
    env.update(ZENDESK_FILE_LINK_TTL_SECONDS="soon", ZENDESK_FILE_DEADLINE_SECONDS="0")
    assert config_problems(env) == [
        "ZENDESK_FILE_LINK_TTL_SECONDS='soon' is not a whole number",
        "ZENDESK_FILE_DEADLINE_SECONDS='0' must be at least 1 and at most 3600",
    ]


def test_answers_whose_body_is_never_read_free_their_slot(
    pzd: ZendeskHelpdesk, private: FakeZendesk, ticketed: Conversation, web: FlaskClient
) -> None:
    attach(private, ticketed)
    url = path(sent(pzd, ticketed)[1].payload["fileUrl"])
    for _ in range(files.RELAYS + 1):
        answer = web.head(url)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/plain"
        answer.close()
    assert web.get(url).data == b"a"
