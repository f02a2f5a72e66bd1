"""Botpress -> Zendesk: users, tickets, comments, attachments, close, errors."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import PermanentError, TransientError
from bridge.helpdesks.base import Author, HistoryMessage, OutboundMessage, TicketRequest
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.adapter import CLOSE_NOTE, ENDED_TAG, TAG
from bridge.storage import Conversation, Store, User
from tests.support.fake_zendesk import API_USER_ID, FakeZendesk, FileServer

ALICE = User(id="u_alice", name="Alice", email="alice@example.com")


def msg(payload: dict[str, Any], message_type: str = "text", n: int = 1) -> OutboundMessage:
    return OutboundMessage(
        event_id=f"e_{n}", message_type=message_type, payload=payload, at=time.time()
    )


def user_with_id(zd: ZendeskHelpdesk, user: User = ALICE) -> User:
    return replace(user, helpdesk_id=zd.upsert_user(user, maybe_applied=False))


# -- users --------------------------------------------------------------------------------
def test_upsert_user_creates_then_updates_the_same_end_user(
    zd: ZendeskHelpdesk, fake: FakeZendesk
) -> None:
    first = zd.upsert_user(ALICE, maybe_applied=False)
    again = zd.upsert_user(replace(ALICE, name="Alice B."), maybe_applied=True)
    assert first == again and first.isdigit()
    user = fake.users[int(first)]
    assert (user["external_id"], user["name"], user["email"], user["role"]) == (
        "u_alice",
        "Alice B.",
        "alice@example.com",
        "end-user",
    )
    first_sent, again_sent = (
        r.json["user"] for r in fake.calls("POST", "/api/v2/users/create_or_update")
    )
    # Nobody held the address: the user is created by external_id alone, then given it.
    assert first_sent == {"external_id": "u_alice", "name": "Alice"}
    [identity] = fake.calls("POST", f"/api/v2/users/{first}/identities")
    assert identity.json == {
        "identity": {"type": "email", "value": "alice@example.com", "skip_verify_email": True}
    }
    # Then it is an end user's own: sent along, which Zendesk matches on.
    assert again_sent == {
        "external_id": "u_alice",
        "name": "Alice B.",
        "email": "alice@example.com",
        "skip_verify_email": True,
    }


def test_upsert_user_without_name_or_email_gets_a_readable_name(
    zd: ZendeskHelpdesk, fake: FakeZendesk
) -> None:
    uid = zd.upsert_user(User(id="u_anon"), maybe_applied=False)
    assert fake.users[int(uid)]["name"] == "Botpress user u_anon"
    assert "email" not in fake.calls("POST", "/api/v2/users/create_or_update")[0].json["user"]


# -- tickets ------------------------------------------------------------------------------
def test_create_ticket_shape(zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation) -> None:
    req = TicketRequest(
        title="Refund please",
        description="User wants a refund",
        history=[
            HistoryMessage("hi", "user", "2024-01-01T10:00:00Z"),
            HistoryMessage("How can I help?", "bot"),
        ],
    )
    tid = zd.create_ticket(conv, req, idempotency_key="e_1", maybe_applied=False)
    call = fake.calls("POST", "/api/v2/tickets")[0]
    assert call.headers["Idempotency-Key"] == "e_1"
    t = fake.tickets[int(tid)]
    assert (t["subject"], t["external_id"], t["tags"]) == ("Refund please", conv.id, [TAG])
    assert t["requester_id"] == API_USER_ID  # requester unknown yet (DESIGN.md §2)
    assert fake.comments(tid)[0]["body"] == (
        "User wants a refund\n\nConversation so far:\n"
        "[2024-01-01T10:00:00Z] user: hi\nbot: How can I help?"
    )
    assert fake.comments(tid)[0]["public"] is True


def test_create_ticket_retry_hits_the_idempotency_key(
    zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation
) -> None:
    req = TicketRequest(title="t", description="d")
    first = zd.create_ticket(conv, req, idempotency_key="e_1", maybe_applied=False)
    second = zd.create_ticket(conv, req, idempotency_key="e_1", maybe_applied=False)
    assert first == second and len(fake.tickets) == 1
    posts = fake.calls("POST", "/api/v2/tickets")
    assert posts[0].body == posts[1].body  # byte-identical retry


def test_create_ticket_with_known_requester(
    zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation
) -> None:
    alice = user_with_id(zd)
    tid = zd.create_ticket(
        conv, TicketRequest("t", "d", requester=alice), idempotency_key="e_1", maybe_applied=False
    )
    assert str(fake.tickets[int(tid)]["requester_id"]) == alice.helpdesk_id


def test_maybe_applied_create_finds_the_ticket_by_external_id(
    zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation
) -> None:
    tid = zd.create_ticket(
        conv, TicketRequest("t", "d"), idempotency_key="e_1", maybe_applied=False
    )
    fake.idempotency.clear()  # the key expired (they live two hours)
    again = zd.create_ticket(
        conv, TicketRequest("t", "d"), idempotency_key="e_1", maybe_applied=True
    )
    assert again == tid and len(fake.tickets) == 1
    assert fake.calls("GET", "/api/v2/tickets")[0].query == {"external_id": conv.id}


def test_same_key_different_body_falls_back_to_the_existing_ticket(
    zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation
) -> None:
    tid = zd.create_ticket(
        conv, TicketRequest("t", "d"), idempotency_key="e_1", maybe_applied=False
    )
    alice = user_with_id(zd)  # the requester became known between two attempts
    again = zd.create_ticket(
        conv, TicketRequest("t", "d", requester=alice), idempotency_key="e_1", maybe_applied=False
    )
    assert again == tid and len(fake.tickets) == 1


def test_same_key_different_body_without_a_ticket_is_permanent(
    zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation
) -> None:
    zd.create_ticket(conv, TicketRequest("t", "d"), idempotency_key="e_1", maybe_applied=False)
    other = replace(conv, id="c_other")
    with pytest.raises(PermanentError) as exc:
        zd.create_ticket(other, TicketRequest("t", "d"), idempotency_key="e_1", maybe_applied=False)
    assert "IdempotentRequestError" in (exc.value.response or "")


# -- comments -----------------------------------------------------------------------------
def test_first_end_user_message_sets_the_requester(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    alice = user_with_id(zd)
    zd.append_messages(
        ticketed, Author("end_user", alice), [msg({"text": "I need a refund"})], maybe_applied=False
    )
    put = fake.calls("PUT", f"/api/v2/tickets/{ticketed.ticket_id}")[0].json["ticket"]
    assert put["requester_id"] == int(alice.helpdesk_id)
    assert put["comment"] == {
        "body": "I need a refund",
        "public": True,
        "author_id": int(alice.helpdesk_id),
    }
    assert fake.tickets[int(ticketed.ticket_id)]["requester_id"] == int(alice.helpdesk_id)
    # Once the conversation knows its requester, later messages leave it alone.
    known = replace(ticketed, requester=alice.id)
    zd.append_messages(
        known, Author("end_user", alice), [msg({"text": "hello?"})], maybe_applied=False
    )
    assert "requester_id" not in fake.calls("PUT", "/api/v2/tickets/")[-1].json["ticket"]


def test_end_user_without_zendesk_id_is_upserted_first(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.append_messages(
        ticketed, Author("end_user", ALICE), [msg({"text": "hi"})], maybe_applied=False
    )
    author = fake.comments(ticketed.ticket_id)[-1]["author_id"]
    assert fake.users[author]["external_id"] == "u_alice"


def test_bot_messages_are_marked_and_authored_by_the_api_user(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.append_messages(
        ticketed, Author("bot"), [msg({"text": "An agent will join soon."})], maybe_applied=False
    )
    c = fake.comments(ticketed.ticket_id)[-1]
    assert (c["author_id"], c["body"], c["public"]) == (
        API_USER_ID,
        "🤖 Bot: An agent will join soon.",
        True,
    )


def test_consecutive_messages_become_one_comment_in_order(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    before = len(fake.requests)
    batch = [msg({"text": f"part {i}"}, n=i) for i in range(1, 6)]
    zd.append_messages(ticketed, Author("bot"), batch, maybe_applied=False)
    puts = [r for r in fake.requests[before:] if r.method == "PUT"]
    assert len(puts) == 1
    assert fake.comments(ticketed.ticket_id)[-1]["body"] == (
        "🤖 Bot: part 1\n\npart 2\n\npart 3\n\npart 4\n\npart 5"
    )


def test_rich_messages_are_rendered(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.append_messages(
        ticketed,
        Author("bot"),
        [
            msg({"text": "Choose", "options": [{"label": "A", "value": "a"}]}, "choice"),
            msg({"latitude": 1.5, "longitude": 2.5, "title": "Shop"}, "location", 2),
        ],
        maybe_applied=False,
    )
    body = fake.comments(ticketed.ticket_id)[-1]["body"]
    assert "Options:\n  1. A (a)" in body and "📍 Shop" in body


def test_maybe_applied_skips_a_comment_that_already_landed(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    alice = user_with_id(zd)
    batch = [msg({"text": "first"}), msg({"text": "second"}, n=2)]
    zd.append_messages(ticketed, Author("end_user", alice), batch, maybe_applied=False)
    n = len(fake.comments(ticketed.ticket_id))
    zd.append_messages(ticketed, Author("end_user", alice), batch, maybe_applied=True)
    assert len(fake.comments(ticketed.ticket_id)) == n
    # A different text, or the same text by someone else, is written.
    zd.append_messages(ticketed, Author("bot"), batch, maybe_applied=True)
    zd.append_messages(
        ticketed, Author("end_user", alice), [msg({"text": "third"})], maybe_applied=True
    )
    assert len(fake.comments(ticketed.ticket_id)) == n + 2


def test_maybe_applied_sends_only_what_a_grown_batch_adds(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    """The first try carried m4 and timed out after Zendesk saved it; m5 arrived before the
    retry, so the retry's batch is m4 + m5: only m5 may be written."""
    alice = user_with_id(zd)
    m4, m5 = msg({"text": "m4"}, n=4), msg({"text": "m5"}, n=5)
    zd.append_messages(ticketed, Author("end_user", alice), [m4], maybe_applied=False)
    zd.append_messages(ticketed, Author("end_user", alice), [m4, m5], maybe_applied=True)
    assert [c["body"] for c in fake.comments(ticketed.ticket_id)][-2:] == ["m4", "m5"]


def test_maybe_applied_never_takes_an_older_identical_text_for_this_one(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    alice = user_with_id(zd)
    zd.append_messages(
        ticketed, Author("end_user", alice), [msg({"text": "yes"})], maybe_applied=False
    )
    later = OutboundMessage("e_9", "text", {"text": "yes"}, at=time.time() + 5)
    zd.append_messages(ticketed, Author("end_user", alice), [later], maybe_applied=True)
    assert [c["body"] for c in fake.comments(ticketed.ticket_id)][-2:] == ["yes", "yes"]


def test_append_before_the_ticket_exists_is_transient(
    zd: ZendeskHelpdesk, conv: Conversation
) -> None:
    with pytest.raises(TransientError):
        zd.append_messages(conv, Author("bot"), [msg({"text": "x"})], maybe_applied=False)


# -- attachments --------------------------------------------------------------------------
def test_images_and_files_are_uploaded_with_their_content_type(
    zd: ZendeskHelpdesk, fake: FakeZendesk, files: FileServer, ticketed: Conversation
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    img = files.add("/pics/cat.png", png, "image/png")
    pdf = files.add("/docs/report", b"%PDF-1.4 ...", "application/pdf")
    alice = user_with_id(zd)
    zd.append_messages(
        ticketed,
        Author("end_user", alice),
        [
            msg({"imageUrl": img}, "image"),
            msg({"fileUrl": pdf, "title": "report.pdf"}, "file", 2),
        ],
        maybe_applied=False,
    )
    uploads = fake.calls("POST", "/api/v2/uploads")
    assert [(u.query["filename"], u.headers["Content-Type"]) for u in uploads] == [
        ("cat.png", "image/png"),
        ("report.pdf", "application/pdf"),
    ]
    assert uploads[0].body == png
    assert "token" not in uploads[0].query and uploads[1].query["token"]  # one shared token
    c = fake.comments(ticketed.ticket_id)[-1]
    assert c["body"] == "🖼️ cat.png\n\n📎 report.pdf"
    assert [a["file_name"] for a in c["attachments"]] == ["cat.png", "report.pdf"]
    assert fake.calls("PUT", "/api/v2/tickets/")[-1].json["ticket"]["comment"]["uploads"] == [
        uploads[0].query.get("token") or uploads[1].query["token"]
    ]


def test_download_failure_falls_back_to_a_link(
    zd: ZendeskHelpdesk, fake: FakeZendesk, files: FileServer, ticketed: Conversation
) -> None:
    missing = f"{files.url}/nope.png"
    ok = files.add("/ok.txt", b"hello", "text/plain")
    zd.append_messages(
        ticketed,
        Author("bot"),
        [
            msg({"imageUrl": missing}, "image"),
            msg({"fileUrl": ok}, "file", 2),
        ],
        maybe_applied=False,
    )
    c = fake.comments(ticketed.ticket_id)[-1]
    assert c["body"] == (f"🤖 Bot: 🖼️ nope.png (not attached, link: {missing})\n\n📎 ok.txt")
    assert [a["file_name"] for a in c["attachments"]] == ["ok.txt"]


def test_files_over_the_size_limit_are_linked(
    make_settings: Any, store: Store, fake: FakeZendesk, files: FileServer, ticketed: Conversation
) -> None:
    zd = ZendeskHelpdesk(make_settings(ZENDESK_MAX_ATTACHMENT_BYTES="10"), store)
    big = files.add("/big.bin", b"x" * 11, "application/octet-stream")
    zd.append_messages(
        ticketed, Author("bot"), [msg({"fileUrl": big}, "file")], maybe_applied=False
    )
    assert not fake.calls("POST", "/api/v2/uploads")
    assert f"link: {big}" in fake.comments(ticketed.ticket_id)[-1]["body"]


def test_maybe_applied_recognises_a_comment_whose_file_fell_back(
    zd: ZendeskHelpdesk, fake: FakeZendesk, files: FileServer, ticketed: Conversation
) -> None:
    url = f"{files.url}/later.png"
    batch = [msg({"imageUrl": url}, "image")]
    zd.append_messages(ticketed, Author("bot"), batch, maybe_applied=False)  # link fallback
    files.add("/later.png", b"png", "image/png")  # now it would download
    n = len(fake.comments(ticketed.ticket_id))
    zd.append_messages(ticketed, Author("bot"), batch, maybe_applied=True)
    assert len(fake.comments(ticketed.ticket_id)) == n


# -- close --------------------------------------------------------------------------------
def test_close_without_assignee_assigns_the_api_user(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    t = fake.tickets[int(ticketed.ticket_id)]
    assert (t["status"], t["assignee_id"]) == ("solved", API_USER_ID)
    note = fake.comments(ticketed.ticket_id)[-1]
    assert (note["body"], note["public"]) == (CLOSE_NOTE, False)


def test_close_keeps_the_agent_assignee(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    agent = fake.add_agent("Sam")
    fake.assign(ticketed.ticket_id, agent)
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    t = fake.tickets[int(ticketed.ticket_id)]
    assert (t["status"], t["assignee_id"]) == ("solved", agent)
    assert "assignee_id" not in fake.calls("PUT", "/api/v2/tickets/")[-1].json["ticket"]


def test_close_twice_writes_once(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=True)
    assert len(fake.calls("PUT", "/api/v2/tickets/")) == 1


def in_a_group_without_the_api_user(fake: FakeZendesk, ticket_id: str) -> int:
    """Puts the ticket in a group the bridge's user is not a member of; returns an agent's id."""
    agent = fake.add_agent("Sam")
    fake.set_group(ticket_id, fake.add_group("Billing", [agent]))
    return agent


def test_close_that_zendesk_refuses_leaves_a_note_and_a_tag_for_an_agent(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, store: Store
) -> None:
    in_a_group_without_the_api_user(fake, ticketed.ticket_id)
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)  # no dead letter
    t = fake.tickets[int(ticketed.ticket_id)]
    assert (t["status"], t["assignee_id"]) == ("open", None)  # left for an agent
    assert t["tags"] == sorted([TAG, ENDED_TAG])  # added, the others kept
    note = fake.comments(ticketed.ticket_id)[-1]
    assert note["public"] is False and note["author_id"] == API_USER_ID
    assert note["body"].startswith("The Botpress bot ended this hand-off")
    assert "(Assignee: is invalid; Assignee: is not a member of the group)" in note["body"]
    solve, leave = (r.json["ticket"] for r in fake.calls("PUT", "/api/v2/tickets/"))
    assert solve["status"] == "solved"
    assert "status" not in leave and "assignee_id" not in leave
    # The note is the bridge's own: never echoed to Botpress, nor the agent's later solve.
    assert int(note["id"]) in zd.state.written(ticketed.ticket_id)
    assert zd.state.closed_by_bridge(ticketed.ticket_id)


@pytest.mark.parametrize("maybe_applied", [True, False])
def test_close_left_for_an_agent_is_never_written_twice(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, maybe_applied: bool
) -> None:
    in_a_group_without_the_api_user(fake, ticketed.ticket_id)
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    notes, puts = len(fake.comments(ticketed.ticket_id)), len(fake.calls("PUT", "/api/"))
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=maybe_applied)
    assert len(fake.comments(ticketed.ticket_id)) == notes
    assert len(fake.calls("PUT", "/api/")) == puts


def test_close_whose_answer_was_lost_writes_one_note(
    make_settings: Any, store: Store, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd = ZendeskHelpdesk(make_settings(HTTP_TIMEOUT_SECONDS="0.5"), store)
    in_a_group_without_the_api_user(fake, ticketed.ticket_id)
    # The solve is refused as usual; the update that follows is applied, its answer lost.
    fake.before_next("PUT", "/api/v2/tickets/", lambda: fake.stall_for(0.3, hang=1.0, apply=True))
    with pytest.raises(TransientError) as exc:
        zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    assert exc.value.maybe_applied
    assert fake.tickets[int(ticketed.ticket_id)]["tags"] == sorted([TAG, ENDED_TAG])
    notes = len(fake.comments(ticketed.ticket_id))
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=True)
    assert len(fake.comments(ticketed.ticket_id)) == notes


def test_close_reads_again_when_an_agent_changed_the_ticket_meanwhile(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    agent = in_a_group_without_the_api_user(fake, ticketed.ticket_id)

    def agent_edits() -> None:  # between the bridge's read and its update
        fake.advance(2)
        fake.agent_comment(ticketed.ticket_id, agent, "Looking into it", public=False)

    fake.before_next("PUT", "/api/v2/tickets/", agent_edits)
    with pytest.raises(TransientError, match="changed") as exc:
        zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    assert exc.value.status == 409
    assert ENDED_TAG not in fake.tickets[int(ticketed.ticket_id)]["tags"]
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    assert fake.tickets[int(ticketed.ticket_id)]["tags"] == sorted([TAG, ENDED_TAG])
    assert [c["body"][:20] for c in fake.comments(ticketed.ticket_id)[-2:]] == [
        "Looking into it",
        "The Botpress bot end",
    ]


def test_close_solves_in_a_group_the_api_user_is_in(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    fake.set_group(ticketed.ticket_id, fake.add_group("Bots", [API_USER_ID]))
    zd.close_ticket(ticketed, event_id="e_9", maybe_applied=False)
    t = fake.tickets[int(ticketed.ticket_id)]
    assert (t["status"], t["assignee_id"], t["tags"]) == ("solved", API_USER_ID, [TAG])


# -- failures -----------------------------------------------------------------------------
def test_429_is_transient_with_retry_after(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    fake.fail_next(1, 429, retry_after=37)
    with pytest.raises(TransientError) as exc:
        zd.append_messages(ticketed, Author("bot"), [msg({"text": "x"})], maybe_applied=False)
    assert exc.value.retry_after == 37
    assert len(fake.comments(ticketed.ticket_id)) == 1  # nothing written
    # Every process now holds its requests until then: the retry is put off, unsent.
    sent = len(fake.requests)
    with pytest.raises(TransientError) as exc:
        zd.append_messages(ticketed, Author("bot"), [msg({"text": "x"})], maybe_applied=False)
    assert exc.value.retry_after is not None and 30 < exc.value.retry_after <= 37
    assert "API budget" in exc.value.reason and len(fake.requests) == sent
    zd.store.redis.delete(zd.store.key("adapter", "zendesk", "budget"))  # 37 s later
    zd.append_messages(ticketed, Author("bot"), [msg({"text": "x"})], maybe_applied=False)
    assert len(fake.comments(ticketed.ticket_id)) == 2


def test_503_is_transient(zd: ZendeskHelpdesk, fake: FakeZendesk, conv: Conversation) -> None:
    fake.fail_next(1, 503)
    with pytest.raises(TransientError) as exc:
        zd.create_ticket(conv, TicketRequest("t", "d"), idempotency_key="e", maybe_applied=False)
    assert exc.value.retry_after is None


def test_timeouts_are_transient(make_settings: Any, store: Store, conv: Conversation) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # accepts, never answers
        settings = make_settings(
            ZENDESK_URL=f"http://127.0.0.1:{s.getsockname()[1]}",
            HTTP_TIMEOUT_SECONDS="0.3",
            LEASE_SECONDS="5",
        )
        with pytest.raises(TransientError, match="timed out"):
            ZendeskHelpdesk(settings, store).upsert_user(ALICE, maybe_applied=False)


def test_other_4xx_is_permanent_with_zendesks_error_body(
    zd: ZendeskHelpdesk, ticketed: Conversation
) -> None:
    ghost = replace(ALICE, helpdesk_id="999999")
    with pytest.raises(PermanentError) as exc:
        zd.append_messages(
            ticketed, Author("end_user", ghost), [msg({"text": "x"})], maybe_applied=False
        )
    assert "HTTP 422" in exc.value.reason
    assert '"RecordInvalid"' in (exc.value.response or "")
    with pytest.raises(PermanentError, match="HTTP 404"):
        zd.close_ticket(replace(ticketed, ticket_id="424242"), event_id="e", maybe_applied=False)


def test_the_bridges_own_user_is_looked_up_once_however_many_ask_at_once(
    zd: ZendeskHelpdesk, fake: FakeZendesk
) -> None:
    """Hundreds of pumps asking at once each spent a request of the API budget on the same
    users/me (174 in the budget benchmark's run)."""
    import threading

    barrier = threading.Barrier(20)
    got: list[str] = []

    def ask() -> None:
        barrier.wait()
        got.append(zd.api_user_id())

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got) == 20
    assert len(fake.calls("GET", "/api/v2/users/me")) == 1
