"""Chatwoot -> Botpress: replies, files, assignment, resolution; never notes nor echoes."""

from __future__ import annotations

import time

from bridge.helpdesks.base import AgentAssigned, AgentMessage, Author, OutboundMessage, TicketClosed
from bridge.helpdesks.chatwoot import ChatwootHelpdesk
from bridge.helpdesks.chatwoot.state import Cursor
from bridge.storage import Conversation, User
from tests.support.fake_chatwoot import FakeChatwoot


def test_replies_come_back_in_order_and_once(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation
) -> None:
    agent = fake.add_agent("Grace")
    first = cw.changes_since(ticketed, "")
    assert first.items == []  # the history the bridge wrote is not an agent's
    fake.agent_reply(ticketed.ticket_id, agent, "one")
    fake.agent_reply(ticketed.ticket_id, agent, "two")
    got = cw.changes_since(ticketed, first.cursor)
    assert got.items == [
        AgentMessage(str(agent), "text", {"text": "one"}, "Grace"),
        AgentMessage(str(agent), "text", {"text": "two"}, "Grace"),
    ]
    assert cw.changes_since(ticketed, got.cursor).items == []
    assert Cursor.parse(got.cursor).message_id == fake.messages_of(ticketed.ticket_id)[-1]["id"]


def test_notes_activity_and_the_bridges_own_messages_never_come_back(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation, user: User
) -> None:
    agent = fake.add_agent("Grace")
    now = time.time()
    cw.append_messages(
        ticketed,
        Author("end_user", user),
        [OutboundMessage("e1", "text", {"text": "hi"}, now)],
        maybe_applied=False,
    )
    cw.append_messages(
        ticketed,
        Author("bot"),
        [OutboundMessage("e2", "text", {"text": "bot"}, now)],
        maybe_applied=False,
    )
    fake.agent_note(ticketed.ticket_id, agent, "internal only")
    fake.assign(ticketed.ticket_id, agent)  # writes an activity line
    cw.state.redis.delete(cw.state.key("written", ticketed.ticket_id))  # the marker still tells
    items = cw.changes_since(ticketed, "").items
    assert items == [AgentAssigned(str(agent), "Grace")]


def test_agent_files_come_back_as_botpress_files(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation
) -> None:
    agent = fake.add_agent("Grace")
    cur = cw.changes_since(ticketed, "").cursor
    fake.agent_reply(
        ticketed.ticket_id,
        agent,
        "",
        files=[("a.png", "image/png", b"png"), ("r.pdf", "application/pdf", b"pdf")],
    )
    items = cw.changes_since(ticketed, cur).items
    assert [i.message_type for i in items if isinstance(i, AgentMessage)] == ["image", "file"]
    image, doc = items
    assert isinstance(image, AgentMessage) and isinstance(doc, AgentMessage)
    assert image.payload["imageUrl"].startswith(fake.url) and doc.payload["title"] == "r.pdf"


def test_assignment_and_resolution_come_back_once(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation
) -> None:
    agent = fake.add_agent("Grace")
    cur = cw.changes_since(ticketed, "").cursor
    fake.assign(ticketed.ticket_id, agent)
    fake.resolve(ticketed.ticket_id, agent)
    got = cw.changes_since(ticketed, cur)
    assert got.items == [AgentAssigned(str(agent), "Grace"), TicketClosed()]
    assert cw.changes_since(ticketed, got.cursor).items == []


def test_the_bridges_own_resolution_is_not_news(
    cw: ChatwootHelpdesk, ticketed: Conversation
) -> None:
    cur = cw.changes_since(ticketed, "").cursor
    cw.close_ticket(ticketed, event_id="e_close", maybe_applied=False)
    assert cw.changes_since(ticketed, cur).items == []


def test_an_unreadable_cursor_restarts_without_echoes(
    cw: ChatwootHelpdesk, ticketed: Conversation
) -> None:
    assert cw.changes_since(ticketed, "{not json").items == []


def test_polling_is_on_by_default_and_rings_every_open_conversation(cw: ChatwootHelpdesk) -> None:
    assert cw.poll_interval == 30.0
    assert cw.changed_tickets() is None
