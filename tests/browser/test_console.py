"""The inbox console in Chromium, through real processes: redis-server, a Celery worker and
gunicorn with the inbox helpdesk, a local fake Botpress as the webhook.

An agent signs in; a conversation created through the Botpress ingress shows up live; the
agent assigns it, replies, adds a note, sends a picture and closes it; the fake Botpress
receives exactly `agent-assigned`, `message-from-agent` (text, then image) and `stop-hitl`,
in that order, and never the note. A second test drives the playground and the console
side by side. `UPDATE_SCREENSHOTS=1` writes docs/console.png.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
import requests

from bridge.helpdesks.inbox.agents import Agents
from bridge.storage import Store
from tests.browser.conftest import running_bridge
from tests.conftest import SECRET
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long console password"


def png(width: int = 160, height: int = 96) -> bytes:
    """A real picture (a blue rectangle), so the browser draws it."""
    row = b"\x00" + b"\x2a\x6f\xd6" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


PNG = png()


@dataclass
class Bridge:
    base: str
    redis_url: str

    def botpress(self, route: str, body: dict[str, Any]) -> Any:
        r = requests.post(f"{self.base}/botpress/{SECRET}/{route}", json=body, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def hand_off(self, name: str, title: str, text: str) -> tuple[str, str]:
        """What Botpress does when its bot hands `name` over: (user id, conversation id)."""
        uid = self.botpress(
            "createRemoteUser",
            {"type": "createRemoteUser", "payload": {"role": "end-user", "name": name}},
        )["id"]
        cid = self.botpress(
            "createRemoteConversation",
            {
                "type": "createRemoteConversation",
                "payload": {"title": title, "description": "Handed over by the bot"},
            },
        )["id"]
        self.botpress(
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": cid,
                "remoteUserId": uid,
                "payload": {"text": text},
            },
        )
        return uid, cid


def add_agents(redis_url: str) -> None:
    store = Store(redis.Redis.from_url(redis_url, decode_responses=True))
    for name in ("alice", "bob"):
        Agents(store).add(name, PASSWORD)


@pytest.fixture(scope="module")
def botpress() -> Iterator[FakeBotpress]:
    fake = FakeBotpress()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def bridge(
    redis_server: RedisServer, botpress: FakeBotpress, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridge]:
    logs = tmp_path_factory.mktemp("console")
    with running_bridge(redis_server, logs, 2, BOTPRESS_WEBHOOK_URL=botpress.webhook_url) as up:
        add_agents(up[1])
        yield Bridge(*up)


def sign_in(page: Page, base: str, name: str = "alice") -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/console/")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    page.get_by_label("Agent").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("button", name=f"Sign out {name}")).to_be_visible()


def test_an_agent_works_a_conversation_from_the_console(
    page: Page, bridge: Bridge, botpress: FakeBotpress, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    sign_in(page, bridge.base)
    page.evaluate("window.stillTheSamePage = true")
    uid, cid = bridge.hand_off("Ada", "Broken parcel", "My parcel arrived broken.")
    row = page.locator(f"[data-conversation-link='{cid}']")
    # Live: no reload (the marker survives), within the test's patience.
    expect(row).to_contain_text("Broken parcel", timeout=5_000)
    expect(row).to_contain_text("My parcel arrived broken.")
    expect(row).to_contain_text("waiting")
    expect(page.locator("#nav [data-view-link='unassigned'] .unread")).to_have_text("1 new")
    assert page.evaluate("window.stillTheSamePage") is True

    row.click()
    expect(page.locator("#conversation-title")).to_have_text("Broken parcel")
    page.get_by_role("button", name="Assign to me").click()
    expect(page.locator(".conv-head .status")).to_contain_text("assigned to you")

    reply = page.get_by_label("Reply to the user")
    reply.type("Hello Ada,")
    reply.press("Shift+Enter")
    reply.type("sorry about that!")
    reply.press("Enter")
    expect(page.locator(".timeline .by-agent").last).to_contain_text("sorry about that!")

    page.get_by_label("Internal note").fill("Second broken parcel this month")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".timeline .note")).to_contain_text("Second broken parcel this month")

    picture = tmp_path / "label.png"
    picture.write_bytes(PNG)
    page.get_by_label("Attach a file").set_input_files(str(picture))
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".timeline .by-agent img")).to_have_count(1)

    # A user message arriving while the conversation is open shows without a reload.
    page.evaluate("window.stillTheSamePage = true")
    bridge.botpress(
        "botSendsMessage",
        {
            "type": "botSendsMessage",
            "remoteConversationId": cid,
            "remoteUserId": uid,
            "payload": {"text": "Thanks, waiting for the refund."},
        },
    )
    expect(page.locator(".timeline .by-end_user").last).to_contain_text("waiting for the refund")
    assert page.evaluate("window.stillTheSamePage") is True
    # Through the live process's event stream (another origin: CORS, the cookie sent), not
    # by polling the web.
    assert any("/console/events?" in u for u in asked), asked
    assert not any(u.split("?")[0].endswith(("/console/live", "/console/parts")) for u in asked)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(ROOT / "docs" / "console.png"))

    page.get_by_role("button", name="Close conversation").click()
    expect(page.locator(".conv-head .status")).to_contain_text("Closed")

    calls = wait_until(
        lambda: (got := botpress.by_conversation().get(cid, [])) and len(got) >= 4 and got,
        what="four webhook calls",
    )
    agent = "agent:inbox:alice"
    assert [(c["route"], c["body"]) for c in calls[:3]] == [
        ("agent-assigned", {"remoteConversationId": cid, "remoteUserId": agent}),
        (
            "message-from-agent",
            {
                "remoteConversationId": cid,
                "remoteUserId": agent,
                "messageType": "text",
                "payload": {"text": "Hello Ada,\nsorry about that!"},
            },
        ),
        (
            "message-from-agent",
            {
                "remoteConversationId": cid,
                "remoteUserId": agent,
                "messageType": "image",
                "payload": {
                    "imageUrl": calls[2]["body"]["payload"]["imageUrl"],
                    "title": "label.png",
                },
            },
        ),
    ]
    assert (calls[3]["route"], calls[3]["body"]) == ("stop-hitl", {"remoteConversationId": cid})
    assert len(calls) == 4  # never the note
    image_url = calls[2]["body"]["payload"]["imageUrl"]
    assert image_url.startswith(f"{bridge.base}/inbox/files/")
    got = requests.get(image_url, timeout=5)
    assert (
        got.status_code == 200 and got.content == PNG and got.headers["Content-Type"] == "image/png"
    )
    assert "Second broken parcel" not in str(botpress.received)


@pytest.mark.viewport(360, 740)
def test_the_console_is_usable_on_a_phone_with_the_keyboard(page: Page, bridge: Bridge) -> None:
    from playwright.sync_api import expect

    _, cid = bridge.hand_off("Grace", "Wrong size", "I ordered an M.")
    page.goto(f"{bridge.base}/console/login")
    expect(page.get_by_label("Agent")).to_be_focused()
    page.keyboard.type("bob")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    row = page.locator(f"[data-conversation-link='{cid}']")
    row.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#conversation-title")).to_have_text("Wrong size")
    expect(page.get_by_label("Reply to the user")).to_be_focused()
    page.keyboard.type("Let me check that for you.")
    page.keyboard.press("Enter")
    expect(page.locator(".timeline .by-agent").last).to_contain_text("Let me check")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # The queue is one tap away.
    page.get_by_role("link", name="← Back to the queue").click()
    expect(page.locator(f"[data-conversation-link='{cid}']")).to_be_visible()


def test_the_playground_and_the_console_side_by_side(
    browser: Any, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import expect

    logs = tmp_path_factory.mktemp("side-by-side")
    with running_bridge(redis_server, logs, 3, PLAYGROUND="1") as up:
        add_agents(up[1])
        bridge = Bridge(*up)
        user = browser.new_context(viewport={"width": 1280, "height": 800})
        agent = browser.new_context(viewport={"width": 1280, "height": 800})
        chat, console = user.new_page(), agent.new_page()
        sign_in(console, bridge.base)
        chat.goto(f"{bridge.base}/playground/")
        chat.get_by_role("button", name="Start hand-off").click()
        expect(chat.locator("#bridge-id")).to_have_text(re.compile(r"^c_"))
        box = chat.get_by_label("Message")
        box.type("Is anybody there?")
        box.press("Enter")
        cid = chat.locator("#bridge-id").inner_text()
        row = console.locator(f"[data-conversation-link='{cid}']")
        expect(row).to_contain_text("Is anybody there?")
        row.click()
        console.get_by_role("button", name="Assign to me").click()
        reply = console.get_by_label("Reply to the user")
        reply.type("Yes, I am here.")
        reply.press("Enter")
        expect(chat.locator("#log")).to_contain_text("Agent alice joined the conversation.")
        expect(chat.locator(".msg-agent").last).to_contain_text("Yes, I am here.")
        box.type("Great, thanks!")
        box.press("Enter")
        expect(console.locator(".timeline .by-end_user").last).to_contain_text("Great, thanks!")
        console.get_by_role("button", name="Close conversation").click()
        expect(chat.locator("#chat-state")).to_have_text("The agent ended the hand-off.")
        user.close()
        agent.close()


def test_without_the_live_process_the_console_updates_by_polling(
    page: Page,
    redis_server: RedisServer,
    botpress: FakeBotpress,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A deployment that routes only `web` (Heroku): /console/events on the console's origin
    is the web's 404, and the page polls instead."""
    from playwright.sync_api import expect

    logs = tmp_path_factory.mktemp("console-polling")
    with running_bridge(
        redis_server, logs, 4, live=False, BOTPRESS_WEBHOOK_URL=botpress.webhook_url
    ) as up:
        add_agents(up[1])
        bridge = Bridge(*up)
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        sign_in(page, bridge.base)
        page.evaluate("window.stillTheSamePage = true")
        _, cid = bridge.hand_off("Grace", "Late delivery", "Where is my order?")
        row = page.locator(f"[data-conversation-link='{cid}']")
        expect(row).to_contain_text("Where is my order?", timeout=5_000)
        assert page.evaluate("window.stillTheSamePage") is True
        assert any(u.split("?")[0].endswith("/console/live") for u in asked)
        assert any(u.split("?")[0].endswith("/console/parts") for u in asked)
        # Leave before the bridge stops (its polling would fail), then drop what the
        # stream's failed attempt logged: that failure is what sent the page to polling.
        page.goto("about:blank")
        errors: list[str] = page.errors  # type: ignore[attr-defined]
        expected = ("Failed to load resource", "ERR_CONNECTION_REFUSED", "/console/events")
        errors[:] = [e for e in errors if not any(x in e for x in expected)]
