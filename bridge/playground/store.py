"""The playground's Redis state: one record and one log per playground conversation.

Keys (also listed in bridge/storage.py's layout), all expiring TTL seconds after the
conversation's last write:

    P:playground:conv:<bpcid>   hash    Botpress's side of one hand-off: bp_user (the minted
                                        Botpress user id), user and conversation (the bridge's
                                        ids, from its routes' answers), name, email, title,
                                        created, ended ('', 'user' or 'agent')
    P:playground:log:<bpcid>    list    what happened, oldest first (JSON): each call the
                                        playground made to the bridge and each webhook event
                                        it received, `{"at", "direction", "route", "body"}`
    P:playground:bridge:<cid>   string  the bridge's conversation id -> <bpcid>
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

from bridge.storage import Store

#: Seconds a playground conversation is kept after its last write.
TTL = 7 * 24 * 3600
#: Entries a playground conversation's log may hold; past it, the page starts no new call.
MAX_LOG = 2000
#: What Botpress's ids look like here: a kind, then 96 random bits.
CONVERSATION_PREFIX = "pg_conv_"
USER_PREFIX = "pg_user_"
SENT, RECEIVED = "sent", "received"


def mint(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(12)}"


@dataclass(frozen=True)
class Session:
    """One playground conversation: Botpress's ids and the bridge's."""

    id: str  # the Botpress conversation id (what closeRemoteTicket names)
    bp_user: str
    user: str
    conversation: str
    name: str
    email: str
    title: str
    created: float
    ended: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "botpressUserId": self.bp_user,
            "userId": self.user,
            "conversationId": self.conversation,
            "name": self.name,
            "email": self.email,
            "title": self.title,
            "ended": self.ended,
        }


class PlaygroundStore:
    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.store = store

    def _k(self, *parts: str) -> str:
        return self.store.key("playground", *parts)

    def create(self, session: Session) -> None:
        fields = {k: str(v) for k, v in asdict(session).items() if k != "id"}
        pipe = self.redis.pipeline()
        pipe.hset(self._k("conv", session.id), mapping=fields)  # type: ignore[arg-type]
        pipe.expire(self._k("conv", session.id), TTL)
        pipe.set(self._k("bridge", session.conversation), session.id, ex=TTL)
        pipe.execute()

    def get(self, bpcid: str) -> Session | None:
        h = cast(dict[str, str], self.redis.hgetall(self._k("conv", bpcid)))
        if not h:
            return None
        return Session(
            id=bpcid,
            bp_user=h.get("bp_user", ""),
            user=h.get("user", ""),
            conversation=h.get("conversation", ""),
            name=h.get("name", ""),
            email=h.get("email", ""),
            title=h.get("title", ""),
            created=float(h.get("created") or 0),
            ended=h.get("ended", ""),
        )

    def for_bridge(self, cid: str) -> str | None:
        """The playground conversation the bridge's conversation `cid` belongs to."""
        found = self.redis.get(self._k("bridge", cid))
        return str(found) if found else None

    def log_length(self, bpcid: str) -> int:
        return int(self.redis.llen(self._k("log", bpcid)))

    def record(
        self, session: Session, direction: str, route: str, body: Any, *, ended: str = ""
    ) -> int:
        """Append one entry to the log (and mark the hand-off ended); its number, from 1."""
        entry = {"at": time.time(), "direction": direction, "route": route, "body": body}
        pipe = self.redis.pipeline()
        pipe.rpush(self._k("log", session.id), json.dumps(entry, separators=(",", ":")))
        if ended:
            pipe.hset(self._k("conv", session.id), "ended", ended)
        for key in (self._k("log", session.id), self._k("conv", session.id)):
            pipe.expire(key, TTL)
        pipe.expire(self._k("bridge", session.conversation), TTL)
        return int(pipe.execute()[0])

    def log(self, bpcid: str, after: int = 0) -> list[dict[str, Any]]:
        """Entries after the first `after`, each with its number `n`."""
        raw = cast(list[str], self.redis.lrange(self._k("log", bpcid), after, -1))
        return [{"n": after + i + 1, **json.loads(r)} for i, r in enumerate(raw)]
