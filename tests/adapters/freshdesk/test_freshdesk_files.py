"""Agents' files: Freshdesk's pre-signed URLs expire, so with PUBLIC_BASE_URL the bridge
sends its own signed links and relays the file from a freshly signed URL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.config import Settings
from bridge.helpdesks.base import AgentMessage
from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.helpdesks.freshdesk.files import link
from bridge.storage import Conversation, Store
from tests.support.fake_freshdesk import FakeFreshdesk

PUBLIC = "https://bridge.example.com"


@pytest.fixture
def public(make_settings: Callable[..., Settings], store: Store) -> FreshdeskHelpdesk:
    return FreshdeskHelpdesk(make_settings(PUBLIC_BASE_URL=PUBLIC), store)


def web(desk: FreshdeskHelpdesk, store: Store) -> Any:
    from bridge.app import create_app
    from bridge.runtime import Runtime

    class Rung:
        def drain(self, stream: str, countdown: float) -> None:
            pass

        def pump(self, pump_id: str) -> None:
            pass

    return create_app(runtime=Runtime(desk.settings, store, desk, Rung())).test_client()


def reply_with_files(fake: FakeFreshdesk, tid: str) -> int:
    bob = fake.add_agent("Bob")
    fake.agent_reply(
        tid,
        bob,
        "Here",
        attachments=[
            {"name": "a.png", "content_type": "image/png", "data": b"png-bytes"},
            {"name": "évier.pdf", "content_type": "application/pdf", "data": b"pdf-bytes"},
        ],
    )
    return bob


def test_links_outlive_freshdesks_urls(
    public: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation, store: Store
) -> None:
    # Freshdesk's own URL dies quickly: its expiry is in whole seconds, so a URL signed
    # with 2 s works for 1 to 2 s (one signed with 1 s could be dead as it is handed out).
    fake.url_ttl = 2
    reply_with_files(fake, ticketed.ticket_id)
    _, image, file = public.changes_since(ticketed, "").items
    assert isinstance(image, AgentMessage) and isinstance(file, AgentMessage)
    url = str(image.payload["imageUrl"])
    assert url.startswith(f"{PUBLIC}/files/{ticketed.ticket_id}.")
    time.sleep(2.2)
    client = web(public, store)
    got = client.get(url.removeprefix(PUBLIC))
    assert got.status_code == 200 and got.data == b"png-bytes"
    assert got.headers["Content-Disposition"].startswith("inline;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    doc = client.get(str(file.payload["fileUrl"]).removeprefix(PUBLIC))
    assert doc.status_code == 200 and doc.data == b"pdf-bytes"
    assert doc.headers["Content-Disposition"].startswith("attachment;")
    # The relay never sends the API key to the storage host.
    s3 = [r for r in fake.requests if r.path.startswith("/s3/")]
    assert s3 and all("authorization" not in r.headers for r in s3)


def test_forged_expired_and_private_links_are_refused(
    public: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation, store: Store
) -> None:
    client = web(public, store)
    tid = int(ticketed.ticket_id)
    bob = fake.add_agent("Bob")
    fake.agent_note(tid, bob, "secret file")
    note = fake.conversations[tid][-1]
    note["attachments"] = [fake._file("secret.txt", "text/plain", b"internal")]
    private_link = link(public.settings, tid, note["attachments"][0]["id"], now=time.time(), ttl=60)
    assert client.get(private_link.removeprefix(PUBLIC)).status_code == 404
    expired = link(public.settings, tid, 1, now=time.time() - 120, ttl=60)
    assert client.get(expired.removeprefix(PUBLIC)).status_code == 410
    forged = private_link[:-3] + ("AAA" if not private_link.endswith("AAA") else "BBB")
    assert client.get(forged.removeprefix(PUBLIC)).status_code == 404
    assert client.get("/files/not-a-token").status_code == 404


def test_without_public_base_url_freshdesks_url_goes(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    reply_with_files(fake, ticketed.ticket_id)
    _, image, _ = fd.changes_since(ticketed, "").items
    assert isinstance(image, AgentMessage)
    assert str(image.payload["imageUrl"]).startswith(f"{fake.url}/s3/")
