"""The inbox's agents: names and salted password hashes, kept in the inbox's own keys.

    P:adapter:inbox:agents   hash   agent name -> JSON {"hash": werkzeug's salted hash,
                                    "v": version, "created": epoch seconds}

`v` moves on with every password change, so whatever was granted under the old password
(a console session) can be told apart and refused. An agent's name is its stable id: it
reaches Botpress as `agent:inbox:<name>` (workers/botpress.py).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import cast

from werkzeug.security import check_password_hash, generate_password_hash

from bridge.storage import Store

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
# Checked when a name is unknown, so a login takes as long whether or not the agent exists.
_DUMMY_HASH = generate_password_hash("no agent has this password")


class AgentError(ValueError):
    """A request about agents that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Agent:
    name: str
    version: int
    created: float


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise AgentError(
            "an agent's name is 1 to 64 characters: lower-case letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AgentError(f"a password has at most {MAX_PASSWORD} characters")
    return password


class Agents:
    """The inbox's agents in Redis."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.key = store.key("adapter", "inbox", "agents")

    def _record(self, version: int, password: str, created: float) -> str:
        return json.dumps(
            {"hash": generate_password_hash(password), "v": version, "created": created}
        )

    def _get(self, name: str) -> dict[str, object] | None:
        raw = cast(str | None, self.store.redis.hget(self.key, name))
        return cast(dict[str, object], json.loads(raw)) if raw else None

    def add(self, name: str, password: str) -> Agent:
        """A new agent; AgentError when the name is taken or either is not acceptable."""
        check_name(name)
        check_password(password)
        created = time.time()
        if not self.store.redis.hsetnx(self.key, name, self._record(1, password, created)):
            raise AgentError(f"agent {name} exists already (change a password with 'password')")
        return Agent(name, 1, created)

    def set_password(self, name: str, password: str) -> Agent:
        """A new password for an agent: what the old one granted ends."""
        check_password(password)
        found = self._get(name)
        if found is None:
            raise AgentError(f"no agent {name}")
        version = int(cast(int, found.get("v", 1))) + 1
        created = float(cast(float, found.get("created", 0)))
        self.store.redis.hset(self.key, name, self._record(version, password, created))
        return Agent(name, version, created)

    def remove(self, name: str) -> bool:
        return bool(self.store.redis.hdel(self.key, name))

    def list(self) -> list[Agent]:
        raw = cast(dict[str, str], self.store.redis.hgetall(self.key))
        agents = []
        for name, record in sorted(raw.items()):
            d = json.loads(record)
            agents.append(Agent(name, int(d.get("v", 1)), float(d.get("created", 0))))
        return agents

    def version(self, name: str) -> int | None:
        """The agent's current version, None when there is no such agent."""
        found = self._get(name)
        return None if found is None else int(cast(int, found.get("v", 1)))

    def verify(self, name: str, password: str) -> Agent | None:
        """The agent when `password` is theirs, else None (in about the same time)."""
        found = self._get(name) if NAME_RE.fullmatch(name) else None
        stored = str(found["hash"]) if found is not None else _DUMMY_HASH
        if not check_password_hash(stored, password[:MAX_PASSWORD]) or found is None:
            return None
        return Agent(name, int(cast(int, found.get("v", 1))), float(cast(float, found["created"])))
