"""Events and the streams they travel on.

Every piece of work is an event appended to one ordered stream in Redis. A stream's
name says where its events go and which conversation (or user) orders them:

    hd:<conversation id>   Botpress -> helpdesk: ticket creation, messages, close
    hu:<user id>           Botpress -> helpdesk: create or update the end user
    rs:<botpress conv id>  closeRemoteTicket waiting to be resolved to our conversation
    in:<conversation id>   doorbell rings: read what changed on the helpdesk ticket
    bp:<conversation id>   helpdesk -> Botpress: agent messages, assignment, stop
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from bridge import ids, json_codec

# Botpress -> helpdesk
USER_UPSERT: Final = "user.upsert"
CONVERSATION_CREATE: Final = "conversation.create"
MESSAGE: Final = "message"
CONVERSATION_CLOSE: Final = "conversation.close"
CLOSE_RESOLVE: Final = "close.resolve"
# helpdesk -> Botpress
RING: Final = "ring"
AGENT_MESSAGE: Final = "agent.message"
AGENT_ASSIGNED: Final = "agent.assigned"
HITL_STOP: Final = "hitl.stop"

TO_HELPDESK: Final = "hd"
USER: Final = "hu"
RESOLVE: Final = "rs"
INBOUND: Final = "in"
TO_BOTPRESS: Final = "bp"
STREAM_KINDS: Final = (TO_HELPDESK, USER, RESOLVE, INBOUND, TO_BOTPRESS)


def stream(kind: str, owner: str) -> str:
    return f"{kind}:{owner}"


def split_stream(name: str) -> tuple[str, str]:
    """`"hd:c_x"` -> `("hd", "c_x")`; raises ValueError for an unknown kind."""
    kind, sep, owner = name.partition(":")
    if not sep or kind not in STREAM_KINDS or not owner:
        raise ValueError(f"not a stream name: {name!r}")
    return kind, owner


@dataclass(frozen=True)
class Event:
    """One unit of work on a stream. `data` is JSON-serialisable."""

    kind: str
    stream: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=ids.event_id)
    at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json_codec.dumps(
            {
                "id": self.id,
                "kind": self.kind,
                "stream": self.stream,
                "at": self.at,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        d = json_codec.loads(raw)
        return cls(kind=d["kind"], stream=d["stream"], data=d["data"], id=d["id"], at=d["at"])
