"""Stands in for Botpress: the HITL integration's webhook, and the chat API's getConversation."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Any
from urllib.parse import unquote

from tests.support.http_fake import FakeServer

WEBHOOK_ROUTES = {"message-from-agent", "agent-assigned", "stop-hitl"}
# The exact fields each webhook route takes (the integration validates them).
REQUIRED = {
    "message-from-agent": {"remoteConversationId", "remoteUserId", "messageType", "payload"},
    "agent-assigned": {"remoteConversationId", "remoteUserId"},
    "stop-hitl": {"remoteConversationId"},
}


class FakeBotpress(FakeServer):
    """Webhook at `{url}/hook/<route>`; API at `{url}/v1/chat/conversations/<id>`."""

    def __init__(
        self, *, token: str = "bp-token-123", bot_id: str = "bot-1", port: int = 0
    ) -> None:
        super().__init__(port)
        self.token, self.bot_id = token, bot_id
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []  # accepted webhook calls, in arrival order
        self.attempts: list[dict[str, Any]] = []  # every webhook call, failed ones included
        self.attempt_times: list[float] = []
        self.conversations: dict[str, dict[str, Any]] = {}
        self.api_paths: list[str] = []  # every API path asked for, as sent
        self._failures: list[tuple[int, dict[str, str]]] = []
        self.refuse_until = 0.0
        self.delay = 0.0
        # Outages on Botpress's own clock (time.time()): answer `status` until `fail_until`;
        # hang for `stall_seconds` and then answer 504 without applying until `stall_until`.
        self.fail_until = 0.0
        self.fail_status = 503
        self.stall_until = 0.0
        self.stall_seconds = 0.0

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/hook"

    def fail_next(self, n: int, status: int = 503, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after else {}
        with self.lock:
            self._failures += [(status, headers)] * n

    def by_conversation(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self.lock:
            for r in self.received:
                out[r["body"]["remoteConversationId"]].append(r)
        return out

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(
                f"waited for {count} webhook calls, got {len(self.received)}: {self.received[-5:]}"
            )

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and path.startswith("/hook/"):
            return self._webhook(path.removeprefix("/hook/"), body)
        if method == "GET" and path.startswith("/v1/chat/conversations/"):
            if (
                headers.get("authorization") != f"Bearer {self.token}"
                or headers.get("x-bot-id") != self.bot_id
            ):
                return 401, {}, {"code": 401, "type": "Unauthorized", "message": "bad token"}
            # The route's one parameter, decoded as a router does: "%2F" is part of the id.
            self.api_paths.append(path)
            tail = path.removeprefix("/v1/chat/conversations/")
            conv = None if "/" in tail else self.conversations.get(unquote(tail))
            if conv is None:
                return (
                    404,
                    {},
                    {"code": 404, "type": "ResourceNotFound", "message": "no conversation"},
                )
            return 200, {}, {"conversation": conv}
        return 404, {}, {"message": "not found"}

    def texts(self) -> dict[str, list[str]]:
        """Conversation id -> the text of each agent message received, in arrival order."""
        return {
            cid: [
                r["body"]["payload"].get("text", "")
                for r in calls
                if r["route"] == "message-from-agent"
            ]
            for cid, calls in self.by_conversation().items()
        }

    def _webhook(self, route: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        now = time.time()
        if now < self.fail_until:
            with self.lock:
                self.attempts.append({"route": route, "status": self.fail_status})
            return self.fail_status, {}, {"message": "injected outage"}
        if now < self.stall_until:
            with self.lock:
                self.attempts.append({"route": route, "status": "stalled"})
            time.sleep(self.stall_seconds)  # the caller times out; nothing is applied
            return 504, {}, {"message": "injected stall"}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, {"message": "invalid json"}
        with self.lock:
            self.attempts.append({"route": route, "body": body})
            self.attempt_times.append(time.time())
            if self._failures:
                status, headers = self._failures.pop(0)
                return status, headers, {"message": "injected failure"}
        if route not in WEBHOOK_ROUTES:
            return 404, {}, {"message": f"unknown route {route}"}
        if set(body) != REQUIRED[route]:
            return 400, {}, {"message": f"{route} takes exactly {sorted(REQUIRED[route])}"}
        with self.lock:
            self.received.append({"route": route, "body": body, "at": time.time()})
        return 200, {}, {}
