"""Identity (issue 14 §2): an e-mail an end user types never selects, or changes, a helpdesk
account that is not an end user's; agents reach Botpress in a namespace of their own."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from bridge import events as ev
from bridge.config import Settings
from bridge.errors import PermanentError
from bridge.helpdesks.base import AgentMessage, Author, OutboundMessage, TicketRequest
from bridge.helpdesks.zendesk import ZendeskHelpdesk
from bridge.storage import Conversation, Store, User
from tests.conftest import SECRET
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_zendesk import FakeZendesk
from workers.botpress import Botpress


@pytest.fixture
def zd(zendesk: FakeZendesk, store: Store) -> ZendeskHelpdesk:
    env = {
        "BRIDGE_SECRET": SECRET,
        "HELPDESK": "zendesk",
        "HTTP_TIMEOUT_SECONDS": "5",
        "ZENDESK_URL": zendesk.url,
        "ZENDESK_EMAIL": zendesk.email,
        "ZENDESK_API_TOKEN": zendesk.api_token,
    }
    return ZendeskHelpdesk(Settings.from_env(env), store)


def _snapshot(fake: FakeZendesk, uid: int) -> dict[str, object]:
    return dict(fake.users[uid])


def _chat(zd: ZendeskHelpdesk, store: Store, user: User, text: str) -> Conversation:
    """Open a ticket for `user` and post `text` as them, as the workers would."""
    conv = Conversation(id="c_chat", created_at=time.time(), title="Help")
    tid = zd.create_ticket(
        conv, TicketRequest("Help", "", requester=user), idempotency_key="e_c", maybe_applied=False
    )
    store.redis.set(store.key("ticket", tid), conv.id)
    conv = replace(conv, ticket_id=tid, requester=user.id)
    message = OutboundMessage("e_m", "text", {"text": text}, time.time())
    zd.append_messages(conv, Author("end_user", user), [message], maybe_applied=False)
    return conv


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_an_end_user_typing_an_agents_email_never_becomes_that_agent(
    zd: ZendeskHelpdesk, zendesk: FakeZendesk, store: Store, role: str
) -> None:
    smith = zendesk.add_agent("Agent Smith", "smith@corp.example", role=role)
    before = _snapshot(zendesk, smith)
    mallory = User(id="u_mallory", name="Mallory", email="SMITH@corp.example")
    uid = zd.upsert_user(mallory, maybe_applied=False)
    assert int(uid) != smith and zendesk.users[smith] == before
    created = zendesk.users[int(uid)]
    assert created["role"] == "end-user" and created["external_id"] == "u_mallory"
    assert not created.get("email")
    # No request ever named the address for create_or_update or as an identity.
    sent = [r.json for r in zendesk.calls("POST", "/api/v2/users/")]
    assert all("email" not in (body.get("user") or {}) for body in sent)
    assert not zendesk.calls("POST", f"/api/v2/users/{uid}/identities")
    # The chat is the end user's, and the agent's real reply still reaches Botpress.
    conv = _chat(zd, store, replace(mallory, helpdesk_id=uid), "I am the agent, honest")
    [comment] = [c for c in zendesk.comments(conv.ticket_id) if "honest" in c["body"]]
    assert comment["author_id"] == int(uid)
    zendesk.agent_comment(conv.ticket_id, smith, "Real reply from Smith")
    texts = [
        i.payload["text"] for i in zd.changes_since(conv, "").items if isinstance(i, AgentMessage)
    ]
    assert texts == ["Real reply from Smith"]


def test_an_agent_the_search_has_not_indexed_yet_is_not_taken_either(
    zd: ZendeskHelpdesk, zendesk: FakeZendesk
) -> None:
    fresh = zendesk.add_agent("New Agent", "new@corp.example")
    zendesk.unindexed.add(fresh)  # Zendesk's search lags new accounts
    before = _snapshot(zendesk, fresh)
    uid = zd.upsert_user(
        User(id="u_eve", name="Eve", email="new@corp.example"), maybe_applied=False
    )
    assert int(uid) != fresh and zendesk.users[fresh] == before
    assert not zendesk.users[int(uid)].get("email")  # Zendesk refused the identity: taken


def test_an_agents_secondary_address_counts_as_theirs(
    zd: ZendeskHelpdesk, zendesk: FakeZendesk
) -> None:
    smith = zendesk.add_agent("Agent Smith", "smith@corp.example")
    zendesk.identities[smith] = [{"type": "email", "value": "js@home.example"}]
    uid = zd.upsert_user(User(id="u_m", name="M", email="js@home.example"), maybe_applied=False)
    assert int(uid) != smith and zendesk.users[smith]["name"] == "Agent Smith"


def test_an_end_users_own_address_still_finds_their_account(
    zd: ZendeskHelpdesk, zendesk: FakeZendesk
) -> None:
    first = zd.upsert_user(User(id="u_1", name="Ada", email="ada@example.com"), maybe_applied=False)
    assert zendesk.users[int(first)]["email"] == "ada@example.com"
    # A returning customer (same address, a new Botpress user): mapped onto the end user.
    again = zd.upsert_user(
        User(id="u_2", name="Ada L.", email="ada@example.com"), maybe_applied=False
    )
    assert again == first and zendesk.users[int(first)]["role"] == "end-user"


@pytest.mark.parametrize(
    "email",
    [
        "a@b.example role:admin",
        'x"@corp.example',
        "a@b",
        "smith@corp.example,eve@x.example",
        "no-at-sign",
    ],
)
def test_an_address_that_is_not_one_address_is_left_out(
    zd: ZendeskHelpdesk, zendesk: FakeZendesk, email: str
) -> None:
    smith = zendesk.add_agent("Agent Smith", "smith@corp.example")
    uid = zd.upsert_user(User(id="u_x", name="X", email=email), maybe_applied=False)
    assert int(uid) != smith and not zendesk.users[int(uid)].get("email")
    assert not zendesk.calls("GET", "/api/v2/users/search")


def test_a_promotion_between_search_and_update_is_refused_not_spoken_as(
    zd: ZendeskHelpdesk, zendesk: FakeZendesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = int(
        zd.upsert_user(User(id="u_1", name="Ada", email="ada@example.com"), maybe_applied=False)
    )

    def searched_then_promoted(email: str) -> list[str]:
        zendesk.users[ada]["role"] = "agent"  # promoted after the search answered
        return ["end-user"]

    monkeypatch.setattr(zd, "_email_owners", searched_then_promoted)
    with pytest.raises(PermanentError, match="never posts as an agent"):
        zd.upsert_user(User(id="u_2", name="Mallory", email="ada@example.com"), maybe_applied=False)


@pytest.mark.parametrize("agent", ["BOT", "u_Jx3abcdefghijklm", "agent:inbox:alice", "alice"])
def test_agents_reach_botpress_in_their_own_namespace(
    fake_botpress: FakeBotpress, agent: str
) -> None:
    settings = Settings.from_env(
        {"BRIDGE_SECRET": SECRET, "BOTPRESS_WEBHOOK_URL": fake_botpress.webhook_url}
    )
    botpress = Botpress(settings)
    data = {"agent_id": agent, "message_type": "text", "payload": {"text": "hi"}}
    botpress.deliver(ev.Event(ev.AGENT_MESSAGE, "bp:c_1", data))
    botpress.deliver(ev.Event(ev.AGENT_ASSIGNED, "bp:c_1", {"agent_id": agent}))
    ids = [r["body"]["remoteUserId"] for r in fake_botpress.wait_for(2)]
    assert ids == [f"agent:inbox:{agent}"] * 2
    assert all(i != "BOT" and not i.startswith("u_") for i in ids)
