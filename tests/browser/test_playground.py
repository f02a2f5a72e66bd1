"""The playground in Chromium, through real processes: redis-server, a Celery worker and
gunicorn with PLAYGROUND=1 and the inbox helpdesk, as `./scripts/dev` runs them.

The end user starts a hand-off and types in the page; an agent answers through the inbox
API; the page shows it live; the end user ends the hand-off and the inbox ticket closes
(closeRemoteTicket resolved by the worker through the playground's stand-in for Botpress's
API). `UPDATE_SCREENSHOTS=1` also writes docs/playground.png (1280x800).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from bridge.config import playground_token
from tests.browser.conftest import running_bridge
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.integration.test_end_to_end import wait_until
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "playground.png"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Stack:
    """The running bridge: its base URL, and the inbox agent API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def ticket(self, cid: str) -> dict[str, Any]:
        r = requests.get(f"{self.base}/inbox/api/conversations/{cid}", headers=ADMIN, timeout=5)
        return dict(r.json()) if r.status_code == 200 else {}

    def agent(self, cid: str, action: str, body: dict[str, Any]) -> None:
        r = requests.post(
            f"{self.base}/inbox/api/conversations/{cid}/{action}",
            json=body,
            headers=ADMIN,
            timeout=5,
        )
        assert r.status_code == 200, r.text

    def webhook(self, route: str, body: dict[str, Any]) -> None:
        """Post to the playground as the workers do (for message types the inbox never sends)."""
        token = playground_token(SECRET)
        r = requests.post(
            f"{self.base}/playground/botpress/{token}/webhook/{route}", json=body, timeout=5
        )
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("playground")
    with running_bridge(redis_server, logs, 1, PLAYGROUND="1") as (base, _):
        yield Stack(base)


def test_a_hand_off_goes_round_in_the_browser(page: Page, stack: Stack) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.base}/playground/")
    expect(page.get_by_label("Your name")).to_have_value("Ada Lovelace")
    page.get_by_role("button", name="Start hand-off").click()
    expect(page.locator("#chat")).to_be_visible()
    cid = page.locator("#bridge-id").inner_text()
    bpcid = page.locator("#bp-id").inner_text()
    assert cid.startswith("c_") and bpcid.startswith("pg_conv_")
    assert f"c={bpcid}" in page.url  # a reload resumes it
    expect(page.locator("#log")).to_contain_text("Let me connect you with a human agent")

    # Enter sends, Shift+Enter starts a new line.
    box = page.get_by_label("Message")
    expect(box).to_be_focused()
    box.type("My parcel arrived broken.")
    box.press("Shift+Enter")
    box.type("Can I get a refund?")
    box.press("Enter")
    expect(box).to_have_value("")
    expect(page.locator(".msg-user").last).to_contain_text("Can I get a refund?")
    page.get_by_role("button", name="an image").click()
    expect(page.locator(".msg-bot img")).to_have_count(1)

    def arrived() -> Any:
        texts = [m.get("text", "") for m in stack.ticket(cid).get("messages", [])]
        return "My parcel arrived broken.\nCan I get a refund?" in texts and texts

    texts = wait_until(arrived, what="the typed message in the inbox")
    assert any("sample.svg" in t for t in texts), texts  # the bot's image, after it

    stack.agent(cid, "assign", {"agent": "alice"})
    stack.agent(cid, "messages", {"agent": "alice", "text": "Hello Ada, refund on its way."})
    log = page.locator("#log")
    expect(log).to_contain_text("Agent alice joined the conversation.", timeout=30_000)
    expect(page.locator(".msg-agent").last).to_contain_text("Hello Ada, refund on its way.")
    expect(page.locator("#chat-state")).to_have_text("Agent alice joined the conversation.")
    # Screen readers hear what arrives.
    expect(page.locator("#announce")).to_contain_text("alice: Hello Ada, refund on its way.")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT))

    # Other types the webhook can carry: an image inline, a file as a link.
    picture = f"{stack.base}/playground/static/sample.svg"
    for message_type, payload in (
        ("image", {"imageUrl": picture}),
        ("file", {"fileUrl": f"{stack.base}/playground/static/sample.svg", "title": "label.svg"}),
    ):
        stack.webhook(
            "message-from-agent",
            {
                "remoteConversationId": cid,
                "remoteUserId": "agent:inbox:alice",
                "messageType": message_type,
                "payload": payload,
            },
        )
    image = page.locator(".msg-agent img")
    expect(image).to_have_attribute("src", picture)
    page.wait_for_function("document.querySelector('.msg-agent img').naturalWidth > 0")
    expect(page.get_by_role("link", name="label.svg")).to_have_attribute("href", picture)

    page.get_by_role("button", name="End hand-off").click()
    expect(log).to_contain_text("You ended the hand-off.")
    expect(page.get_by_role("button", name="Start another hand-off")).to_be_focused()
    expect(box).to_be_disabled()
    wait_until(
        lambda: stack.ticket(cid).get("status") == "closed",
        what="the inbox ticket closed through the API stand-in",
    )


@pytest.mark.viewport(360, 740)
def test_a_phone_sized_keyboard_only_hand_off(page: Page, stack: Stack) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.base}/playground/")
    page.get_by_label("Description").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Start hand-off")).to_be_focused()
    page.keyboard.press("Enter")
    box = page.get_by_label("Message")
    expect(box).to_be_focused()
    page.keyboard.type("Typed with the keyboard only.")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-user").last).to_contain_text("Typed with the keyboard only.")
    cid = page.locator("#bridge-id").inner_text()
    stack.webhook("stop-hitl", {"remoteConversationId": cid})
    expect(page.locator("#chat-state")).to_have_text("The agent ended the hand-off.")
    expect(page.locator("#announce")).to_contain_text("The agent ended the hand-off.")
    expect(box).to_be_disabled()
    # Nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # Reloading resumes the conversation from the address.
    page.reload()
    expect(page.locator("#log")).to_contain_text("Typed with the keyboard only.")
    expect(page.locator("#log")).to_contain_text("The agent ended the hand-off.")
