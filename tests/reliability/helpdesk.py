"""The helpdesk side of a reliability test, behind one small interface.

The suite is written against `HelpdeskSide`, so the same tests run on any adapter with a
local fake. `InboxSide` (the built-in inbox, tickets in Redis) runs today. The faults that
need a helpdesk reached over HTTP (503s, timeouts) and signed webhooks need an HTTP side:
`ZendeskSide`, to be bound to tests/support/fake_zendesk.py once the Zendesk adapter is on
main. Until then the tests that need it skip, saying so; nothing stands in for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, cast

import redis

from bridge.config import Settings
from bridge.storage import Store
from tests.reliability.harness import Load, Outcome
from workers.adapters.inbox import InboxHelpdesk


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


class InboxSide:
    """The built-in inbox: tickets live in the bridge's Redis; agents use its API."""

    name: ClassVar[str] = "inbox"

    def __init__(self, redis_url: str, settings: Settings) -> None:
        self.store = Store(redis.Redis.from_url(redis_url, decode_responses=True))
        self.inbox = InboxHelpdesk(settings, self.store)

    def env(self) -> dict[str, str]:
        return {"HELPDESK": "inbox"}

    def _log(self, cid: str) -> list[dict[str, Any]]:
        raw = cast(list[str], self.store.redis.lrange(self.inbox._k("log", cid), 0, -1))
        return [json.loads(e) for e in raw]

    def delivered(self, cids: list[str]) -> dict[str, list[str]]:
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in cids:
            pipe.lrange(self.inbox._k("log", cid), 0, -1)
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
            pipe.exists(self.inbox._k("ticket", cid))
        return all(pipe.execute())

    def agent_reply(self, load: Load) -> Callable[[str, str], Outcome]:
        return load.inbox_reply  # the inbox API records it and rings the doorbell

    def agent_writes(self, cid: str, text: str) -> None:
        self.inbox.agent_action(cid, "message", "alice", text)

    def webhook(self, cid: str) -> tuple[str, dict[str, str], bytes]:
        raise Unsupported("the inbox takes no webhooks: an HTTP helpdesk (Zendesk) is needed")

    def fail_for(self, seconds: float, status: int = 503) -> None:
        raise Unsupported("the inbox is in Redis: an HTTP helpdesk (Zendesk) is needed")

    def stall_for(self, seconds: float) -> None:
        raise Unsupported("the inbox is in Redis: an HTTP helpdesk (Zendesk) is needed")


def zendesk_available() -> str:
    """'' when the Zendesk adapter and its fake are importable, else what is missing."""
    try:
        import tests.support.fake_zendesk  # noqa: F401
        import workers.adapters.zendesk  # noqa: F401
    except ImportError as exc:
        return (
            f"needs the Zendesk adapter and tests/support/fake_zendesk.py (zendesk branch, "
            f"not merged into main yet): {exc}"
        )
    return "ZendeskSide is not bound to fake_zendesk yet (see tests/reliability/helpdesk.py)"
