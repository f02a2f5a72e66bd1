"""Botpress -> Freshdesk: contacts, tickets, notes, attachments, retries, close."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import PermanentError
from bridge.helpdesks.base import Author, HistoryMessage, OutboundMessage, TicketRequest
from bridge.helpdesks.freshdesk import FreshdeskHelpdesk
from bridge.helpdesks.freshdesk.adapter import CLOSE_NOTE, ENDED_TAG, TAG
from bridge.helpdesks.render import BOT_PREFIX
from bridge.storage import Conversation, User
from tests.support.fake_freshdesk import API_AGENT_ID, FakeFreshdesk
from tests.support.fake_zendesk import FileServer

ADA = User(id="u_ada", name="Ada", email="ada@example.com")


def msg(payload: dict[str, Any], message_type: str = "text", n: int = 1) -> OutboundMessage:
    return OutboundMessage(
        event_id=f"e_{n}", message_type=message_type, payload=payload, at=time.time()
    )


def with_contact(fd: FreshdeskHelpdesk, user: User = ADA) -> User:
    return replace(user, helpdesk_id=fd.upsert_user(user, maybe_applied=False))


# -- contacts -------------------------------------------------------------------------------
def test_contact_is_created_once_by_unique_external_id(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk
) -> None:
    first = fd.upsert_user(ADA, maybe_applied=False)
    again = fd.upsert_user(ADA, maybe_applied=True)
    assert first == again
    assert len(fake.contacts) == 1
    contact = fake.contacts[int(first)]
    assert (contact["unique_external_id"], contact["name"], contact["email"]) == (
        "u_ada",
        "Ada",
        "ada@example.com",
    )
    assert not fake.calls("PUT", "/api/v2/contacts/")  # a retry changes nothing
    renamed = replace(ADA, name="Ada L.", email="other@example.com", helpdesk_id=first)
    assert fd.upsert_user(renamed, maybe_applied=False) == first
    # The name follows Botpress; the e-mail stays (a new one could be anyone's).
    assert (contact["name"], contact["email"]) == ("Ada L.", "ada@example.com")
    assert len(fake.contacts) == 1


def test_an_email_held_by_an_agent_is_left_out(fd: FreshdeskHelpdesk, fake: FakeFreshdesk) -> None:
    fake.add_agent("Boss", "boss@example.com")
    uid = fd.upsert_user(replace(ADA, email="boss@example.com"), maybe_applied=False)
    assert fake.contacts[int(uid)]["email"] is None
    assert int(uid) not in fake.agents


def test_duplicate_contact_answer_names_the_holder(fd: FreshdeskHelpdesk, recorded: Any) -> None:
    from bridge.helpdesks.freshdesk.client import errors

    clash = errors(__import__("json").dumps(recorded("duplicate_contact.json")))
    assert clash[0]["additional_info"] == {"user_id": 43000599999}
    assert fd._existing_contact(clash[0], "u_x") == "43000599999"


# -- tickets --------------------------------------------------------------------------------
def test_ticket_is_a_chat_ticket_tagged_with_the_conversation(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, conv: Conversation
) -> None:
    request = TicketRequest(
        title="Refund",
        description="Wants a refund",
        history=[HistoryMessage("hi", "user", "t1"), HistoryMessage("<b>hello</b>", "bot")],
    )
    tid = fd.create_ticket(conv, request, idempotency_key="e_1", maybe_applied=False)
    t = fake.tickets[int(tid)]
    assert (t["source"], t["status"], t["priority"], t["subject"]) == (7, 2, 1, "Refund")
    assert t["tags"] == [TAG, f"hitl-{conv.id}"]
    # History first, escaped: the bot's "<b>" is text in the agent's view.
    assert "Conversation so far:" in t["description_text"]
    assert "&lt;b&gt;hello&lt;/b&gt;" in t["description"]
    # No end user yet: the placeholder contact requests it.
    assert fake.contacts[t["requester_id"]]["unique_external_id"] == "botpress-hitl-bridge"


def test_a_retried_creation_finds_its_ticket_by_tag(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, conv: Conversation
) -> None:
    request = TicketRequest(title="x", description="y")
    first = fd.create_ticket(conv, request, idempotency_key="e_1", maybe_applied=False)
    again = fd.create_ticket(conv, request, idempotency_key="e_1", maybe_applied=True)
    assert first == again and len(fake.tickets) == 1
    other = replace(conv, id="c_Other")
    assert fd.create_ticket(other, request, idempotency_key="e_2", maybe_applied=True) != first


def test_a_creation_that_landed_unanswered_is_not_duplicated(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, conv: Conversation
) -> None:
    from bridge.errors import TransientError

    fd.client.timeout = 0.5
    fake.stall_for(1.0, hang=1.0, apply=True)
    request = TicketRequest(title="x", description="y")
    with pytest.raises(TransientError) as caught:
        fd.create_ticket(conv, request, idempotency_key="e_1", maybe_applied=False)
    assert caught.value.maybe_applied
    time.sleep(1.1)
    fd.create_ticket(conv, request, idempotency_key="e_1", maybe_applied=True)
    assert len(fake.tickets) == 1


# -- notes ----------------------------------------------------------------------------------
def test_end_user_messages_are_one_incoming_note_by_their_contact(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    ada = with_contact(fd)
    batch = [msg({"text": "Hello"}, n=1), msg({"text": "<i>I need help</i>"}, n=2)]
    fd.append_messages(ticketed, Author("end_user", ada), batch, maybe_applied=False)
    [note] = fake.notes(ticketed.ticket_id)
    assert (note["incoming"], note["private"], note["user_id"]) == (
        True,
        False,
        int(ada.helpdesk_id),
    )
    assert note["body_text"] == "Hello\n\n<i>I need help</i>"
    # The end user now requests the ticket.
    assert fake.tickets[int(ticketed.ticket_id)]["requester_id"] == int(ada.helpdesk_id)


def test_bot_messages_are_private_notes_marked_as_the_bots(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    fd.append_messages(ticketed, Author("bot"), [msg({"text": "One moment"})], maybe_applied=False)
    [note] = fake.notes(ticketed.ticket_id)
    assert note["private"] is True and note["incoming"] is False
    assert note["user_id"] == API_AGENT_ID
    assert note["body_text"] == f"{BOT_PREFIX} One moment"


def test_retried_notes_are_not_duplicated(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    ada = with_contact(fd)
    batch = [msg({"text": "a"}, n=1), msg({"text": "b"}, n=2)]
    fd.append_messages(ticketed, Author("end_user", ada), batch[:1], maybe_applied=False)
    # The retry carries more of the batch: only what is missing is written.
    fd.append_messages(ticketed, Author("end_user", ada), batch, maybe_applied=True)
    fd.append_messages(ticketed, Author("end_user", ada), batch, maybe_applied=True)
    texts = [n["body_text"] for n in fake.notes(ticketed.ticket_id)]
    assert texts == ["a", "b"]
    fd.append_messages(ticketed, Author("bot"), [msg({"text": "ok"})], maybe_applied=False)
    fd.append_messages(ticketed, Author("bot"), [msg({"text": "ok"})], maybe_applied=True)
    assert len(fake.notes(ticketed.ticket_id)) == 3


def test_files_are_attached_and_a_failed_one_is_linked(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, files: FileServer, ticketed: Conversation
) -> None:
    ada = with_contact(fd)
    png = files.add("/pic.png", b"\x89PNG-bytes", "image/png")
    batch = [
        msg({"imageUrl": png}, "image", 1),
        msg({"fileUrl": f"{files.url}/missing.pdf", "title": "Invoice"}, "file", 2),
    ]
    fd.append_messages(ticketed, Author("end_user", ada), batch, maybe_applied=False)
    [note] = fake.notes(ticketed.ticket_id)
    [att] = note["attachments"]
    assert (att["name"], att["content_type"], att["size"]) == ("pic.png", "image/png", 10)
    assert f"(not attached, link: {files.url}/missing.pdf)" in note["body_text"]
    [sent] = fake.calls("POST", f"/api/v2/tickets/{ticketed.ticket_id}/notes")
    assert sent.headers["content-type"].startswith("multipart/form-data")


def test_files_over_the_limit_are_linked(
    make_settings: Any, store: Any, fake: FakeFreshdesk, files: FileServer, ticketed: Conversation
) -> None:
    fd = FreshdeskHelpdesk(make_settings(FRESHDESK_MAX_ATTACHMENT_BYTES="4"), store)
    big = files.add("/big.bin", b"0123456789", "application/octet-stream")
    fd.append_messages(
        ticketed, Author("bot"), [msg({"fileUrl": big}, "file")], maybe_applied=False
    )
    [note] = fake.notes(ticketed.ticket_id)
    assert note["attachments"] == [] and f"link: {big}" in note["body_text"]


# -- close ----------------------------------------------------------------------------------
def test_close_resolves_with_one_private_note(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    fd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    fd.close_ticket(ticketed, event_id="e_9", maybe_applied=True)
    assert fake.tickets[int(ticketed.ticket_id)]["status"] == 4
    notes = fake.notes(ticketed.ticket_id)
    assert [(n["body_text"], n["private"]) for n in notes] == [(CLOSE_NOTE, True)]


def test_a_refused_resolve_leaves_the_ticket_for_an_agent(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    fake.require_on_resolve("cf_reason")
    fd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    fd.close_ticket(ticketed, event_id="e_9", maybe_applied=True)
    t = fake.tickets[int(ticketed.ticket_id)]
    assert t["status"] == 2 and t["tags"] == [TAG, f"hitl-{ticketed.id}", ENDED_TAG]
    [note] = fake.notes(ticketed.ticket_id)
    assert note["private"] and "cf_reason: It should be a/an String" in note["body_text"]


def test_other_refusals_are_permanent(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, ticketed: Conversation
) -> None:
    with pytest.raises(PermanentError):
        fd.append_messages(
            replace(ticketed, ticket_id="999999"),
            Author("bot"),
            [msg({"text": "x"})],
            maybe_applied=False,
        )


def test_a_known_requester_requests_the_ticket_from_the_start(
    fd: FreshdeskHelpdesk, fake: FakeFreshdesk, conv: Conversation
) -> None:
    """The core records a requester named at creation and never sets it again: the ticket
    names them at once, their contact made first if the bridge has none yet."""
    request = TicketRequest(title="x", description="y", requester=ADA)
    tid = fd.create_ticket(conv, request, idempotency_key="e_1", maybe_applied=False)
    requester = fake.contacts[fake.tickets[int(tid)]["requester_id"]]
    assert requester["unique_external_id"] == "u_ada"
