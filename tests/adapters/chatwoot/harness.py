"""The conformance kit's harness for Chatwoot: agents act in the fake Chatwoot account."""

from __future__ import annotations

import time

from bridge.helpdesks.conformance import DeskHarness, Webhook
from tests.support.fake_chatwoot import ACCOUNT_ID, FakeChatwoot, sign

FORGER_SECRET = "someone-elses-secret-0123456789"


class ChatwootHarness(DeskHarness):
    """Drives the fake: one agent, Grace; webhooks signed with the secret the fake gave
    the bridge's webhook, posted to `/webhooks/chatwoot/<token>`."""

    coalesces = True

    def __init__(self, fake: FakeChatwoot, env: dict[str, str], url_token: str) -> None:
        self.fake, self._env, self.url_token = fake, env, url_token
        self.agent = fake.add_agent("Grace Agent")
        self.secret = ""

    def env(self) -> dict[str, str]:
        return self._env

    def ticket_count(self) -> int:
        return len(self.fake.conversations)

    def user_count(self) -> int:
        # Stand-ins of hand-offs not yet joined by their end user are not users.
        return sum(
            1
            for c in self.fake.contacts.values()
            if not str(c.get("identifier") or "").startswith("hitl-bridge-conversation:")
        )

    def texts(self, ticket_id: str) -> list[str]:
        return [
            str(m["content"]) for m in self.fake.messages_of(ticket_id) if m["message_type"] != 2
        ]

    def is_closed(self, ticket_id: str) -> bool:
        return bool(self.fake.conversations[int(ticket_id)]["status"] == "resolved")

    def agent_reply(self, ticket_id: str, text: str) -> str:
        self.fake.agent_reply(ticket_id, self.agent, text)
        return str(self.agent)

    def agent_note(self, ticket_id: str, text: str) -> None:
        self.fake.agent_note(ticket_id, self.agent, text)

    def assign(self, ticket_id: str) -> str:
        self.fake.assign(ticket_id, self.agent)
        return str(self.agent)

    def agent_closes(self, ticket_id: str) -> None:
        self.fake.resolve(ticket_id, self.agent)

    def foreign_ticket(self) -> str:
        return str(self.fake.foreign_conversation())

    def _payload(self, ticket_id: str) -> bytes:
        _, body = self.fake.webhook_request(self.fake.conversation_event(ticket_id), secret=None)
        return body

    def webhook(self, ticket_id: str) -> Webhook:
        body = self._payload(ticket_id)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Chatwoot-Timestamp": ts,
            "X-Chatwoot-Signature": sign(self.secret, ts, body) if self.secret else "",
        }
        return Webhook({k: v for k, v in headers.items() if v}, body, self.url_token)

    def forgeries(self, ticket_id: str) -> list[Webhook]:
        genuine = self.webhook(ticket_id)
        body = genuine.body
        ts = str(int(time.time()))
        forged = {
            "Content-Type": "application/json",
            "X-Chatwoot-Timestamp": ts,
            "X-Chatwoot-Signature": sign(FORGER_SECRET, ts, body),
        }
        stale_ts = str(int(time.time()) - 3600)
        stale = {
            **forged,
            "X-Chatwoot-Timestamp": stale_ts,
            "X-Chatwoot-Signature": sign(self.secret or FORGER_SECRET, stale_ts, body),
        }
        other = body.replace(
            f'"id": {int(ticket_id)}'.encode(), f'"id": {int(ticket_id) + 1}'.encode()
        )
        out = [
            Webhook(genuine.headers, body, "wrong-token-0123456789abcdef"),
            Webhook(genuine.headers, body, None),
            Webhook(genuine.headers, b"{not json", "wrong-token-0123456789abcdef"),
        ]
        if self.secret:
            out += [
                Webhook(forged, body, self.url_token),
                Webhook(stale, body, self.url_token),
                Webhook(genuine.headers, other, self.url_token),
                Webhook({"Content-Type": "application/json"}, body, self.url_token),
            ]
        return out

    def writes(self) -> int:
        return self.fake.writes()


__all__ = ["ACCOUNT_ID", "ChatwootHarness"]
