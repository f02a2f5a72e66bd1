"""The helpdesk side of a reliability test, behind one small interface.

The suite is written against `HelpdeskSide`, so the same tests run on any adapter with a
local fake. `InboxSide` is the built-in inbox (tickets in the bridge's Redis). `ZendeskSide`
is the Zendesk adapter against tests/support/fake_zendesk.py, reached over HTTP: it can
answer 503s and time out, and it tells the bridge of agent replies by signed webhooks.
`FreshdeskSide` is the Freshdesk adapter against tests/support/fake_freshdesk.py: the same
faults, and webhooks that carry a token in their URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, cast

import redis
import requests

from bridge.config import Settings
from bridge.helpdesks.freshdesk.webhook import derived_token
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.helpdesks.render import BOT_PREFIX
from bridge.storage import Store
from tests.reliability.harness import Load, Outcome, wait_until
from tests.support.fake_chatwoot import ACCOUNT_ID as CW_ACCOUNT
from tests.support.fake_chatwoot import API_USER_ID as CW_API_USER
from tests.support.fake_chatwoot import INBOX_ID as CW_INBOX
from tests.support.fake_chatwoot import FakeChatwoot
from tests.support.fake_chatwoot import sign as cw_sign
from tests.support.fake_freshdesk import API_AGENT_ID, FakeFreshdesk
from tests.support.fake_zendesk import API_USER_ID, FakeZendesk


class Unsupported(Exception):
    """This helpdesk side cannot inject that fault (the test skips, naming what is missing)."""


class HelpdeskSide(Protocol):
    name: ClassVar[str]

    def env(self) -> dict[str, str]:
        """Variables the bridge's processes need to talk to this helpdesk."""

    def delivered(self, cids: list[str]) -> dict[str, list[str]]:
        """Conversation id -> texts the bridge wrote on its ticket (Botpress's side), in order."""

    def tickets_ready(self, cids: list[str]) -> bool:
        """Every conversation has its ticket."""

    def agent_reply(self, load: Load) -> Callable[[str, str], Outcome]:
        """`send(cid, text)`: an agent replies on the ticket, and the bridge hears of it
        the way this helpdesk tells it (API call, webhook)."""

    def agent_writes(self, cid: str, text: str) -> None:
        """An agent replies, and the bridge is not told (no webhook, no doorbell)."""

    def webhook(self, cid: str) -> tuple[str, dict[str, str], bytes]:
        """A signed webhook saying the conversation's ticket changed: (path, headers, body)."""

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every API call with `status` for `seconds`."""

    def stall_for(self, seconds: float) -> None:
        """Let every API call time out for `seconds`."""


class HttpSide(HelpdeskSide, Protocol):
    """A helpdesk reached over HTTP (its fake records the faults it injected)."""

    #: How the adapter's failure reasons start ("Zendesk ...: HTTP 503").
    label: ClassVar[str]

    def faults(self) -> list[dict[str, Any]]:
        """One entry per request a fault window answered: `fault` is the status, "stalled"
        or "stalled after applying" (then `method`, `path` and the `status` it had)."""

    def lost_message_writes(self) -> int:
        """Messages written on a ticket whose answer the stall swallowed."""

    def duplicate_tickets(self, cids: list[str]) -> dict[str, list[int]]:
        """Conversations with more than one ticket."""


def _applied(faults: list[dict[str, Any]], method: str, path_end: str, status: int) -> int:
    return sum(
        1
        for f in faults
        if f["fault"] == "stalled after applying"
        and f.get("method") == method
        and f.get("path", "").endswith(path_end)
        and f.get("status") == status
    )


class InboxSide:
    """The built-in inbox: tickets live in the bridge's Redis; agents use its API."""

    name: ClassVar[str] = "inbox"

    def __init__(self, redis_url: str, settings: Settings) -> None:
        self.store = Store(redis.Redis.from_url(redis_url, decode_responses=True))
        self.inbox = InboxHelpdesk(settings, self.store)

    def env(self) -> dict[str, str]:
        return {"HELPDESK": "inbox"}

    def _log(self, cid: str) -> list[dict[str, Any]]:
        raw = cast(list[str], self.store.redis.lrange(self.inbox.timeline.k("log", cid), 0, -1))
        return [json.loads(e) for e in raw]

    def delivered(self, cids: list[str]) -> dict[str, list[str]]:
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in cids:
            pipe.lrange(self.inbox.timeline.k("log", cid), 0, -1)
        return {
            cid: [
                e["text"]
                for e in map(json.loads, raw)
                if e["kind"] == "message" and e["by"] in ("end_user", "bot")
            ]
            for cid, raw in zip(cids, pipe.execute(), strict=True)
        }

    def tickets_ready(self, cids: list[str]) -> bool:
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in cids:
            pipe.exists(self.inbox.timeline.k("ticket", cid))
        return all(pipe.execute())

    def agent_reply(self, load: Load) -> Callable[[str, str], Outcome]:
        return load.inbox_reply  # the inbox API records it and rings the doorbell

    def agent_writes(self, cid: str, text: str) -> None:
        self.inbox.desk.act(cid, "message", "alice", text=text)

    def webhook(self, cid: str) -> tuple[str, dict[str, str], bytes]:
        raise Unsupported("the inbox takes no webhooks: an HTTP helpdesk (Zendesk) is needed")

    def fail_for(self, seconds: float, status: int = 503) -> None:
        raise Unsupported("the inbox is in Redis: an HTTP helpdesk (Zendesk) is needed")

    def stall_for(self, seconds: float) -> None:
        raise Unsupported("the inbox is in Redis: an HTTP helpdesk (Zendesk) is needed")


class ZendeskSide:
    """The Zendesk adapter against the fake Zendesk account (tests/support/fake_zendesk.py).

    Agents comment on the fake's tickets as one agent, Alice; the bridge hears of it by a
    signed webhook to its web process (polling is off, so a webhook is the only way).
    """

    name: ClassVar[str] = "zendesk"
    WEBHOOK_SECRET = "cmVsaWFiaWxpdHktc3VpdGUtc2lnbmluZy1zZWNyZXQ="

    def __init__(self, fake: FakeZendesk, redis_url: str) -> None:
        self.fake = fake
        self.store = Store(redis.Redis.from_url(redis_url, decode_responses=True))
        self.agent = fake.add_agent("Alice", "alice@agents.test")
        self.bridge_url = ""  # the web process, set by `agent_reply`

    def env(self) -> dict[str, str]:
        return {
            "HELPDESK": "zendesk",
            "ZENDESK_URL": self.fake.url,
            "ZENDESK_EMAIL": self.fake.email,
            "ZENDESK_API_TOKEN": self.fake.api_token,
            "ZENDESK_WEBHOOK_SECRET": self.WEBHOOK_SECRET,
            "ZENDESK_POLL_INTERVAL": "0",  # webhooks only: a lost one would show
            # The fake enforces no limit; the API budget has tests of its own.
            "ZENDESK_RATE_LIMIT": "100000",
        }

    # -- what the bridge wrote ------------------------------------------------------------
    def tickets(self, cids: list[str]) -> dict[str, list[int]]:
        """Conversation id -> the ids of the tickets carrying it as external_id (one, or
        the bridge created a duplicate ticket)."""
        wanted = set(cids)
        out: dict[str, list[int]] = {cid: [] for cid in cids}
        with self.fake.lock:
            for tid, t in sorted(self.fake.tickets.items()):
                if t.get("external_id") in wanted:
                    out[t["external_id"]].append(tid)
        return out

    def delivered(self, cids: list[str]) -> dict[str, list[str]]:
        """The texts of the end user's and the bot's comments, split back into messages.

        The adapter writes consecutive messages of one author as one comment, joined by
        blank lines, and starts a bot comment with BOT_PREFIX. The first comment (the
        ticket's description), private notes and agents' comments are not Botpress's.
        """
        out: dict[str, list[str]] = {}
        with self.fake.lock:
            roles = {uid: u.get("role") for uid, u in self.fake.users.items()}
            for cid, tids in self.tickets(cids).items():
                texts: list[str] = []
                for tid in tids:
                    for c in self.fake.comments(tid)[1:]:
                        body = str(c["body"])
                        if not c["public"]:
                            continue
                        if c["author_id"] == API_USER_ID:
                            if not body.startswith(BOT_PREFIX):
                                continue
                            body = body.removeprefix(BOT_PREFIX).lstrip(" ")
                        elif roles.get(c["author_id"]) != "end-user":
                            continue
                        texts += body.split("\n\n")
                out[cid] = texts
        return out

    def duplicate_tickets(self, cids: list[str]) -> dict[str, list[int]]:
        return {cid: tids for cid, tids in self.tickets(cids).items() if len(tids) > 1}

    def tickets_ready(self, cids: list[str]) -> bool:
        """Every conversation has its ticket, and the bridge knows it (a webhook for a
        ticket the bridge has not recorded yet is ignored)."""
        tickets = self.tickets(cids)
        if not all(tickets.values()):
            return False
        return all(
            self.store.conversation_for_ticket(str(tids[0])) == cid for cid, tids in tickets.items()
        )

    def ticket(self, cid: str) -> int:
        tids = wait_until(lambda: self.tickets([cid])[cid], 30, f"the ticket of {cid}")
        return int(tids[0])

    # -- agents -----------------------------------------------------------------------------
    def agent_reply(self, load: Load) -> Callable[[str, str], Outcome]:
        self.bridge_url = load.base

        def send(cid: str, text: str) -> Outcome:
            self.agent_writes(cid, text)
            path, headers, body = self.webhook(cid)
            try:
                r = load.session().post(
                    f"{load.base}{path}", data=body, headers=headers, timeout=load.timeout
                )
            except requests.RequestException as exc:
                return Outcome(None, type(exc).__name__)
            return Outcome(r.status_code, "" if r.status_code == 200 else r.text[:300])

        return send

    def agent_writes(self, cid: str, text: str) -> None:
        self.fake.agent_comment(self.ticket(cid), self.agent, text)

    def webhook(self, cid: str) -> tuple[str, dict[str, str], bytes]:
        headers, body = self.fake.webhook_request(self.ticket(cid), secret=self.WEBHOOK_SECRET)
        return "/webhooks/zendesk", headers, body

    label: ClassVar[str] = "Zendesk"

    def faults(self) -> list[dict[str, Any]]:
        return list(self.fake.faults)

    def lost_message_writes(self) -> int:
        # A comment is a ticket update (PUT) answered 200.
        return _applied(self.fake.faults, "PUT", "", 200)

    # -- faults -----------------------------------------------------------------------------
    def fail_for(self, seconds: float, status: int = 503) -> None:
        self.fake.fail_for(seconds, status)

    def stall_for(self, seconds: float, *, apply: bool = False) -> None:
        """Every API call hangs past the bridge's HTTP timeout for `seconds`; with `apply`,
        the fake handles each call before going silent (the write landed, the answer
        did not)."""
        self.fake.stall_for(seconds, hang=5.0, apply=apply)


class ChatwootSide:
    """The Chatwoot adapter against the fake Chatwoot account (tests/support/fake_chatwoot.py).

    Agents reply as one agent, Alice; the bridge hears of it by a signed webhook posted to
    `/webhooks/chatwoot/<token>` (polling is off, so a webhook is the only way).
    """

    name: ClassVar[str] = "chatwoot"
    URL_TOKEN = "reliability-url-token-5c1e8a2f9b7d"
    SIGNING = "reliability-signing-secret-3f9a1c"

    def __init__(self, fake: FakeChatwoot, redis_url: str) -> None:
        self.fake = fake
        self.store = Store(redis.Redis.from_url(redis_url, decode_responses=True))
        self.agent = fake.add_agent("Alice")

    def env(self) -> dict[str, str]:
        return {
            "HELPDESK": "chatwoot",
            "CHATWOOT_URL": self.fake.url,
            "CHATWOOT_ACCOUNT_ID": str(CW_ACCOUNT),
            "CHATWOOT_INBOX_ID": str(CW_INBOX),
            "CHATWOOT_API_TOKEN": self.fake.api_token,
            "CHATWOOT_WEBHOOK_TOKEN": self.URL_TOKEN,
            "CHATWOOT_WEBHOOK_SECRET": self.SIGNING,
            "CHATWOOT_POLL_INTERVAL": "0",
        }

    def tickets(self, cids: list[str]) -> dict[str, list[int]]:
        wanted = set(cids)
        out: dict[str, list[int]] = {cid: [] for cid in cids}
        with self.fake.lock:
            for tid, c in sorted(self.fake.conversations.items()):
                owner = c["custom_attributes"].get("hitl_bridge_conversation")
                if owner in wanted:
                    out[owner].append(tid)
        return out

    def delivered(self, cids: list[str]) -> dict[str, list[str]]:
        """The end user's and the bot's messages, split back into Botpress messages."""
        out: dict[str, list[str]] = {}
        for cid, tids in self.tickets(cids).items():
            texts: list[str] = []
            for tid in tids:
                for m in self.fake.messages_of(tid)[1:]:
                    body = str(m["content"])
                    if m["private"] or m["message_type"] not in (0, 1):
                        continue
                    if m["message_type"] == 1:
                        if m["sender_id"] != CW_API_USER or not body.startswith(BOT_PREFIX):
                            continue
                        body = body.removeprefix(BOT_PREFIX).lstrip(" ")
                    texts += body.split("\n\n")
            out[cid] = texts
        return out

    def tickets_ready(self, cids: list[str]) -> bool:
        tickets = self.tickets(cids)
        if not all(tickets.values()):
            return False
        return all(
            self.store.conversation_for_ticket(str(tids[0])) == cid for cid, tids in tickets.items()
        )

    def ticket(self, cid: str) -> int:
        tids = wait_until(lambda: self.tickets([cid])[cid], 30, f"the conversation of {cid}")
        return int(tids[0])

    def agent_reply(self, load: Load) -> Callable[[str, str], Outcome]:
        def send(cid: str, text: str) -> Outcome:
            self.agent_writes(cid, text)
            path, headers, body = self.webhook(cid)
            try:
                r = load.session().post(
                    f"{load.base}{path}", data=body, headers=headers, timeout=load.timeout
                )
            except requests.RequestException as exc:
                return Outcome(None, type(exc).__name__)
            return Outcome(r.status_code, "" if r.status_code == 200 else r.text[:300])

        return send

    def agent_writes(self, cid: str, text: str) -> None:
        self.fake.agent_reply(self.ticket(cid), self.agent, text)

    def webhook(self, cid: str) -> tuple[str, dict[str, str], bytes]:
        tid = self.ticket(cid)
        headers, body = self.fake.webhook_request(self.fake.conversation_event(tid), secret=None)
        ts = str(int(time.time()))
        headers |= {
            "X-Chatwoot-Timestamp": ts,
            "X-Chatwoot-Signature": cw_sign(self.SIGNING, ts, body),
        }
        return f"/webhooks/chatwoot/{self.URL_TOKEN}", headers, body

    label: ClassVar[str] = "Chatwoot"

    def faults(self) -> list[dict[str, Any]]:
        return list(self.fake.faults)

    def lost_message_writes(self) -> int:
        return _applied(self.fake.faults, "POST", "/messages", 200)

    def duplicate_tickets(self, cids: list[str]) -> dict[str, list[int]]:
        return {cid: tids for cid, tids in self.tickets(cids).items() if len(tids) > 1}

    def fail_for(self, seconds: float, status: int = 503) -> None:
        self.fake.fail_for(seconds, status)

    def stall_for(self, seconds: float, *, apply: bool = False) -> None:
        self.fake.stall_for(seconds, hang=5.0, apply=apply)


class FreshdeskSide:
    """The Freshdesk adapter against the fake Freshdesk account (tests/support/fake_freshdesk.py).

    Agents reply on the fake's tickets as one agent, Alice; the bridge hears of it by the
    automation rule's webhook to its web process, the token in the URL derived from
    BRIDGE_SECRET (polling is off, so a webhook is the only way).
    """

    name: ClassVar[str] = "freshdesk"

    def __init__(self, fake: FakeFreshdesk, redis_url: str, bridge_secret: str) -> None:
        self.fake = fake
        self.store = Store(redis.Redis.from_url(redis_url, decode_responses=True))
        self.agent = fake.add_agent("Alice", "alice@agents.test")
        self.token = derived_token(bridge_secret)

    def env(self) -> dict[str, str]:
        return {
            "HELPDESK": "freshdesk",
            "FRESHDESK_URL": self.fake.url,
            "FRESHDESK_API_KEY": self.fake.api_key,
            "FRESHDESK_POLL_INTERVAL": "0",  # webhooks only: a lost one would show
            # The fake enforces no limit; the API budget has tests of its own.
            "FRESHDESK_RATE_LIMIT": "100000",
        }

    # -- what the bridge wrote ------------------------------------------------------------
    def tickets(self, cids: list[str]) -> dict[str, list[int]]:
        """Conversation id -> the ids of the tickets tagged with it (one, or the bridge
        created a duplicate ticket)."""
        out: dict[str, list[int]] = {cid: [] for cid in cids}
        with self.fake.lock:
            for tid, t in sorted(self.fake.tickets.items()):
                for cid in cids:
                    if f"hitl-{cid}" in t["tags"]:
                        out[cid].append(tid)
        return out

    def delivered(self, cids: list[str]) -> dict[str, list[str]]:
        """The texts of the end user's incoming notes and the bot's private notes, split
        back into messages (one note per batch, joined by blank lines; the bot's start with
        BOT_PREFIX). Agents' entries and the bridge's closing notes are not Botpress's."""
        out: dict[str, list[str]] = {}
        with self.fake.lock:
            for cid, tids in self.tickets(cids).items():
                texts: list[str] = []
                for tid in tids:
                    for c in self.fake.notes(tid):
                        body = str(c["body_text"])
                        if c["incoming"]:
                            texts += body.split("\n\n")
                        elif c["user_id"] == API_AGENT_ID and body.startswith(BOT_PREFIX):
                            texts += body.removeprefix(BOT_PREFIX).lstrip(" ").split("\n\n")
                out[cid] = texts
        return out

    def duplicate_tickets(self, cids: list[str]) -> dict[str, list[int]]:
        return {cid: tids for cid, tids in self.tickets(cids).items() if len(tids) > 1}

    def tickets_ready(self, cids: list[str]) -> bool:
        """Every conversation has its ticket, and the bridge knows it."""
        tickets = self.tickets(cids)
        if not all(tickets.values()):
            return False
        return all(
            self.store.conversation_for_ticket(str(tids[0])) == cid for cid, tids in tickets.items()
        )

    def ticket(self, cid: str) -> int:
        tids = wait_until(lambda: self.tickets([cid])[cid], 30, f"the ticket of {cid}")
        return int(tids[0])

    # -- agents -----------------------------------------------------------------------------
    def agent_reply(self, load: Load) -> Callable[[str, str], Outcome]:
        def send(cid: str, text: str) -> Outcome:
            self.agent_writes(cid, text)
            path, headers, body = self.webhook(cid)
            try:
                r = load.session().post(
                    f"{load.base}{path}", data=body, headers=headers, timeout=load.timeout
                )
            except requests.RequestException as exc:
                return Outcome(None, type(exc).__name__)
            return Outcome(r.status_code, "" if r.status_code == 200 else r.text[:300])

        return send

    def agent_writes(self, cid: str, text: str) -> None:
        self.fake.agent_reply(self.ticket(cid), self.agent, text)

    def webhook(self, cid: str) -> tuple[str, dict[str, str], bytes]:
        body = self.fake.webhook_body(self.ticket(cid))
        return f"/webhooks/freshdesk/{self.token}", {"Content-Type": "application/json"}, body

    label: ClassVar[str] = "Freshdesk"

    def faults(self) -> list[dict[str, Any]]:
        return list(self.fake.faults)

    def lost_message_writes(self) -> int:
        return _applied(self.fake.faults, "POST", "/notes", 201)

    # -- faults -----------------------------------------------------------------------------
    def fail_for(self, seconds: float, status: int = 503) -> None:
        self.fake.fail_for(seconds, status)

    def stall_for(self, seconds: float, *, apply: bool = False) -> None:
        self.fake.stall_for(seconds, hang=5.0, apply=apply)
