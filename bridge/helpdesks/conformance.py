"""The conformance kit: pytest tests every helpdesk adapter passes against its own fake.

An adapter's package proves it keeps the bridge's promises (nothing lost, nothing
duplicated, order kept, no echoes) by running these tests against a local fake of its
helpdesk. Subclass `HelpdeskConformance` in a test module and give it a `harness` fixture
returning your `DeskHarness`:

    from bridge.helpdesks.conformance import DeskHarness, HelpdeskConformance

    class MyDeskHarness(DeskHarness):
        ...  # drives your fake: acts as its agents, reads what it holds

    class TestMyDesk(HelpdeskConformance):
        @pytest.fixture
        def harness(self) -> Iterator[MyDeskHarness]:
            fake = MyFakeDesk().start()
            yield MyDeskHarness(fake)
            fake.stop()

The kit loads the adapter the way the bridge does, by its `HELPDESK` name through the
`hitl_bridge.helpdesks` entry points, and keeps the bridge's records in the Redis the
`store` fixture gives (fakeredis by default; override it to use a real one). It needs
pytest, and fakeredis for that default (the bridge's `test` extra has both); the bridge
itself never imports this module.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pytest

from bridge import ids
from bridge.config import Settings
from bridge.helpdesks import load
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    Change,
    Helpdesk,
    HistoryMessage,
    OutboundMessage,
    TicketClosed,
    TicketRequest,
)
from bridge.storage import Conversation, Store, User


@dataclass(frozen=True)
class Webhook:
    """One webhook delivery as the helpdesk would post it to the bridge.

    `url_token` is the last segment of `/webhooks/<name>/<token>` when the helpdesk puts a
    secret in the URL instead of signing; None posts to `/webhooks/<name>`.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    url_token: str | None = None


class DeskHarness(ABC):
    """One helpdesk's fake, as the kit drives it: its agents' actions and what it holds.

    Ticket ids are the ones the adapter's `create_ticket` returned.
    """

    #: Whether consecutive messages may land as fewer writes than messages (one comment).
    coalesces: ClassVar[bool] = False
    #: Whether the helpdesk tells the bridge of changes by webhook (else polling only).
    webhooks: ClassVar[bool] = True

    @abstractmethod
    def env(self) -> dict[str, str]:
        """The environment that points the adapter at the fake: `HELPDESK` and its
        credentials. The kit adds BRIDGE_SECRET and ADMIN_TOKEN."""

    @abstractmethod
    def ticket_count(self) -> int:
        """How many tickets (conversations) the helpdesk holds."""

    @abstractmethod
    def user_count(self) -> int:
        """How many end users (contacts) the helpdesk holds."""

    @abstractmethod
    def texts(self, ticket_id: str) -> list[str]:
        """The text of every message on the ticket, oldest first, as the helpdesk holds
        it: the first (description, history) and what the bridge and agents wrote,
        private notes included."""

    @abstractmethod
    def is_closed(self, ticket_id: str) -> bool:
        """The ticket is solved, resolved or closed on the helpdesk."""

    @abstractmethod
    def agent_reply(self, ticket_id: str, text: str) -> str:
        """An agent replies publicly on the ticket; returns the agent's id."""

    @abstractmethod
    def agent_note(self, ticket_id: str, text: str) -> None:
        """An agent writes a private note on the ticket (never for the end user)."""

    @abstractmethod
    def assign(self, ticket_id: str) -> str:
        """An agent takes the ticket; returns the agent's id."""

    @abstractmethod
    def agent_closes(self, ticket_id: str) -> None:
        """An agent solves (resolves) the ticket."""

    def foreign_ticket(self) -> str:
        """A ticket someone other than the bridge made (an e-mail, another channel);
        returns its id. Needed when `webhooks` is true."""
        raise NotImplementedError

    def webhook(self, ticket_id: str) -> Webhook:
        """A genuine webhook saying the ticket changed. Needed when `webhooks` is true."""
        raise NotImplementedError

    def forgeries(self, ticket_id: str) -> list[Webhook]:
        """Webhooks about the ticket that must be refused: unsigned, signed with another
        secret, a changed body under a signature, a wrong URL token, a stale timestamp...
        The kit always adds the genuine one with every header and the token taken away."""
        return []

    def writes(self) -> int:
        """How many write requests (any method but GET) the fake has answered. Needed when
        `coalesces` is true."""
        raise NotImplementedError


#: What the kit adds to the harness's environment (values no one can guess).
BASE_ENV = {
    "BRIDGE_SECRET": "conformance-secret-6f1d0c9a2b",
    "ADMIN_TOKEN": "conformance-admin-3e8b5a7c41",
    "BOTPRESS_WEBHOOK_URL": "http://botpress.invalid/hook",
}


def marker(label: str) -> str:
    """A text no helpdesk holds by chance: found once, or the write was lost or doubled."""
    return f"{label}-{ids.unique_hex(32)}"


def agent_texts(items: Sequence[Change]) -> list[str]:
    """The text of each agent message among `items` (any Botpress text-bearing type)."""
    out = []
    for item in items:
        if isinstance(item, AgentMessage):
            p = item.payload
            out.append(str(p.get(item.message_type) or p.get("text") or json.dumps(dict(p))))
    return out


def _record(store: Store, key: str, fields: Mapping[str, str]) -> None:
    """Writes a record as the core does (the kit runs without the core's events)."""
    store.redis.hset(key, mapping=dict(fields))  # type: ignore[arg-type]


class _Dispatch:
    """Stands in for Celery: the web rings doorbells, nothing runs them here."""

    def drain(self, stream: str, countdown: float) -> None:
        pass

    def pump(self, pump_id: str) -> None:
        pass


class HelpdeskConformance:
    """The promises every adapter keeps. Subclass it and give it a `harness` fixture."""

    # -- fixtures -----------------------------------------------------------------------
    @pytest.fixture
    def harness(self) -> DeskHarness:
        pytest.fail("give the conformance class a `harness` fixture returning a DeskHarness")

    @pytest.fixture
    def store(self) -> Store:
        """The bridge's Redis; fakeredis unless overridden."""
        import fakeredis

        return Store(fakeredis.FakeRedis(decode_responses=True))

    @pytest.fixture
    def settings(self, harness: DeskHarness) -> Settings:
        return Settings.from_env({**BASE_ENV, **harness.env()})

    @pytest.fixture
    def adapter(self, settings: Settings, store: Store) -> Helpdesk:
        """The adapter as the bridge loads it: by its HELPDESK name, from the entry points."""
        desk = load(settings, store)
        assert desk.name == settings.helpdesk
        return desk

    @pytest.fixture
    def user(self, adapter: Helpdesk, store: Store) -> User:
        """An end user the bridge has already sent to the helpdesk, as the core records it."""
        return self.upserted(adapter, store, self.new_user())

    @pytest.fixture
    def conv(self, adapter: Helpdesk, store: Store, user: User) -> Conversation:
        """A hand-off with its ticket created, as the core records it."""
        conv = self.new_conversation(store)
        tid = adapter.create_ticket(
            conv, self.request(user), idempotency_key=ids.event_id(), maybe_applied=False
        )
        return self.ticketed(store, conv, tid, user)

    # -- helpers, for subclasses' own tests too ----------------------------------------
    @staticmethod
    def new_user() -> User:
        uid = ids.user_id()
        return User(
            id=uid,
            name=f"Ada {uid[-6:]}",
            email=f"{uid.lower()}@example.com",
            picture_url="https://example.com/ada.png",
        )

    @staticmethod
    def upserted(adapter: Helpdesk, store: Store, user: User) -> User:
        _record(store, store.user_key(user.id), user.to_hash())
        hid = adapter.upsert_user(user, maybe_applied=False)
        store.redis.hset(store.user_key(user.id), "helpdesk_id", hid)
        return replace(user, helpdesk_id=hid)

    @staticmethod
    def new_conversation(store: Store) -> Conversation:
        conv = Conversation(
            id=ids.conversation_id(),
            created_at=time.time(),
            title="Conformance: needs a human",
            description=marker("description"),
        )
        _record(
            store,
            store.conv_key(conv.id),
            {"created_at": repr(conv.created_at), "title": conv.title, "status": "open"},
        )
        return conv

    @staticmethod
    def request(user: User | None, history: Sequence[HistoryMessage] = ()) -> TicketRequest:
        return TicketRequest(
            title="Conformance: needs a human",
            description=marker("description"),
            history=list(history) or [HistoryMessage(marker("history"), "user", "")],
            requester=user,
        )

    @staticmethod
    def ticketed(store: Store, conv: Conversation, tid: str, user: User | None) -> Conversation:
        requester = user.id if user else ""
        store.redis.hset(
            store.conv_key(conv.id), mapping={"ticket_id": tid, "requester": requester}
        )
        store.redis.set(store.key("ticket", tid), conv.id)
        return replace(conv, ticket_id=tid, requester=requester)

    @staticmethod
    def messages(*texts: str) -> list[OutboundMessage]:
        return [OutboundMessage(ids.event_id(), "text", {"text": t}, time.time()) for t in texts]

    @staticmethod
    def in_order(held: Sequence[str], wanted: Sequence[str]) -> None:
        """Each of `wanted` appears exactly once in what the ticket holds, in that order."""
        whole = "\n".join(held)
        for text in wanted:
            assert whole.count(text) == 1, f"{text!r} appears {whole.count(text)} times"
        places = [whole.index(t) for t in wanted]
        assert places == sorted(places), "the ticket holds them out of order"

    @staticmethod
    def changes(adapter: Helpdesk, conv: Conversation, cursor: str) -> tuple[list[Change], str]:
        found = adapter.changes_since(replace(conv, cursor=cursor), cursor)
        return list(found.items), found.cursor

    # -- users and tickets --------------------------------------------------------------
    def test_a_user_is_created_once_however_often_it_is_sent(
        self, adapter: Helpdesk, harness: DeskHarness, store: Store
    ) -> None:
        before = harness.user_count()
        user = self.new_user()
        _record(store, store.user_key(user.id), user.to_hash())
        first = adapter.upsert_user(user, maybe_applied=False)
        assert first
        assert adapter.upsert_user(user, maybe_applied=True) == first  # the answer was lost
        renamed = replace(user, name="Ada Lovelace", helpdesk_id=first)
        assert adapter.upsert_user(renamed, maybe_applied=False) == first  # an update
        assert harness.user_count() == before + 1

    def test_a_retry_of_a_user_that_never_landed_creates_it(
        self, adapter: Helpdesk, harness: DeskHarness, store: Store
    ) -> None:
        before = harness.user_count()
        user = self.new_user()
        _record(store, store.user_key(user.id), user.to_hash())
        assert adapter.upsert_user(user, maybe_applied=True)
        assert harness.user_count() == before + 1

    def test_a_ticket_is_created_once_with_the_history_first(
        self, adapter: Helpdesk, harness: DeskHarness, store: Store, user: User
    ) -> None:
        before = harness.ticket_count()
        conv = self.new_conversation(store)
        history = [
            HistoryMessage(marker("said-first"), "user"),
            HistoryMessage(marker("bot"), "bot"),
        ]
        request = self.request(user, history)
        key = ids.event_id()
        tid = adapter.create_ticket(conv, request, idempotency_key=key, maybe_applied=False)
        assert tid
        # The worker died before recording the ticket: the retry finds it.
        again = adapter.create_ticket(conv, request, idempotency_key=key, maybe_applied=True)
        assert again == tid
        assert harness.ticket_count() == before + 1
        self.in_order(harness.texts(tid), [h.text for h in history])
        assert request.description in "\n".join(harness.texts(tid))

    def test_a_retry_of_a_ticket_that_never_landed_creates_it(
        self, adapter: Helpdesk, harness: DeskHarness, store: Store, user: User
    ) -> None:
        before = harness.ticket_count()
        conv = self.new_conversation(store)
        tid = adapter.create_ticket(
            conv, self.request(user), idempotency_key=ids.event_id(), maybe_applied=True
        )
        assert tid and harness.ticket_count() == before + 1

    # -- messages -----------------------------------------------------------------------
    def test_messages_land_once_and_in_order_even_when_retried(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation, user: User
    ) -> None:
        said = [marker(f"user-{i}") for i in range(3)]
        bot = [marker(f"bot-{i}") for i in range(2)]
        last = [marker("user-again")]
        batches = [
            (Author("end_user", user), self.messages(*said)),
            (Author("bot"), self.messages(*bot)),
            (Author("end_user", user), self.messages(*last)),
        ]
        for author, batch in batches:
            adapter.append_messages(conv, author, batch, maybe_applied=False)
            # Its answer was lost: the worker retries it before anything after it.
            adapter.append_messages(conv, author, batch, maybe_applied=True)
        self.in_order(harness.texts(conv.ticket_id), [*said, *bot, *last])

    def test_a_retried_batch_that_half_landed_adds_only_the_rest(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation, user: User
    ) -> None:
        batch = self.messages(*(marker(f"part-{i}") for i in range(4)))
        author = Author("end_user", user)
        # The first went out alone and its answer was lost; three more came meanwhile.
        adapter.append_messages(conv, author, batch[:1], maybe_applied=False)
        adapter.append_messages(conv, author, batch, maybe_applied=True)
        self.in_order(harness.texts(conv.ticket_id), [str(m.payload["text"]) for m in batch])

    def test_consecutive_messages_are_coalesced_where_the_helpdesk_allows(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation, user: User
    ) -> None:
        if not harness.coalesces:
            pytest.skip("this helpdesk keeps one entry per message")
        batch = self.messages(*(marker(f"burst-{i}") for i in range(5)))
        before = harness.writes()
        adapter.append_messages(conv, Author("end_user", user), batch, maybe_applied=False)
        assert harness.writes() - before < len(batch)
        self.in_order(harness.texts(conv.ticket_id), [str(m.payload["text"]) for m in batch])

    # -- closing ------------------------------------------------------------------------
    def test_the_bot_closes_the_ticket_once_and_it_is_not_echoed(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        _, cursor = self.changes(adapter, conv, "")
        event = ids.event_id()
        adapter.close_ticket(conv, event_id=event, maybe_applied=False)
        adapter.close_ticket(conv, event_id=event, maybe_applied=True)
        assert harness.is_closed(conv.ticket_id)
        items, _ = self.changes(adapter, conv, cursor)
        assert not [i for i in items if isinstance(i, TicketClosed)], "the bridge's close came back"

    # -- what agents do -----------------------------------------------------------------
    def test_agents_replies_come_back_in_order_never_notes_nor_the_bridges_writes(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation, user: User
    ) -> None:
        adapter.append_messages(
            conv, Author("end_user", user), self.messages(marker("question")), maybe_applied=False
        )
        items, cursor = self.changes(adapter, conv, "")
        assert agent_texts(items) == [], "what the bridge wrote came back as an agent's reply"
        note, first, second = marker("private-note"), marker("reply-1"), marker("reply-2")
        harness.agent_note(conv.ticket_id, note)
        harness.agent_reply(conv.ticket_id, first)
        harness.agent_reply(conv.ticket_id, second)
        items, cursor = self.changes(adapter, conv, cursor)
        texts = agent_texts(items)
        assert not any(note in t for t in texts), "a private note would reach the end user"
        assert [t for t in texts if first in t or second in t] == [t for t in texts], (
            f"unexpected messages {texts}"
        )
        self.in_order(texts, [first, second])
        # The bridge writes again; from the cursor, nothing new (and never its own).
        adapter.append_messages(
            conv, Author("bot"), self.messages(marker("bot-after")), maybe_applied=False
        )
        items, cursor = self.changes(adapter, conv, cursor)
        assert agent_texts(items) == []

    def test_a_reply_is_read_once_from_a_cursor(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        _, cursor = self.changes(adapter, conv, "")
        reply = marker("reply")
        harness.agent_reply(conv.ticket_id, reply)
        items, after = self.changes(adapter, conv, cursor)
        assert [t for t in agent_texts(items) if reply in t]
        items, _ = self.changes(adapter, conv, after)
        assert not [t for t in agent_texts(items) if reply in t], "read twice from the cursor"

    def test_assignment_comes_back(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        _, cursor = self.changes(adapter, conv, "")
        agent = harness.assign(conv.ticket_id)
        items, cursor = self.changes(adapter, conv, cursor)
        assigned = [i for i in items if isinstance(i, AgentAssigned)]
        assert [a.agent_id for a in assigned] == [str(agent)]
        items, _ = self.changes(adapter, conv, cursor)
        assert not [i for i in items if isinstance(i, AgentAssigned)]

    def test_an_agent_closing_the_ticket_comes_back_once(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        _, cursor = self.changes(adapter, conv, "")
        harness.agent_closes(conv.ticket_id)
        items, cursor = self.changes(adapter, conv, cursor)
        assert len([i for i in items if isinstance(i, TicketClosed)]) == 1
        items, _ = self.changes(adapter, conv, cursor)
        assert not [i for i in items if isinstance(i, TicketClosed)]

    def test_polling_finds_a_changed_ticket(
        self, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        assert adapter.poll_interval >= 0
        adapter.changed_tickets()  # a first poll may only set its cursor
        harness.agent_reply(conv.ticket_id, marker("polled"))
        changed = adapter.changed_tickets()
        # None rings every open conversation: the ticket is read either way.
        assert changed is None or conv.ticket_id in changed

    # -- webhooks, through the bridge's web route ---------------------------------------
    @pytest.fixture
    def web(self, harness: DeskHarness, settings: Settings, store: Store, adapter: Helpdesk) -> Any:
        if not harness.webhooks:
            pytest.skip("this helpdesk tells the bridge of changes by polling only")
        from bridge.app import create_app
        from bridge.runtime import Runtime

        return create_app(runtime=Runtime(settings, store, adapter, _Dispatch())).test_client()

    @staticmethod
    def post(web: Any, name: str, hook: Webhook) -> Any:
        path = f"/webhooks/{name}" + (f"/{hook.url_token}" if hook.url_token is not None else "")
        return web.post(path, data=hook.body, headers=dict(hook.headers))

    def test_a_genuine_webhook_rings_its_conversation(
        self, web: Any, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        resp = self.post(web, adapter.name, harness.webhook(conv.ticket_id))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["rung"] == [conv.id]

    def test_forged_webhooks_are_refused(
        self, web: Any, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        genuine = harness.webhook(conv.ticket_id)
        stripped = Webhook({"Content-Type": "application/json"}, genuine.body, None)
        for forged in [stripped, *harness.forgeries(conv.ticket_id)]:
            resp = self.post(web, adapter.name, forged)
            assert 400 <= resp.status_code < 500, (forged, resp.status_code)
            body = resp.get_json()
            assert body and body.get("error"), "a refusal names its reason in JSON"

    def test_webhooks_about_tickets_the_bridge_did_not_make_ring_nothing(
        self, web: Any, adapter: Helpdesk, harness: DeskHarness, conv: Conversation
    ) -> None:
        foreign = harness.foreign_ticket()
        resp = self.post(web, adapter.name, harness.webhook(foreign))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["rung"] == []


__all__ = ["DeskHarness", "HelpdeskConformance", "Webhook", "agent_texts", "marker"]
