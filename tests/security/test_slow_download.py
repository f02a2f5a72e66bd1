"""Issue 14 §1: slow files never starve deliveries.

A host serves its image one byte every 2 s. More conversations send an image from it
than the worker has threads, then a text arrives in another conversation: the text must
reach Zendesk within the download deadline, the images end up as their links (never dead
letters), and nothing stays blocked. Real redis-server, a real Celery worker
(HELPDESK=zendesk) and the fake Zendesk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import Settings
from bridge.storage import Store
from tests.conftest import BridgeClient
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_zendesk import FakeZendesk
from tests.support.file_hosts import FileHost, Route
from tests.support.processes import Process

pytestmark = pytest.mark.integration

DEADLINE = 6.0  # FETCH_DEADLINE_SECONDS
THREADS = 4  # WORKER_CONCURRENCY: pumps, and downloads in flight a quarter of it (1)
IMAGES = 2 * THREADS  # without the bound, every thread would sit on a slow file twice over
SLOW = b"\x89PNG" + b"0" * 60  # 64 bytes at one every 2 s: two minutes


@pytest.fixture
def slow_host() -> Iterator[FileHost]:
    server = FileHost()
    server.add("/slow.png", Route(SLOW, "image/png", every=2.0))
    yield server.start()
    server.stop()


def ticket_of(zendesk: FakeZendesk, cid: str) -> Any:
    return next((t for t in zendesk.tickets.values() if t.get("external_id") == cid), None)


def bodies(zendesk: FakeZendesk, cid: str) -> list[str]:
    t = ticket_of(zendesk, cid)
    return [str(c["body"]) for c in zendesk.comments(t["id"])] if t else []


def test_slow_downloads_never_hold_up_a_text_in_another_conversation(
    bridge_env: dict[str, str],
    zendesk: FakeZendesk,
    slow_host: FileHost,
    workers: Callable[..., Process],
) -> None:
    env = {
        **bridge_env,
        "HELPDESK": "zendesk",
        "ZENDESK_URL": zendesk.url,
        "ZENDESK_EMAIL": zendesk.email,
        "ZENDESK_API_TOKEN": zendesk.api_token,
        "ZENDESK_POLL_INTERVAL": "0",
        "ZENDESK_RATE_LIMIT": "100000",  # the fake enforces none
        "WORKER_CONCURRENCY": str(THREADS),
        "FETCH_DEADLINE_SECONDS": str(DEADLINE),
        "FETCH_ALLOW_HOSTS": slow_host.netloc,
    }
    bridge = BridgeClient(create_app(Settings.from_env(env)).test_client())
    worker = workers(**env)

    # Conversations already at their tickets, as most are: one only ever gets texts.
    ada, chat = bridge.user("Ada"), bridge.conversation("Just text")
    bridge.say(chat, ada, {"text": "Hello?"})
    others = [(bridge.user(f"User {i}"), bridge.conversation(f"Image {i}")) for i in range(IMAGES)]
    for uid, cid in others:
        bridge.say(cid, uid, {"text": "Here is a photo"})
    wait_until(
        lambda: all(bodies(zendesk, cid)[1:] for _, cid in [(ada, chat), *others]),
        what="every conversation at its ticket",
    )

    # Then a burst: an image in each of them, and a text queued behind all of them.
    # Without the bound every thread would wait out a slow file, twice, before the text.
    sent = time.monotonic()
    images: list[tuple[str, str]] = []
    for i, (uid, cid) in enumerate(others):
        url = f"{slow_host.url}/slow.png?n={i}"
        bridge.say(cid, uid, {"imageUrl": url, "title": f"photo{i}.png"})
        images.append((cid, url))
    t0 = time.monotonic()
    bridge.say(chat, ada, {"text": "Is anyone there?"})
    wait_until(
        lambda: "Is anyone there?" in bodies(zendesk, chat), timeout=60, what="the second text"
    )
    latency = time.monotonic() - t0

    def linked() -> bool:
        return all(
            f"🖼️ photo{i}.png (not attached, link: {url})" in bodies(zendesk, cid)
            for i, (cid, url) in enumerate(images)
        )

    wait_until(linked, timeout=60, what="every slow image as its link")
    all_linked = time.monotonic() - sent
    in_flight = max_in_flight(slow_host)
    print(
        f"\nslow-download figures: text latency {latency:.2f} s (deadline {DEADLINE:g} s), "
        f"{IMAGES} slow images all linked {all_linked:.2f} s after they were sent, "
        f"at most {in_flight} download(s) in flight with {THREADS} threads"
    )
    assert latency < DEADLINE, worker.output()[-3000:]
    # Each download stopped at the deadline, or gave up waiting a second for a free slot.
    assert all_linked < 2 * DEADLINE + 3
    assert slow_host.requested("/slow.png") and in_flight == 1  # a quarter of 4 threads
    assert zendesk.calls("POST", "/api/v2/uploads") == []
    assert Store.from_settings(Settings.from_env(env)).count_dead_letters() == 0


def max_in_flight(host: FileHost) -> int:
    """The most requests of the slow file whose downloads overlapped, assuming each
    lasted at most the deadline (the fetcher hangs up then)."""
    starts = sorted(s.at for s in host.seen if s.path.startswith("/slow.png"))
    return max(sum(1 for t in starts if s <= t < s + DEADLINE - 0.5) for s in starts)
