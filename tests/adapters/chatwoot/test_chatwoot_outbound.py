"""Botpress -> Chatwoot: contacts, conversations, messages, files, retries, closing."""

from __future__ import annotations

import time
from dataclasses import replace

from bridge.helpdesks.base import Author, OutboundMessage, TicketRequest
from bridge.helpdesks.chatwoot import ChatwootHelpdesk
from bridge.helpdesks.render import BOT_PREFIX
from bridge.storage import Conversation, Store, User
from tests.support.fake_chatwoot import FakeChatwoot
from tests.support.fake_zendesk import FileServer


def msgs(*texts: str) -> list[OutboundMessage]:
    return [OutboundMessage(f"e_{t}", "text", {"text": t}, time.time()) for t in texts]


def test_contact_is_found_by_identifier_and_updated(
    cw: ChatwootHelpdesk, fake: FakeChatwoot
) -> None:
    u = User(
        id="u_Grace987654321",
        name="Grace",
        email="grace@example.com",
        picture_url="https://example.com/g.png",
    )
    first = cw.upsert_user(u, maybe_applied=False)
    again = cw.upsert_user(replace(u, name="Grace Hopper"), maybe_applied=True)
    assert first == again and len(fake.contacts) == 1
    contact = fake.contacts[int(first)]
    assert contact["identifier"] == u.id and contact["name"] == "Grace Hopper"
    assert (
        contact["email"] == "grace@example.com"
        and contact["thumbnail"] == "https://example.com/g.png"
    )
    assert all(r.headers["api_access_token"] == fake.api_token for r in fake.requests)


def test_an_email_held_by_another_contact_is_left_out(
    cw: ChatwootHelpdesk, fake: FakeChatwoot
) -> None:
    a = cw.upsert_user(
        User(id="u_first00000001", name="A", email="same@example.com"), maybe_applied=False
    )
    b = cw.upsert_user(
        User(id="u_second0000002", name="B", email="same@example.com"), maybe_applied=False
    )
    assert a != b
    assert fake.contacts[int(b)]["email"] is None  # never merged into the other contact


def test_conversation_carries_the_bridge_ids_and_the_history_first(
    ticketed: Conversation, fake: FakeChatwoot, user: User
) -> None:
    conv = fake.conversations[int(ticketed.ticket_id)]
    assert conv["custom_attributes"] == {"hitl_bridge_conversation": ticketed.id}
    assert conv["contact_id"] == int(user.helpdesk_id) and conv["inbox_id"] == 3
    first = fake.messages_of(ticketed.ticket_id)[0]
    assert first["content"].startswith("Need help\n\nThe user asked for a human.")


def test_create_retry_finds_the_conversation(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, conv: Conversation, user: User, store: Store
) -> None:
    req = TicketRequest(title="t", description="d", requester=user)
    tid = cw.create_ticket(conv, req, idempotency_key="k", maybe_applied=False)
    store.redis.flushall()  # the bridge's own record lost too: Chatwoot is asked
    again = cw.create_ticket(conv, req, idempotency_key="k", maybe_applied=True)
    assert again == tid and len(fake.conversations) == 1


def test_a_hand_off_without_a_user_is_adopted_by_their_first_message(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, conv: Conversation, user: User
) -> None:
    tid = cw.create_ticket(
        conv, TicketRequest(title="t", description="d"), idempotency_key="k", maybe_applied=False
    )
    conv = replace(conv, ticket_id=tid)
    stand_in = fake.conversations[int(tid)]["contact_id"]
    assert fake.contacts[stand_in]["identifier"].startswith("hitl-bridge-conversation:")
    cw.append_messages(conv, Author("end_user", user), msgs("hello"), maybe_applied=False)
    cw.append_messages(conv, Author("end_user", user), msgs("again"), maybe_applied=True)
    assert fake.conversations[int(tid)]["contact_id"] == int(user.helpdesk_id)
    assert stand_in not in fake.contacts
    incoming = [m for m in fake.messages_of(tid) if m["message_type"] == 0]
    assert [m["content"] for m in incoming] == ["hello", "again"]
    assert {m["sender_id"] for m in incoming} == {int(user.helpdesk_id)}


def test_user_messages_incoming_bot_messages_outgoing_and_marked(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation, user: User
) -> None:
    cw.append_messages(ticketed, Author("end_user", user), msgs("one", "two"), maybe_applied=False)
    cw.append_messages(ticketed, Author("bot"), msgs("three"), maybe_applied=False)
    written = fake.messages_of(ticketed.ticket_id)[1:]
    assert [(m["message_type"], m["content"]) for m in written] == [
        (0, "one\n\ntwo"),  # coalesced: one Chatwoot message
        (1, f"{BOT_PREFIX} three"),
    ]
    assert written[0]["content_attributes"] == {"hitl_bridge": {"events": ["e_one", "e_two"]}}
    assert all(not m["private"] for m in written)


def test_a_retry_adds_only_what_did_not_land(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation, user: User
) -> None:
    batch = msgs("a", "b", "c")
    cw.append_messages(ticketed, Author("end_user", user), batch[:2], maybe_applied=False)
    cw.append_messages(ticketed, Author("end_user", user), batch, maybe_applied=True)
    cw.append_messages(ticketed, Author("end_user", user), batch, maybe_applied=True)
    assert [m["content"] for m in fake.messages_of(ticketed.ticket_id)[1:]] == ["a\n\nb", "c"]


def test_files_go_as_multipart_attachments_and_failures_as_links(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation, user: User, files: FileServer
) -> None:
    url = files.add("/pic.png", b"\x89PNG fake", "image/png")
    missing = f"{files.url}/gone.pdf"
    batch = [
        OutboundMessage("e_p", "image", {"imageUrl": url}, time.time()),
        OutboundMessage("e_f", "file", {"fileUrl": missing, "title": "Invoice"}, time.time()),
    ]
    cw.append_messages(ticketed, Author("end_user", user), batch, maybe_applied=False)
    posted = fake.calls("POST", "/messages")[-1]
    assert posted.headers["content-type"].startswith("multipart/form-data; boundary=")
    m = fake.messages_of(ticketed.ticket_id)[-1]
    assert [a["file_type"] for a in m["attachments"]] == ["image"]
    assert f"(not attached, link: {missing})" in m["content"]
    assert m["content_attributes"] == {"hitl_bridge": {"events": ["e_p", "e_f"]}}


def test_bot_close_resolves_once(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation
) -> None:
    cw.close_ticket(ticketed, event_id="e_close", maybe_applied=False)
    cw.close_ticket(ticketed, event_id="e_close", maybe_applied=True)
    assert fake.conversations[int(ticketed.ticket_id)]["status"] == "resolved"
    assert len(fake.calls("POST", "/toggle_status")) == 1


def test_429_is_transient_with_retry_after(
    cw: ChatwootHelpdesk, fake: FakeChatwoot, ticketed: Conversation
) -> None:
    from bridge.errors import TransientError

    fake.fail_next(1, 429, retry_after=7)
    try:
        cw.changes_since(ticketed, "")
    except TransientError as exc:
        assert exc.status == 429 and exc.retry_after == 7
    else:
        raise AssertionError("a 429 must be transient")


def test_a_wrong_token_is_permanent_and_not_echoed(
    make_settings, store: Store, conv: Conversation
) -> None:  # type: ignore[no-untyped-def]
    from bridge.errors import PermanentError

    desk = ChatwootHelpdesk(make_settings(CHATWOOT_API_TOKEN="wrong-token-abcdef012345"), store)
    try:
        desk.upsert_user(User(id="u_x000000000001", name="X"), maybe_applied=False)
    except PermanentError as exc:
        assert exc.status == 401 and "wrong-token-abcdef012345" not in (exc.response or "")
    else:
        raise AssertionError("a refused token must be permanent")
