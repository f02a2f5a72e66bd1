"""The inbox's tickets and their timelines in Redis: the one place that writes them.

Keys, under `P:adapter:inbox:` (bridge/storage.py lists every prefix):

    ticket:<tid>   hash   conversation, subject, description, requester, status (open|closed),
                          assignee, created_at, closed_at, and the summary the queue shows:
                          last_text, last_by, last_author, last_at, waiting_since (when the
                          end user's oldest unanswered message came; '' once an agent
                          answered), incoming (end-user, bot and history messages so far),
                          v (the inbox version its latest change moved the inbox to)
    log:<tid>      list   the timeline, oldest first: JSON entries (`entry`)
    tickets        zset   every ticket id by creation time
    open           zset   open ticket ids by creation time
    closed         zset   closed ticket ids by closing time
    users          hash   bridge user id -> JSON profile (name, email, picture_url)
    agents         hash   agent name -> password hash and version (agents.py)
    seen:<agent>   hash   ticket id -> `incoming` when the agent last looked (unread counts)
    replies        hash   saved reply title -> text, shared by the team
    file:<fid>     hash   a file an agent sent (name, type, data); expires (files.py)
    version        string bumped by every change: open consoles poll it to know when to refresh

A ticket's id is its conversation id. Entries written for Botpress carry the event id,
which makes those writes idempotent. Entry kinds: `message` (by history, bot, end_user or
agent), `note` (agents only, never leaves the inbox), `assign` (`assignee` = the agent
given the ticket, `author` = who gave it), `close`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, cast

from bridge.redis_client import Script
from bridge.storage import Store

#: How far back an idempotency check looks for an event already written.
LOOKBACK = 200
#: Who writes incoming messages: what the agents answer.
INCOMING = ("end_user", "bot", "history")

# KEYS: ticket, log, version, open, closed
# ARGV: tid, requester ('' keep), close ('1'), assignee ('' keep), incoming count,
#       waiting ('set' | 'clear' | ''), at, last (JSON of the summary's last_* or ''),
#       open only ('1': refuse a closed ticket), entries...
# -> 1 written, 0 no such ticket, -1 closed (with open only)
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[9] == '1' and redis.call('HGET', KEYS[1], 'status') == 'closed' then return -1 end
local t, at = ARGV[1], ARGV[7]
if #ARGV > 9 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 10)) end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'requester') == false then
  redis.call('HSET', KEYS[1], 'requester', ARGV[2])
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'assignee', ARGV[4]) end
if ARGV[5] ~= '0' then redis.call('HINCRBY', KEYS[1], 'incoming', ARGV[5]) end
if ARGV[6] == 'set' then
  if (redis.call('HGET', KEYS[1], 'waiting_since') or '') == '' then
    redis.call('HSET', KEYS[1], 'waiting_since', at)
  end
elseif ARGV[6] == 'clear' then
  redis.call('HSET', KEYS[1], 'waiting_since', '')
end
if ARGV[8] ~= '' then
  local last = cjson.decode(ARGV[8])
  redis.call('HSET', KEYS[1], 'last_text', last[1], 'last_by', last[2], 'last_author', last[3],
             'last_at', at)
end
if ARGV[3] == '1' and redis.call('HGET', KEYS[1], 'status') ~= 'closed' then
  redis.call('HSET', KEYS[1], 'status', 'closed', 'closed_at', at)
  redis.call('ZREM', KEYS[4], t)
  redis.call('ZADD', KEYS[5], at, t)
end
redis.call('HSET', KEYS[1], 'v', redis.call('INCR', KEYS[3]))
return 1
"""

# KEYS: ticket, log, version, tickets, open; ARGV: tid, created_at, fields JSON, entries...
# -> 0 when the ticket existed already (nothing written)
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
if #ARGV > 3 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 4)) end
redis.call('HSET', KEYS[1], 'v', redis.call('INCR', KEYS[3]))
return 1
"""


def entry(kind: str, by: str, author: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "by": by, "author": author, "at": time.time(), **fields}


def _dump(e: dict[str, Any]) -> str:
    return json.dumps(e, ensure_ascii=False, separators=(",", ":"))


class Timeline:
    """Tickets, their timelines and the queue summary, kept consistent by two scripts."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis: Any = store.redis
        self._record = Script(store.redis, _RECORD)
        self._create = Script(store.redis, _CREATE)

    def k(self, *parts: str) -> str:
        return self.store.key("adapter", "inbox", *parts)

    def create(
        self, tid: str, fields: dict[str, str], created_at: float, history: Sequence[dict[str, Any]]
    ) -> bool:
        """A new open ticket with its first entries; False (nothing written) if it exists."""
        # The end user waits for an agent from the moment of the hand-off.
        summary = dict(fields, status="open", created_at=repr(created_at))
        summary["waiting_since"] = repr(created_at)
        if history:
            summary.update(incoming=str(len(history)), **_last(history[-1]))
        keys = [self.k("ticket", tid), self.k("log", tid), self.k("version")]
        keys += [self.k("tickets"), self.k("open")]
        args = [tid, repr(created_at), json.dumps(summary), *map(_dump, history)]
        return bool(self._create(keys=keys, args=args))

    def record(
        self,
        tid: str,
        entries: Sequence[dict[str, Any]],
        *,
        requester: str = "",
        close: bool = False,
        assignee: str = "",
        open_only: bool = False,
    ) -> int:
        """Append `entries` and update the ticket's summary in one step: 1 when written, 0
        when there is no such ticket, -1 when it is closed and `open_only` asked otherwise."""
        incoming = sum(1 for e in entries if e["kind"] == "message" and e["by"] in INCOMING)
        waiting = ""
        messages = [e for e in entries if e["kind"] == "message"]
        for e in messages:
            waiting = "clear" if e["by"] == "agent" else "set" if e["by"] == "end_user" else waiting
        last = json.dumps(list(_last(messages[-1]).values())[:3]) if messages else ""
        keys = [self.k("ticket", tid), self.k("log", tid), self.k("version")]
        keys += [self.k("open"), self.k("closed")]
        at = repr(entries[-1]["at"] if entries else time.time())
        args = [tid, requester, "1" if close else "", assignee, str(incoming), waiting, at, last]
        args.append("1" if open_only else "")
        return int(self._record(keys=keys, args=[*args, *map(_dump, entries)]))

    def written(self, tid: str, event_id: str) -> bool:
        """Whether an entry for this Botpress event is among the ticket's latest."""
        tail = cast(list[str], self.redis.lrange(self.k("log", tid), -LOOKBACK, -1))
        return any(json.loads(e).get("event") == event_id for e in tail)

    def version(self) -> int:
        return int(cast(str | None, self.redis.get(self.k("version"))) or 0)


def _last(e: dict[str, Any]) -> dict[str, str]:
    return {
        "last_text": str(e.get("text", ""))[:500],
        "last_by": e["by"],
        "last_author": e["author"],
        "last_at": repr(e["at"]),
    }
