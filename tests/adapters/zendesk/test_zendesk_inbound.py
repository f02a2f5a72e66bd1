"""Zendesk -> Botpress: changes_since, polling, credentials check."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import PermanentError, TransientError
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    Changes,
    OutboundMessage,
    TicketClosed,
)
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.helpdesks.zendesk.adapter import (
    MALWARE_NOTE,
    SCAN_RETRY,
    SCAN_WAIT,
    _agent_messages,
)
from bridge.storage import Conversation, Store, User
from tests.support.fake_zendesk import API_USER_ID, FakeZendesk

ALICE = User(id="u_alice", name="Alice", email="alice@example.com")


def drain(zd: ZendeskHelpdesk, conv: Conversation, cursor: str = "") -> Changes:
    """changes_since, then checks that the new cursor yields nothing more."""
    changes = zd.changes_since(conv, cursor)
    again = zd.changes_since(conv, changes.cursor)
    assert list(again.items) == [] and again.cursor == changes.cursor
    return changes


def say(zd: ZendeskHelpdesk, conv: Conversation, author: Author, text: str) -> None:
    m = OutboundMessage(event_id="e", message_type="text", payload={"text": text}, at=time.time())
    zd.append_messages(conv, author, [m], maybe_applied=False)


def test_nothing_new_on_a_fresh_ticket(zd: ZendeskHelpdesk, ticketed: Conversation) -> None:
    assert list(drain(zd, ticketed).items) == []


def test_agent_comments_assignment_and_solve(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    fake.assign(ticketed.ticket_id, sam)
    fake.agent_comment(ticketed.ticket_id, sam, "Hi, I'm Sam.")
    fake.agent_comment(ticketed.ticket_id, sam, "Let me check.")
    fake.solve(ticketed.ticket_id)
    changes = drain(zd, ticketed)
    s = str(sam)
    assert list(changes.items) == [
        AgentAssigned(agent_id=s, agent_name="Sam"),
        AgentMessage(s, "text", {"text": "Hi, I'm Sam."}, "Sam"),
        AgentMessage(s, "text", {"text": "Let me check."}, "Sam"),
        TicketClosed(),
    ]


def test_cursor_moves_forward_only(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    fake.agent_comment(ticketed.ticket_id, sam, "one")
    first = drain(zd, ticketed)
    fake.agent_comment(ticketed.ticket_id, sam, "two")
    second = drain(zd, ticketed, first.cursor)
    assert [i.payload["text"] for i in second.items if isinstance(i, AgentMessage)] == ["two"]
    # An old cursor (a duplicate or out-of-order ring) replays exactly what followed it.
    assert zd.changes_since(ticketed, first.cursor).items == second.items
    assert [
        i.payload["text"]
        for i in zd.changes_since(ticketed, "").items
        if isinstance(i, AgentMessage)
    ] == ["one", "two"]


def test_no_echoes_of_what_the_bridge_wrote(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    alice = replace(ALICE, helpdesk_id=zd.upsert_user(ALICE, maybe_applied=False))
    say(zd, ticketed, Author("end_user", alice), "from the user")
    say(zd, ticketed, Author("bot"), "from the bot")
    sam = fake.add_agent("Sam")
    fake.agent_comment(ticketed.ticket_id, sam, "internal only", public=False)
    fake.agent_comment(ticketed.ticket_id, int(alice.helpdesk_id), "user by email")
    fake.agent_comment(ticketed.ticket_id, API_USER_ID, "written as the API user")
    fake.agent_comment(ticketed.ticket_id, sam, "the real reply")
    items = drain(zd, ticketed).items
    assert [i.payload for i in items if isinstance(i, AgentMessage)] == [{"text": "the real reply"}]


def test_comments_of_zendesks_system_user_are_not_sent(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    fake.system_comment(ticketed.ticket_id, "Your request was received (a trigger).")
    fake.agent_comment(ticketed.ticket_id, sam, "the real reply")
    items = drain(zd, ticketed).items
    assert [i.payload for i in items if isinstance(i, AgentMessage)] == [{"text": "the real reply"}]
    assert [c["author_id"] for c in fake.comments(ticketed.ticket_id)][1] == -1


def test_bridge_comments_are_recognised_even_when_the_api_user_is_an_agent(
    zd: ZendeskHelpdesk, store: Store, fake: FakeZendesk, ticketed: Conversation
) -> None:
    # The ledger of comment ids (from update audits) is kept in the adapter's keys.
    say(zd, ticketed, Author("bot"), "hello")
    written = zd.state.written(ticketed.ticket_id)
    assert {c["id"] for c in fake.comments(ticketed.ticket_id)} == written
    assert all(str(k).startswith("t:adapter:zendesk:") for k in store.redis.keys("t:adapter:*"))


def test_attachments_become_image_and_file_messages(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    fake.agent_comment(
        ticketed.ticket_id,
        sam,
        "See attached",
        attachments=[("screen.png", "image/png", b"png"), ("guide.pdf", "application/pdf", b"pdf")],
    )
    items = [i for i in drain(zd, ticketed).items if isinstance(i, AgentMessage)]
    assert [i.message_type for i in items] == ["text", "image", "file"]
    assert items[1].payload["imageUrl"].endswith("?name=screen.png")
    assert items[2].payload["title"] == "guide.pdf"
    assert items[2].payload["fileUrl"].endswith("?name=guide.pdf")


def test_inline_images_are_sent_too(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    fake.agent_comment(
        ticketed.ticket_id,
        sam,
        "Click here:",
        inline_images=[("pasted.png", "image/png", b"\x89PNG\r\n\x1a\n")],
    )
    items = [i for i in drain(zd, ticketed).items if isinstance(i, AgentMessage)]
    assert [i.message_type for i in items] == ["text", "image"]
    assert items[1].payload["imageUrl"].endswith("?name=pasted.png")
    reads = fake.calls("GET", f"/api/v2/tickets/{ticketed.ticket_id}/comments")
    assert all(r.query["include_inline_images"] == "true" for r in reads)


def test_the_fake_lists_inline_images_only_when_asked(
    fake: FakeZendesk, zd: ZendeskHelpdesk, ticketed: Conversation
) -> None:
    fake.agent_comment(
        ticketed.ticket_id, fake.add_agent("Sam"), "x", inline_images=[("p.png", "image/png", b"p")]
    )
    path = f"/api/v2/tickets/{ticketed.ticket_id}/comments"
    plain = zd.client.call("GET", path, what="t")["comments"][-1]
    asked = zd.client.call("GET", path, what="t", params={"include_inline_images": "true"})
    assert plain["attachments"] == []
    assert [a["inline"] for a in asked["comments"][-1]["attachments"]] == [True]


def notes(fake: FakeZendesk, conv: Conversation) -> list[str]:
    """The bodies of the ticket's internal notes."""
    return [c["body"] for c in fake.comments(conv.ticket_id) if not c["public"]]


def test_attachments_with_malware_are_held_back_and_the_agents_told_once(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    files = [("invoice.exe", "application/octet-stream", b"MZ"), ("guide.pdf", "text/plain", b"g")]
    cid = fake.agent_comment(ticketed.ticket_id, sam, "Here you go", attachments=files)
    fake.scan(cid, "malware_found", "invoice.exe")
    items = [i for i in drain(zd, ticketed).items if isinstance(i, AgentMessage)]
    assert [(i.message_type, i.payload.get("title")) for i in items] == [
        ("text", None),
        ("file", "guide.pdf"),
    ]
    held = next(c for c in fake.comments(ticketed.ticket_id) if c["id"] == cid)["attachments"][0]
    assert notes(fake, ticketed) == [f"{MALWARE_NOTE}\ninvoice.exe (attachment {held['id']})"]
    assert fake.comments(ticketed.ticket_id)[-1]["author_id"] == API_USER_ID
    # A read from the start (a lost cursor) sends the same and writes no second note.
    again = zd.changes_since(ticketed, "")
    assert [i for i in again.items if isinstance(i, AgentMessage)] == items
    assert len(notes(fake, ticketed)) == 1


def test_a_malware_note_that_failed_is_written_by_the_next_read(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, monkeypatch: Any
) -> None:
    cid = fake.agent_comment(
        ticketed.ticket_id, fake.add_agent("Sam"), "x", attachments=[("a.exe", "x/y", b"MZ")]
    )
    fake.scan(cid, "malware_found")
    call = zd.client.call

    def refuse_writes(method: str, path: str, **kwargs: Any) -> Any:
        if method == "PUT":
            raise TransientError("Zendesk: HTTP 503")
        return call(method, path, **kwargs)

    monkeypatch.setattr(zd.client, "call", refuse_writes)
    first = zd.changes_since(ticketed, "")
    assert [i.payload for i in first.items if isinstance(i, AgentMessage)] == [{"text": "x"}]
    assert notes(fake, ticketed) == []
    monkeypatch.setattr(zd.client, "call", call)
    assert list(zd.changes_since(ticketed, first.cursor).items) == []
    assert len(notes(fake, ticketed)) == 1


def test_attachments_not_scanned_yet_are_waited_for(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, make_settings: Any, store: Store
) -> None:
    cid = fake.agent_comment(
        ticketed.ticket_id, fake.add_agent("Sam"), "x", attachments=[("a.exe", "x/y", b"MZ")]
    )
    fake.scan(cid, "not_scanned")
    with pytest.raises(TransientError) as caught:
        zd.changes_since(ticketed, "")
    assert caught.value.retry_after == SCAN_RETRY
    # A scan that never comes: the file goes once the wait is over.
    later = ZendeskHelpdesk(make_settings(), store, clock=lambda: time.time() + SCAN_WAIT)
    assert [i.message_type for i in later.changes_since(ticketed, "").items] == ["text", "file"]
    fake.scan(cid, "malware_found")
    assert [i.message_type for i in drain(zd, ticketed).items] == ["text"]
    assert len(notes(fake, ticketed)) == 1


def test_recorded_comment_page_maps_to_messages(recorded: Any) -> None:
    page = recorded("comments_page.json")
    msgs = _agent_messages(page["comments"][1], "123123", "Agent Smith")
    assert [(m.message_type, dict(m.payload)) for m in msgs] == [
        ("text", {"text": "Thanks for your help!"}),
        (
            "file",
            {"fileUrl": "https://company.zendesk.com/attachments/crash.log", "title": "crash.log"},
        ),
        (
            "image",
            {
                "imageUrl": "https://company.zendesk.com/attachments/token/"
                "tyBq1ms40dFaHefSIigxZpwGg/?name=crash.png"
            },
        ),
    ]


def test_comments_are_read_across_pages(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    for i in range(230):
        fake.agent_comment(ticketed.ticket_id, sam, f"m{i}")
    texts = [i.payload["text"] for i in drain(zd, ticketed).items if isinstance(i, AgentMessage)]
    assert texts == [f"m{i}" for i in range(230)]
    pages = [r.query for r in fake.calls("GET", f"/api/v2/tickets/{ticketed.ticket_id}/comments")]
    assert pages[0]["page[size]"] == "100" and "page[after]" in pages[1]


def comment_reads(fake: FakeZendesk, conv: Conversation) -> list[dict[str, str]]:
    return [r.query for r in fake.calls("GET", f"/api/v2/tickets/{conv.ticket_id}/comments")]


def test_a_wake_up_reads_newest_first_and_stops_at_the_cursor(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    for i in range(250):
        fake.agent_comment(ticketed.ticket_id, sam, f"m{i}")
    first = zd.changes_since(ticketed, "")
    fake.agent_comment(ticketed.ticket_id, sam, "new")
    fake.requests.clear()
    changes = zd.changes_since(ticketed, first.cursor)
    assert [i.payload for i in changes.items if isinstance(i, AgentMessage)] == [{"text": "new"}]
    [read] = comment_reads(fake, ticketed)
    assert read["sort"] == "-created_at" and read["include_inline_images"] == "true"
    fake.requests.clear()
    assert list(zd.changes_since(ticketed, changes.cursor).items) == []
    assert len(comment_reads(fake, ticketed)) == 1


def test_a_wake_up_pages_back_only_as_far_as_the_cursor(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam = fake.add_agent("Sam")
    for i in range(150):
        fake.agent_comment(ticketed.ticket_id, sam, f"old{i}")
    first = zd.changes_since(ticketed, "")
    for i in range(130):
        fake.agent_comment(ticketed.ticket_id, sam, f"new{i}")
    fake.requests.clear()
    changes = drain(zd, ticketed, first.cursor)
    texts = [i.payload["text"] for i in changes.items if isinstance(i, AgentMessage)]
    assert texts == [f"new{i}" for i in range(130)]  # oldest first, as written
    # 281 comments are three pages; the second already reaches the cursor (then drain's
    # read with the new cursor takes one).
    assert len(comment_reads(fake, ticketed)) == 2 + 1


def test_the_fake_refuses_a_sort_zendesk_does_not_document(
    zd: ZendeskHelpdesk, ticketed: Conversation
) -> None:
    path = f"/api/v2/tickets/{ticketed.ticket_id}/comments"
    with pytest.raises(PermanentError) as caught:
        zd.client.call("GET", path, what="t", params={"page[size]": 10, "sort": "-id"})
    assert caught.value.status == 400


def test_the_bridges_own_close_is_not_reported(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.close_ticket(ticketed, event_id="e", maybe_applied=False)
    assert list(drain(zd, ticketed).items) == []  # not even the API user's assignment


def test_reassignment_is_reported_once_per_new_assignee(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    sam, kim = fake.add_agent("Sam"), fake.add_agent("Kim")
    fake.assign(ticketed.ticket_id, sam)
    first = drain(zd, ticketed)
    fake.assign(ticketed.ticket_id, kim)
    second = drain(zd, ticketed, first.cursor)
    assert list(second.items) == [AgentAssigned(str(kim), "Kim")]


def test_an_unreadable_cursor_restarts_without_echoes(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    fake.agent_comment(ticketed.ticket_id, fake.add_agent("Sam"), "hi")
    assert len(zd.changes_since(ticketed, "{not json").items) == 1


# -- polling ------------------------------------------------------------------------------
def test_poll_interval_from_the_environment(make_settings: Any, store: Store) -> None:
    assert ZendeskHelpdesk(make_settings(), store).poll_interval == 60
    assert ZendeskHelpdesk(make_settings(ZENDESK_POLL_INTERVAL="0"), store).poll_interval == 0


def test_changed_tickets_uses_the_incremental_export(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, store: Store
) -> None:
    assert zd.changed_tickets() is None  # first poll: ring every open ticket once
    assert zd.changed_tickets() == []
    fake.agent_comment(ticketed.ticket_id, fake.add_agent("Sam"), "hi")
    fake.tickets[99] = {**fake.tickets[int(ticketed.ticket_id)], "id": 99, "_seq": 10**6}
    assert zd.changed_tickets() == [ticketed.ticket_id]  # ticket 99 is not the bridge's
    assert zd.changed_tickets() == []
    assert "cursor" in fake.calls("GET", "/api/v2/incremental/")[-1].query


def test_a_429_pauses_a_poll_round_which_then_goes_on(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    """Issue 17: the round waits for Zendesk's window, it is not lost (and every other
    process waits with it: the budget is shared)."""
    assert zd.changed_tickets() is None
    fake.agent_comment(ticketed.ticket_id, fake.add_agent("Sam"), "hi")
    fake.fail_next(1, 429, retry_after=1)
    started = time.monotonic()
    assert zd.changed_tickets() == [ticketed.ticket_id]
    assert time.monotonic() - started >= 0.9
    assert len(fake.calls("GET", "/api/v2/incremental/")) == 3  # first poll, 429, again


def test_every_process_spends_from_one_budget_per_account(
    make_settings: Any, store: Store, fake: FakeZendesk
) -> None:
    """ZENDESK_RATE_LIMIT is for the account, not per process: two adapters (two workers)
    sharing the Redis space their requests out together."""
    settings = make_settings(ZENDESK_RATE_LIMIT="600")  # one every 0.1 s, after a burst of 5
    a, b = ZendeskHelpdesk(settings, store), ZendeskHelpdesk(settings, store)
    started = time.monotonic()
    for _ in range(5):
        for zd in (a, b):
            zd.client.call("GET", "/api/v2/users/me", what="me")
    assert time.monotonic() - started >= 0.45  # 10 requests: 5 at once, then 5 x 0.1 s
    assert len(fake.calls("GET", "/api/v2/users/me")) == 10


def test_an_agent_token_polls_open_tickets_100_at_a_time(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, store: Store
) -> None:
    """The incremental export is for admins: refused, the open tickets are read with
    show_many (one call per 100) instead of two calls per ticket, and only tickets whose
    updated_at moved are rung."""
    for cid, tid in [(ticketed.id, ticketed.ticket_id)] + [
        (f"c_more{i:03d}", str(10**6 + i)) for i in range(150)
    ]:  # 151 open bridge tickets, 150 of them unknown to this Zendesk: two calls a round
        store.redis.hset(store.conv_key(cid), mapping={"status": "open", "ticket_id": tid})
        store.redis.zadd(store.key("open"), {cid: 1})
    fake.fail_next(1, 403)
    first = zd.changed_tickets()  # first look: every ticket the fake knows is new
    assert first == [ticketed.ticket_id]  # (the others are not Zendesk's: left out)
    fake.fail_next(1, 403)
    assert zd.changed_tickets() == []  # nothing moved
    fake.advance(2)
    fake.agent_comment(ticketed.ticket_id, fake.add_agent("Sam"), "hi")
    fake.fail_next(1, 403)
    assert zd.changed_tickets() == [ticketed.ticket_id]
    calls = fake.calls("GET", "/api/v2/tickets/show_many")
    assert len(calls) == 6  # 3 rounds x 2 calls: 100, then 51
    assert sorted(len(c.query["ids"].split(",")) for c in calls[:2]) == [51, 100]
    assert not fake.calls("GET", f"/api/v2/tickets/{ticketed.ticket_id}")


# -- check --------------------------------------------------------------------------------
def test_check_passes_with_good_credentials(zd: ZendeskHelpdesk) -> None:
    assert zd.check() == []


def test_check_reports_bad_credentials(make_settings: Any, store: Store) -> None:
    problems = ZendeskHelpdesk(make_settings(ZENDESK_API_TOKEN="wrong"), store).check()
    assert len(problems) == 1 and "HTTP 401" in problems[0]
    assert "Couldn't authenticate you" in problems[0]


def test_check_reports_end_user_and_anonymous(zd: ZendeskHelpdesk, fake: FakeZendesk) -> None:
    fake.users[API_USER_ID]["role"] = "end-user"
    assert "must be an agent or admin" in zd.check()[0]
    fake.users[API_USER_ID]["id"] = None
    assert "anonymous" in zd.check()[0]


def test_check_mentions_a_missing_webhook_secret(make_settings: Any, store: Store) -> None:
    problems = ZendeskHelpdesk(
        make_settings(ZENDESK_WEBHOOK_SECRET="", ZENDESK_POLL_INTERVAL="0"), store
    ).check()
    assert problems == [
        "ZENDESK_WEBHOOK_SECRET is not set (run `hitl-bridge zendesk setup`); "
        "and polling is off: agent replies never arrive"
    ]


def test_ticket_reads_use_no_more_than_three_requests(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation
) -> None:
    zd.changes_since(ticketed, "")
    before = len(fake.requests)
    zd.changes_since(ticketed, "")
    assert len(fake.requests) - before == 2  # ticket + one comments page (users/me cached)
    assert json.loads(zd.changes_since(ticketed, "").cursor)["c"] > 0


@pytest.mark.parametrize("status", ["solved", "closed"])
def test_closed_status_is_reported(
    zd: ZendeskHelpdesk, fake: FakeZendesk, ticketed: Conversation, status: str
) -> None:
    fake.assign(ticketed.ticket_id, fake.add_agent("Sam"))
    fake.solve(ticketed.ticket_id, status)
    assert TicketClosed() in drain(zd, ticketed).items
