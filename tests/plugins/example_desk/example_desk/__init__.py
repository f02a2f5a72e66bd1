"""Example Desk behind the bridge's helpdesk interface (HELPDESK=example).

Example Desk is a made-up helpdesk with a small REST API (tests/fake_desk.py serves it):
bearer-token auth; contacts found by `external_id`; tickets and messages carrying an
`external_key` the adapter chooses, so a retry can find what already landed; an activity
feed per ticket numbered by `seq`; webhooks signed with HMAC-SHA256 of the body.

    EXAMPLE_DESK_URL             the API's base URL
    EXAMPLE_DESK_TOKEN           bearer token
    EXAMPLE_DESK_WEBHOOK_SECRET  the secret webhooks are signed with
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bridge import http_client as http
from bridge.config import Settings
from bridge.errors import PermanentError, TransientError, WebhookRejected
from bridge.helpdesks.base import (
    AgentAssigned,
    AgentMessage,
    Author,
    Change,
    Changes,
    Helpdesk,
    OutboundMessage,
    TicketClosed,
    TicketRequest,
)
from bridge.helpdesks.render import BOT_PREFIX, history_text, render
from bridge.storage import Conversation, Store, User

VARIABLES = ("EXAMPLE_DESK_URL", "EXAMPLE_DESK_TOKEN", "EXAMPLE_DESK_WEBHOOK_SECRET")


class ExampleDesk(Helpdesk):
    name = "example"

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, store)
        env = settings.environ
        self.base = env["EXAMPLE_DESK_URL"].rstrip("/")
        self.secret = env["EXAMPLE_DESK_WEBHOOK_SECRET"].encode()
        self.client = http.Client()
        self.client.headers["Authorization"] = f"Bearer {env['EXAMPLE_DESK_TOKEN']}"

    @classmethod
    def config_problems(cls, environ: Mapping[str, str]) -> list[str]:
        return [
            f"{name} is required for HELPDESK=example"
            for name in VARIABLES
            if not environ.get(name)
        ]

    @property
    def poll_interval(self) -> float:
        return 30.0

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        resp = http.request(
            self.client,
            method,
            self.base + path,
            what=f"Example Desk {method} {path.split('?')[0]}",
            timeout=self.settings.http_timeout,
            json=body,
        )
        return resp.json() if resp.content else None

    # -- Botpress -> helpdesk -----------------------------------------------------------
    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        # Looked up every time: the external id makes the write idempotent by itself.
        fields = {"name": user.name, "email": user.email, "avatar_url": user.picture_url}
        found = self._call("GET", f"/contacts?external_id={quote(user.id)}")["contacts"]
        if found:
            cid = str(found[0]["id"])
            self._call("PATCH", f"/contacts/{cid}", fields)
            return cid
        created = self._call("POST", "/contacts", {"external_id": user.id, **fields})
        return str(created["contact"]["id"])

    def create_ticket(
        self,
        conv: Conversation,
        request: TicketRequest,
        *,
        idempotency_key: str,
        maybe_applied: bool,
    ) -> str:
        if maybe_applied:
            found = self._call("GET", f"/tickets?external_key={quote(idempotency_key)}")
            if found["tickets"]:
                return str(found["tickets"][0]["id"])
        history = [(h.text, h.author, h.timestamp) for h in request.history]
        body = {
            "subject": request.title or "Botpress conversation",
            "body": history_text(request.description, history),
            "external_key": idempotency_key,
            "contact_id": request.requester.helpdesk_id if request.requester else None,
        }
        return str(self._call("POST", "/tickets", body)["ticket"]["id"])

    def append_messages(
        self,
        conv: Conversation,
        author: Author,
        messages: Sequence[OutboundMessage],
        *,
        maybe_applied: bool,
    ) -> None:
        tid = conv.ticket_id
        if maybe_applied:
            landed = self._call("GET", f"/tickets/{tid}/messages")["messages"]
            keys = {m.get("external_key") for m in landed}
            messages = [m for m in messages if m.event_id not in keys]
        sender = "bot" if author.kind == "bot" else "customer"
        for m in messages:  # one message each: Example Desk shows them one by one
            rendered = render(m.message_type, m.payload)
            # Example Desk takes no attachments: every file is written as its link.
            text = rendered.body(failed=range(len(rendered.files)))
            if sender == "bot":
                text = f"{BOT_PREFIX} {text}"
            body = {"body": text, "from": sender, "external_key": m.event_id}
            self._call("POST", f"/tickets/{tid}/messages", body)

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        # Closing a closed ticket changes nothing: idempotent without a check.
        self._call("PATCH", f"/tickets/{conv.ticket_id}", {"status": "closed"})

    # -- helpdesk -> Botpress -----------------------------------------------------------
    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        after = int(cursor or 0)
        feed = self._call("GET", f"/tickets/{conv.ticket_id}/activity?after={after}")["activity"]
        items: list[Change] = []
        for a in feed:
            after = max(after, int(a["seq"]))
            if a.get("by") != "agent":
                continue  # the bridge's own writes (invariant 6)
            agent = str(a.get("agent_id", ""))
            if a["type"] == "message":
                items.append(AgentMessage(agent, "text", {"text": str(a.get("body", ""))}))
            elif a["type"] == "assigned":
                items.append(AgentAssigned(agent))
            elif a["type"] == "closed":
                items.append(TicketClosed())
            # "note": private, for agents only
        return Changes(items, str(after))

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, url_token: str | None = None
    ) -> list[str]:
        given = headers.get("x-desk-signature", "")
        wanted = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            raise WebhookRejected("X-Desk-Signature does not match the body", status=401)
        try:
            ticket = json.loads(body)["ticket_id"]
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("the body has no ticket_id", status=400) from None
        return [str(ticket)]

    def check(self) -> list[str]:
        try:
            self._call("GET", "/me")
        except (PermanentError, TransientError) as exc:
            return [f"Example Desk: {exc}"]
        return []
