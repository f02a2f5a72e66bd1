"""Freshdesk -> Botpress: replies, assignment, resolution, and what is never sent."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import requests

from bridge.helpdesks.base import AgentAssigned, AgentMessage, Author, OutboundMessage, TicketClosed
from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.helpdesks.freshdesk.adapter import _agent_messages
from bridge.storage import Conversation, Store, User
from tests.support.fake_freshdesk import API_AGENT_ID, FakeFreshdesk

ADA = User(id="u_ada", name="Ada")


def msg(text: str) -> OutboundMessage:
    return OutboundMessage(
        event_id="e_1", message_type="text", payload={"text": text}, at=time.time()
    )


def read(fd: FreshdeskHelpdesk, conv: Conversation, cursor: str = "") -> tuple[list[Any], str]:
    got = fd.changes_since(conv, cursor)
    return list(got.items), got.cursor


def test_public_replies_come_back_once_in_order(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    bob = fake.add_agent("Bob")
    fake.agent_reply(ticketed.ticket_id, bob, "Hello")
    fake.agent_reply(ticketed.ticket_id, bob, "How can I help?")
    items, cursor = read(fd, ticketed)
    assert items == [
        AgentMessage(str(bob), "text", {"text": "Hello"}, "Bob"),
        AgentMessage(str(bob), "text", {"text": "How can I help?"}, "Bob"),
    ]
    assert read(fd, ticketed, cursor)[0] == []
    fake.agent_reply(ticketed.ticket_id, bob, "Still there?")
    assert [i.payload["text"] for i in read(fd, ticketed, cursor)[0]] == ["Still there?"]


def test_private_notes_and_the_bridges_own_entries_never_come_back(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation, store: Store
) -> None:
    bob = fake.add_agent("Bob")
    ada = replace(ADA, helpdesk_id=fd.upsert_user(ADA, maybe_applied=False))
    fd.append_messages(ticketed, Author("end_user", ada), [msg("hi")], maybe_applied=False)
    fd.append_messages(ticketed, Author("bot"), [msg("bot says")], maybe_applied=False)
    fake.agent_note(ticketed.ticket_id, bob, "internal only")
    # A note of the bridge's whose answer was lost (its id never remembered).
    store.redis.delete(fd.state.key("written", ticketed.ticket_id))
    items, _ = read(fd, ticketed)
    assert items == []
    # The API key's own agent may answer too: a reply (not a note) is an agent's.
    fake.agent_reply(ticketed.ticket_id, API_AGENT_ID, "me, answering")
    assert [i.payload["text"] for i in read(fd, ticketed)[0]] == ["me, answering"]


def test_public_notes_by_agents_are_sent(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    bob = fake.add_agent("Bob")
    fake.agent_note(ticketed.ticket_id, bob, "visible to the customer", private=False)
    assert [i.payload["text"] for i in read(fd, ticketed)[0]] == ["visible to the customer"]


def test_assignment_and_resolution(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    bob = fake.add_agent("Bob")
    fake.assign(ticketed.ticket_id, bob)
    items, cursor = read(fd, ticketed)
    assert items == [AgentAssigned(str(bob), "Bob")]
    assert read(fd, ticketed, cursor)[0] == []
    fake.resolve(ticketed.ticket_id)
    items, cursor = read(fd, ticketed, cursor)
    assert items == [TicketClosed()]
    assert read(fd, ticketed, cursor)[0] == []


def test_the_bridges_own_resolution_is_no_news(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    fd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    assert read(fd, ticketed)[0] == []


def test_agent_files_come_back_as_image_and_file_messages(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    bob = fake.add_agent("Bob")
    fake.agent_reply(
        ticketed.ticket_id,
        bob,
        "Here",
        attachments=[
            {"name": "a.png", "content_type": "image/png", "data": b"png"},
            {"name": "b.pdf", "content_type": "application/pdf", "data": b"pdf"},
        ],
    )
    text, image, file = read(fd, ticketed)[0]
    assert text.payload == {"text": "Here"}
    assert (image.message_type, file.message_type) == ("image", "file")
    assert file.payload["title"] == "b.pdf"
    # The pre-signed URL works (for a while: docs/freshdesk.md says how long).
    assert requests.get(image.payload["imageUrl"], timeout=5).content == b"png"


def test_a_recorded_reply(recorded: Any) -> None:
    entry = recorded("conversation_reply.json")
    text, image = _agent_messages(entry, "43000512345", "Bob")
    assert text.payload == {"text": "Hello Ada, I can help with the refund."}
    assert image.payload["imageUrl"].startswith("https://s3.amazonaws.com/")


def test_the_cursor_skips_read_pages(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    bob = fake.add_agent("Bob")
    for i in range(105):
        fake.agent_note(ticketed.ticket_id, bob, f"n{i}")
    _, cursor = read(fd, ticketed)
    fake.agent_reply(ticketed.ticket_id, bob, "new")
    before = len(fake.calls("GET", f"/api/v2/tickets/{ticketed.ticket_id}/conversations"))
    assert [i.payload["text"] for i in read(fd, ticketed, cursor)[0]] == ["new"]
    pages = fake.calls("GET", f"/api/v2/tickets/{ticketed.ticket_id}/conversations")[before:]
    assert [r.query["page"] for r in pages] == ["2"]


def test_malformed_cursor_restarts_without_echoes(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    fd.append_messages(ticketed, Author("bot"), [msg("x")], maybe_applied=False)
    assert read(fd, ticketed, "{not json")[0] == []
