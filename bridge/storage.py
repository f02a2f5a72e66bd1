"""Everything the bridge keeps in Redis, and the one place its key layout is written down.

Key layout (`P` is REDIS_KEY_PREFIX, default `hb`; streams are named in bridge/events.py):

    P:q:<stream>        list    the stream's events, oldest first (JSON, bridge.events.Event)
    P:head:<stream>     hash    delivery state of the head event: id, attempts, crashes,
                                first_failed, due, error, response, sending (start of a send
                                that has no outcome yet: set means a worker died mid-send),
                                unsure (a try timed out after sending: it may have landed),
                                faults (tries that failed with an unexpected error)
    P:lease:<stream>    string  token of the worker draining the stream (expires, renewed)
    P:kick:<stream>     string  the stream is already waiting in P:ready or for a drain task
                                (expires, so a lost wake-up heals by itself)
    P:ready             list    streams woken and waiting for a pump, oldest first
    P:pumps             zset    pump id -> heartbeat epoch: pump tasks running or published;
                                entries older than PUMP_TTL are dead and pruned
    P:pumps:max         string  how many pumps may run at once, written by each worker as it
                                starts (its PUMPS); callers that never saw a worker (the web)
                                fall back on their own setting
    P:pending           set     streams that hold events (the sweeper's safety net)
    P:due               zset    stream -> epoch seconds when its deferred head is due again
    P:conv:<cid>        hash    conversation record (see Conversation)
    P:user:<uid>        hash    end-user record (see User)
    P:open              zset    open conversation ids by creation time (polling)
    P:ticket:<tid>      string  helpdesk ticket id -> conversation id
    P:bpconv:<bpcid>    string  Botpress conversation id -> conversation id (resolution cache)
    P:dlq               hash    dead-letter id -> JSON (event, stream, reason, response, attempts)
    P:dlq:order         zset    dead-letter id by time
    P:stats             hash    system-wide delivery counters and latency buckets, written by
                                the ack/defer/dead-letter scripts (fields: bridge/stats.py)
    P:hist:<cid>        list    the conversation's last HISTORY_CAP delivery outcomes, compact
                                `at|outcome|attempts|stream kind|event kind|event id` strings
                                (bridge/stats.py), written by the ack/dead-letter scripts
    P:fails:<scope>:<client address>
                        string  failed credential attempts from one client in the current
                                window (expires with the window; bridge/web/auth.py)
    P:webhook:<helpdesk>:<delivery id>
                        string  a verified helpdesk webhook delivery already rung (expires
                                after WEBHOOK_MEMORY seconds): its retries ring nothing new
    P:adapter:<name>:*  any     owned by that helpdesk adapter; the inbox lists its keys in
                                bridge/helpdesks/inbox/timeline.py (tickets, agents, files),
                                Zendesk in bridge/helpdesks/zendesk/state.py (cursors, OAuth
                                token pairs)

  PLAYGROUND=1 only (bridge/playground/store.py; each expires 7 days after its last write;
  <bpcid> is the Botpress conversation id the playground minted, `pg_conv_...`):
    P:playground:conv:<bpcid>
                        hash    Botpress's side of one hand-off: bp_user (the minted Botpress
                                user id), user and conversation (the bridge's ids, from its
                                routes' answers), name, email, title, created, ended ('',
                                'user' or 'agent')
    P:playground:log:<bpcid>
                        list    what happened in it, oldest first (JSON `{at, direction, route,
                                body}`): each call made to the bridge's routes ("sent") and each
                                webhook event the bridge posted to the playground ("received")
    P:playground:bridge:<cid>
                        string  the bridge's conversation id -> <bpcid> (webhook events name it)

Writes that must happen together are single Lua scripts, so a crash between two commands
can never leave half an operation behind.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import redis

from bridge import ids, stats
from bridge.events import Event, split_stream
from bridge.redis_client import Script, connect

if TYPE_CHECKING:
    from bridge.config import Settings

KICK_TTL_MS = 30_000
#: How long a helpdesk webhook's delivery id is remembered (Zendesk retries within minutes).
WEBHOOK_MEMORY = 600
#: Seconds after its last heartbeat that a pump counts as dead (a worker killed under it).
PUMP_TTL = 30.0
#: Idle pumps of one process that wait in Redis at once, at most (`Store.next_ready`).
WAITING_PUMPS = 8

# Waking a stream: the first event while the stream is asleep puts it on P:ready, and a
# pump is reserved when fewer than the configured number are alive, so the caller knows to
# start one. Scripts that wake streams end with this function; `wake` is their last
# argument group: ready key, pumps key, now, pump ttl, max pumps, new pump id.
# The limit the workers announced wins over the caller's: only they know their concurrency.
_WAKE = """
local function reserve_pump(ready, pumps, now, ttl, max, id)
  redis.call('ZREMRANGEBYSCORE', pumps, '-inf', tonumber(now) - tonumber(ttl))
  local limit = tonumber(redis.call('GET', pumps .. ':max')) or tonumber(max)
  if redis.call('ZCARD', pumps) < limit then
    redis.call('ZADD', pumps, now, id)
    return id
  end
  return ''
end
"""

# KEYS: queue, pending, kick, ready, pumps, [keys that must exist...]
# ARGV: stream, event json, kick ttl ms, now, pump ttl, max pumps, new pump id
# Returns {status, pump id to start or ''}; status 1 appended, -i: required key i is missing.
_ENQUEUE = (
    _WAKE
    + """
for i = 6, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return {-(i - 5), ''} end
end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  return {1, reserve_pump(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7])}
end
return {1, ''}
"""
)

# Wake a stream that already holds events (sweeper, due retries, a drain handing back).
# KEYS: kick, ready, pumps; ARGV: stream, kick ttl ms, now, pump ttl, max pumps, new pump id
_KICK = (
    _WAKE
    + """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return {1, reserve_pump(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5], ARGV[6])}
end
return {0, ''}
"""
)

# Start a pump if streams wait and too few pumps are alive (beat, as a safety net).
# KEYS: ready, pumps; ARGV: now, pump ttl, max pumps, new pump id
_ENSURE_PUMP = (
    _WAKE
    + """
if redis.call('LLEN', KEYS[1]) == 0 then return '' end
return reserve_pump(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""
)

# A pump with nothing to do leaves, unless a stream was woken meanwhile.
# KEYS: ready, pumps; ARGV: pump id, now. Returns 1: gone, 0: stay (work arrived).
_RETIRE_PUMP = """
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 0
end
return 1
"""

# A ring is only worth queueing when fewer than two are waiting: the one being read may
# have missed this change, a second one will not.
# KEYS: queue, pending, kick, ready, pumps
# ARGV: stream, event json, kick ttl ms, now, pump ttl, max pumps, new pump id
_RING = (
    _WAKE
    + """
if redis.call('LLEN', KEYS[1]) >= 2 then return {0, ''} end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  return {1, reserve_pump(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7])}
end
return {1, ''}
"""
)

# Start (or decline) a delivery attempt of the head event, renewing the lease.
# Returns {status, attempts, crashes, first_failed, due, faults}; status: 0 not due yet,
# 1 go (first try or retry), 2 go, but a previous send never finished.
_BEGIN_FN = """
local function begin(lease, head, head_id, lease_ms, now, renew)
  if renew then redis.call('PEXPIRE', lease, lease_ms) end
  local h = redis.call('HGETALL', head)
  local s = {}
  for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
  if s['id'] ~= head_id then
    -- A new head (the usual case): its first attempt starts now, in one write.
    if #h > 0 then redis.call('DEL', head) end
    redis.call('HSET', head, 'id', head_id, 'attempts', 1, 'sending', now)
    return {1, 1, 0, '0', '0', 0}
  end
  if tonumber(s['due'] or '0') > tonumber(now) then
    return {0, tonumber(s['attempts'] or '0'), tonumber(s['crashes'] or '0'),
            s['first_failed'] or '0', s['due'], tonumber(s['faults'] or '0')}
  end
  local status = 1
  local crashes = tonumber(s['crashes'] or '0')
  local attempts = tonumber(s['attempts'] or '0') + 1
  if s['sending'] then
    status = 2
    crashes = crashes + 1
    redis.call('HSET', head, 'attempts', attempts, 'sending', now, 'crashes', crashes)
  else
    if s['unsure'] then status = 2 end  -- a try timed out after sending: it may have landed
    redis.call('HSET', head, 'attempts', attempts, 'sending', now)
  end
  if s['due'] then redis.call('HDEL', head, 'due') end
  return {status, attempts, crashes, s['first_failed'] or '0', '0', tonumber(s['faults'] or '0')}
end
"""

# Peek the head and what follows it, begin the head's attempt, and read the records the
# head names (its conversation, and the user in its `author` field): the top of a delivery
# step, run by _TAKE and, for the next head, by _ACK.
# Returns begin's answer, the conversation and the user as JSON objects ('{}': none), then
# the peeked events; {-4} when nothing waits.
_TAKE_FN = (
    _BEGIN_FN
    + """
local function record(key)
  local h = redis.call('HGETALL', key)
  if #h == 0 then return '{}' end
  local t = {}
  for i = 1, #h, 2 do t[h[i]] = h[i + 1] end
  return cjson.encode(t)
end
local function take_head(lease, head_key, queue, conv_key, lease_ms, now, peek, renew, users)
  local events = redis.call('LRANGE', queue, 0, tonumber(peek) - 1)
  if #events == 0 then return {-4} end
  local head = cjson.decode(events[1])
  local r = begin(lease, head_key, head['id'], lease_ms, now, renew)
  local conv, user = '{}', '{}'
  if users ~= '' then
    conv = record(conv_key)
    local author = type(head['data']) == 'table' and head['data']['author']
    if type(author) == 'string' and author ~= '' then user = record(users .. author) end
  end
  table.insert(r, conv)
  table.insert(r, user)
  for i = 1, #events do table.insert(r, events[i]) end
  return r
end
"""
)

# One round trip at the top of each delivery: (take the lease,) then take_head.
# KEYS: lease, head, queue, kick, conversation record (or a key that does not exist)
# ARGV: token, lease ms, now, peek count, acquire (1/0), user record key prefix ('': none)
# Returns take_head's answer; or {-3} busy (another worker holds the lease), {-1} lease
# lost, {-4} nothing waiting.
_TAKE = (
    _TAKE_FN
    + """
local acquire = ARGV[5] == '1'
if acquire then
  redis.call('DEL', KEYS[4])
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {-3} end
elseif redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1}
end
-- A lease just taken needs no renewal: SET gave it its full time.
return take_head(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[2], ARGV[3], ARGV[4], not acquire,
                 ARGV[6])
"""
)

# Consume the first n events (delivered) and append what they produced, atomically. When
# that empties the stream, the lease goes too (and the kick marker, so the next event wakes
# the stream at once): the drain has nothing left to do, and no round trip to let go.
# Otherwise, when the drain goes on (a peek count > 0), the next head is taken in the same
# round trip.
# KEYS: queue, head, lease, pending, due, record, index, stats, history, ready, pumps, kick,
#       conversation record (or a key that does not exist), then (out queue, out kick) pairs
# ARGV: token, n, head id, stream, kick ttl ms, record updates (json [f, v, ...]),
#       index value ('' for none), stats increments (json [f, n, ...]), float stats
#       increments (json [f, x, ...]), history entries (json [...]), history cap,
#       now, pump ttl, max pumps, new pump id, deferred before (1/0), next peek count
#       (0: stop here), lease ms, user record key prefix ('': none), then (out stream,
#       out json) pairs
# Returns {status, pump id to start or '', events left, take_head's answer...}; status 1
# ok, -1 lease lost, -2 head moved. Events left 0: the lease was released.
_ACK = (
    _WAKE
    + _TAKE_FN
    + """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {-1, '', 0} end
local first = redis.call('LINDEX', KEYS[1], 0)
if (not first) or cjson.decode(first)['id'] ~= ARGV[3] then return {-2, '', 0} end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('SREM', KEYS[4], ARGV[4])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[12])  -- head, lease and kick marker at once
else
  redis.call('DEL', KEYS[2])
end
if ARGV[16] == '1' then redis.call('ZREM', KEYS[5], ARGV[4]) end
local updates = cjson.decode(ARGV[6])
if #updates > 0 then redis.call('HSET', KEYS[6], unpack(updates)) end
if ARGV[7] ~= '' then redis.call('SET', KEYS[7], ARGV[7]) end
local incr = cjson.decode(ARGV[8])
for i = 1, #incr, 2 do redis.call('HINCRBY', KEYS[8], incr[i], incr[i + 1]) end
local fincr = cjson.decode(ARGV[9])
for i = 1, #fincr, 2 do redis.call('HINCRBYFLOAT', KEYS[8], fincr[i], fincr[i + 1]) end
local hist = cjson.decode(ARGV[10])
if #hist > 0 then
  redis.call('RPUSH', KEYS[9], unpack(hist))
  redis.call('LTRIM', KEYS[9], -tonumber(ARGV[11]), -1)
end
local woke = false
local k = 14
for i = 20, #ARGV, 2 do
  redis.call('RPUSH', KEYS[k], ARGV[i + 1])
  redis.call('SADD', KEYS[4], ARGV[i])
  if redis.call('SET', KEYS[k + 1], '1', 'NX', 'PX', ARGV[5]) then
    redis.call('RPUSH', KEYS[10], ARGV[i])
    woke = true
  end
  k = k + 2
end
local pump = ''
if woke then pump = reserve_pump(KEYS[10], KEYS[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]) end
local r = {1, pump, left}
if left > 0 and tonumber(ARGV[17]) > 0 then
  local nxt = take_head(KEYS[3], KEYS[2], KEYS[1], KEYS[13], ARGV[18], ARGV[12], ARGV[17], true,
                        ARGV[19])
  for i = 1, #nxt do table.insert(r, nxt[i]) end
end
return r
"""
)

# Put the head off until `due` after a failure worth another try.
# KEYS: lease, head, due, stats; ARGV: token, head id, due, error, response, now, stream,
# retry counter field, unsure (1/0), fault (1/0: the failure was an unexpected error)
_DEFER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'id') ~= ARGV[2] then return -2 end
redis.call('HDEL', KEYS[2], 'sending')
if ARGV[9] == '1' then redis.call('HSET', KEYS[2], 'unsure', '1') end
if ARGV[10] == '1' then redis.call('HINCRBY', KEYS[2], 'faults', 1) end
redis.call('HSETNX', KEYS[2], 'first_failed', ARGV[6])
redis.call('HSET', KEYS[2], 'due', ARGV[3], 'error', ARGV[4], 'response', ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[7])
redis.call('HINCRBY', KEYS[4], ARGV[8], 1)
return 1
"""

# Move the head event to the dead letters.
# KEYS: queue, head, lease, pending, due, dlq, dlq order, stats, history; ARGV: token,
# head id, stream, dead-letter id, dead-letter json (without the event), now, dead-letter
# counter field, history entry before and after its attempt count ('' for none), history cap
_DEAD_LETTER = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local first = redis.call('LINDEX', KEYS[1], 0)
if (not first) or cjson.decode(first)['id'] ~= ARGV[2] then return -2 end
redis.call('LPOP', KEYS[1])
local entry = cjson.decode(ARGV[5])
entry['event'] = cjson.decode(first)
local attempts = redis.call('HGET', KEYS[2], 'attempts')
entry['attempts'] = tonumber(attempts or '0')
redis.call('HSET', KEYS[6], ARGV[4], cjson.encode(entry))
redis.call('ZADD', KEYS[7], ARGV[6], ARGV[4])
redis.call('HINCRBY', KEYS[8], ARGV[7], 1)
if ARGV[8] ~= '' then
  redis.call('RPUSH', KEYS[9], ARGV[8] .. entry['attempts'] .. ARGV[9])
  redis.call('LTRIM', KEYS[9], -tonumber(ARGV[10]), -1)
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[5], ARGV[3])
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[3]) end
return 1
"""

# Count a failed attempt in a fixed window that starts with the first failure.
# KEYS: counter; ARGV: window seconds. Returns the count so far.
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# KEYS: lease; ARGV: token
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Let go of a drained stream and say what is left: {events waiting, due time or '0'}.
# KEYS: lease, queue, due; ARGV: token, stream
_LET_GO = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return {redis.call('LLEN', KEYS[2]), redis.call('ZSCORE', KEYS[3], ARGV[2]) or '0'}
"""


class NotFound(Exception):
    """A record an operation depends on does not exist; `what` names it."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)


@dataclass(frozen=True)
class Conversation:
    id: str
    created_at: float
    title: str = ""
    description: str = ""
    status: str = "open"
    requester: str = ""
    ticket_id: str = ""
    botpress_conversation_id: str = ""
    cursor: str = ""

    @classmethod
    def from_hash(cls, cid: str, h: Mapping[str, str]) -> Conversation:
        return cls(
            id=cid,
            created_at=float(h.get("created_at", "0")),
            title=h.get("title", ""),
            description=h.get("description", ""),
            status=h.get("status", "open"),
            requester=h.get("requester", ""),
            ticket_id=h.get("ticket_id", ""),
            botpress_conversation_id=h.get("botpress_conversation_id", ""),
            cursor=h.get("cursor", ""),
        )


@dataclass(frozen=True)
class User:
    id: str
    name: str = ""
    email: str = ""
    picture_url: str = ""
    role: str = "end-user"
    extra: dict[str, Any] = field(default_factory=dict)
    helpdesk_id: str = ""

    def to_hash(self) -> dict[str, str]:
        return {
            "name": self.name,
            "email": self.email,
            "picture_url": self.picture_url,
            "role": self.role,
            "extra": json.dumps(self.extra, separators=(",", ":")),
            "helpdesk_id": self.helpdesk_id,
        }

    @classmethod
    def from_hash(cls, uid: str, h: Mapping[str, str]) -> User:
        return cls(
            id=uid,
            name=h.get("name", ""),
            email=h.get("email", ""),
            picture_url=h.get("picture_url", ""),
            role=h.get("role", "end-user"),
            extra=json.loads(h.get("extra") or "{}"),
            helpdesk_id=h.get("helpdesk_id", ""),
        )


@dataclass(frozen=True)
class Head:
    """What `Store.begin` learned about the head event of a stream."""

    status: int  # -1 lease lost, 0 not due yet, 1 go, 2 go after a send that never finished
    attempts: int
    crashes: int
    first_failed: float
    due: float
    faults: int = 0  # earlier tries that failed with an unexpected error
    #: The head's conversation and author records as stored ({} when absent), read in the
    #: same round trip when `take` was asked for them (`records=True`), else None.
    conversation: Mapping[str, str] | None = None
    author: Mapping[str, str] | None = None

    @property
    def maybe_applied(self) -> bool:
        """A previous send of this event started and never reported back."""
        return self.status == 2

    @classmethod
    def parse(cls, r: Sequence[Any]) -> Head:
        return cls(
            int(r[0]), int(r[1]), int(r[2]), float(r[3] or 0), float(r[4] or 0), int(r[5] or 0)
        )


#: `Store.take` statuses beyond Head's: another worker drains it, lease lost, nothing waits.
BUSY, LOST, EMPTY = -3, -1, -4


@dataclass(frozen=True)
class Take:
    """The top of one delivery step: the head's state and the events peeked behind it."""

    status: int  # BUSY, LOST, EMPTY, or Head.status
    head: Head | None = None
    events: Sequence[Event] = ()

    @classmethod
    def parse(cls, r: Sequence[Any], records: bool) -> Take:
        """From take_head's answer (bridge/storage.py's Lua)."""
        if int(r[0]) < 0 and len(r) == 1:
            return cls(int(r[0]))
        head = Head.parse(r[:6])
        if records:
            head = replace(head, conversation=json.loads(r[6]), author=json.loads(r[7]))
        return cls(int(r[0]), head, [Event.from_json(e) for e in r[8:]])


class Acked(NamedTuple):
    """What `Store.ack` did: a pump to start (or ''), the events left on the stream, and
    the next step's `Take` when it was asked to go on (None: not asked, or nothing left)."""

    pump: str
    left: int
    next: Take | None = None


@dataclass(frozen=True)
class DeadLetter:
    id: str
    stream: str
    reason: str
    response: str
    attempts: int
    at: float
    event: Event

    @classmethod
    def from_json(cls, dlq_id: str, raw: str) -> DeadLetter:
        d = json.loads(raw)
        return cls(
            id=dlq_id,
            stream=d["stream"],
            reason=d["reason"],
            response=d.get("response") or "",
            attempts=int(d.get("attempts", 0)),
            at=float(d["at"]),
            event=Event.from_json(json.dumps(d["event"])),
        )


class Store:
    """The bridge's Redis state; every key layout lives in this module."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "hb",
        *,
        pumps: int = 2,
        waiting: int = WAITING_PUMPS,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.pumps = pumps  # how many pump tasks may run at once (Settings.pumps)
        # Pumps of this process blocked in Redis at once, waiting for a woken stream: each
        # holds a connection for as long as it waits.
        self._waiting = threading.BoundedSemaphore(waiting)
        self._enqueue = Script(client, _ENQUEUE)
        self._kick = Script(client, _KICK)
        self._ensure_pump = Script(client, _ENSURE_PUMP)
        self._retire_pump = Script(client, _RETIRE_PUMP)
        self._take = Script(client, _TAKE)
        self._let_go = Script(client, _LET_GO)
        self._ring = Script(client, _RING)
        self._ack = Script(client, _ACK)
        self._defer = Script(client, _DEFER)
        self._dead_letter = Script(client, _DEAD_LETTER)
        self._release = Script(client, _RELEASE)
        self._fail = Script(client, _FAIL)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        client = connect(
            settings.redis_url,
            ssl_cert_reqs=settings.redis_ssl_cert_reqs,
            pool_size=settings.redis_pool_size,
        )
        # A third of a bounded pool at most waits for work; the rest does it.
        waiting = min(WAITING_PUMPS, max(1, settings.redis_pool_size // 3))
        return cls(client, settings.key_prefix, pumps=settings.pumps, waiting=waiting)

    # -- keys ---------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def queue_key(self, stream: str) -> str:
        return self.key("q", stream)

    def conv_key(self, cid: str) -> str:
        return self.key("conv", cid)

    def user_key(self, uid: str) -> str:
        return self.key("user", uid)

    def history_key(self, stream: str) -> str:
        """The history list of the conversation `stream` belongs to (a dummy key if none)."""
        cid = stats.conversation_of(stream)
        return self.key("hist", cid) if cid else self.key("none")

    def _stream_keys(self, stream: str) -> list[str]:
        return [
            self.queue_key(stream),
            self.key("pending"),
            self.key("kick", stream),
            self.key("ready"),
            self.key("pumps"),
        ]

    def _wake_args(self) -> list[Any]:
        """now, pump ttl, max pumps, a fresh pump id: the arguments of _WAKE's reserve_pump."""
        return [repr(time.time()), PUMP_TTL, self.pumps, ids.unique_hex(48)]

    # -- health -------------------------------------------------------------------------
    def ping(self) -> bool:
        return bool(self.redis.ping())

    # -- records ------------------------------------------------------------------------
    def create_user(self, user: User, event: Event) -> str:
        """Store the user and queue its upsert; returns a pump id to start, or ''."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.user_key(user.id), mapping=user.to_hash())  # type: ignore[arg-type]
        self._enqueue(
            keys=self._stream_keys(event.stream),
            args=[event.stream, event.to_json(), KICK_TTL_MS, *self._wake_args()],
            client=pipe,
        )
        return str(pipe.execute()[-1][1])

    def create_conversation(self, conv: Conversation, event: Event) -> str:
        """Store the conversation, mark it open, queue its ticket creation; returns a pump
        id to start, or ''."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            self.conv_key(conv.id),
            mapping={
                "created_at": repr(conv.created_at),
                "title": conv.title,
                "description": conv.description,
                "status": "open",
            },
        )
        pipe.zadd(self.key("open"), {conv.id: conv.created_at})
        self._enqueue(
            keys=self._stream_keys(event.stream),
            args=[event.stream, event.to_json(), KICK_TTL_MS, *self._wake_args()],
            client=pipe,
        )
        return str(pipe.execute()[-1][1])

    def conversation(self, cid: str) -> Conversation | None:
        h = cast(dict[str, str], self.redis.hgetall(self.conv_key(cid)))
        return Conversation.from_hash(cid, h) if h else None

    def conversation_and_user(self, cid: str, uid: str) -> tuple[Conversation | None, User | None]:
        """Both records in one round trip (the user is None for "BOT" or an unknown id)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.conv_key(cid))
        pipe.hgetall(self.user_key(uid))
        c, u = cast(list[dict[str, str]], pipe.execute())
        return self.records_of(cid, uid, c, u)

    @staticmethod
    def records_of(
        cid: str, uid: str, conv: Mapping[str, str], user: Mapping[str, str]
    ) -> tuple[Conversation | None, User | None]:
        """The records as `conversation_and_user` returns them, from their stored hashes."""
        return (
            Conversation.from_hash(cid, conv) if conv else None,
            User.from_hash(uid, user) if user and uid != "BOT" else None,
        )

    def user(self, uid: str) -> User | None:
        h = cast(dict[str, str], self.redis.hgetall(self.user_key(uid)))
        return User.from_hash(uid, h) if h else None

    def close_conversation(self, cid: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.conv_key(cid), "status", "closed")
        pipe.zrem(self.key("open"), cid)
        pipe.execute()

    def open_conversations(self, limit: int = 100_000) -> list[str]:
        return cast(list[str], self.redis.zrange(self.key("open"), 0, limit - 1))

    def conversation_for_ticket(self, ticket_id: str) -> str | None:
        return cast(str | None, self.redis.get(self.key("ticket", ticket_id)))

    def failures(self, scope: str, client: str) -> tuple[int, int]:
        """Failed attempts of `client` in its current window, and the window's seconds left."""
        key = self.key("fails", scope, client)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.ttl(key)
        count, ttl = pipe.execute()
        return int(count or 0), max(int(ttl), 0)

    def count_failure(self, scope: str, client: str, window: int) -> int:
        """Record one failed attempt of `client`; returns the window's count."""
        return int(self._fail(keys=[self.key("fails", scope, client)], args=[window]))

    def webhook_seen(self, helpdesk: str, delivery_id: str) -> bool:
        """Whether this webhook delivery was rung already (a retry, or a replay)."""
        return bool(self.redis.exists(self.key("webhook", helpdesk, delivery_id)))

    def remember_webhook(self, helpdesk: str, delivery_id: str) -> None:
        self.redis.set(self.key("webhook", helpdesk, delivery_id), "1", ex=WEBHOOK_MEMORY)

    def conversation_for_botpress(self, bp_conversation_id: str) -> str | None:
        return cast(str | None, self.redis.get(self.key("bpconv", bp_conversation_id)))

    # -- producing events ---------------------------------------------------------------
    def append(self, event: Event, *, require: Sequence[tuple[str, str]] = ()) -> str:
        """Append `event` to its stream, waking the stream; returns a pump id to start, or ''.

        `require` lists (what, key) pairs that must exist, checked in the same atomic step;
        a missing one raises NotFound(what) and nothing is written.
        """
        keys = self._stream_keys(event.stream) + [key for _, key in require]
        status, pump = self._enqueue(
            keys=keys, args=[event.stream, event.to_json(), KICK_TTL_MS, *self._wake_args()]
        )
        if int(status) < 0:
            raise NotFound(require[-int(status) - 1][0])
        return str(pump)

    def ring(self, event: Event) -> str:
        """Queue a doorbell ring unless two already wait; returns a pump id to start, or ''."""
        keys = self._stream_keys(event.stream)
        _, pump = self._ring(
            keys=keys, args=[event.stream, event.to_json(), KICK_TTL_MS, *self._wake_args()]
        )
        return str(pump)

    def kick(self, stream: str) -> str:
        """Wake `stream` unless it is already waiting; returns a pump id to start, or ''."""
        _, pump = self._kick(
            keys=[self.key("kick", stream), self.key("ready"), self.key("pumps")],
            args=[stream, KICK_TTL_MS, *self._wake_args()],
        )
        return str(pump)

    # -- pumps --------------------------------------------------------------------------
    def announce_pumps(self, limit: int) -> None:
        """Record how many pumps may run at once (a worker's PUMPS), for every process."""
        self.redis.set(self.key("pumps", "max"), limit)

    def ensure_pump(self) -> str:
        """A pump id to start when streams wait and too few pumps are alive, else ''."""
        keys = [self.key("ready"), self.key("pumps")]
        return str(self._ensure_pump(keys=keys, args=self._wake_args()))

    def forget_pump(self, pump_id: str) -> None:
        """A reserved pump that was never started (its task could not be published)."""
        self.redis.zrem(self.key("pumps"), pump_id)

    def next_ready(self, timeout: float) -> str | None:
        """The next woken stream, waiting up to `timeout` seconds for one."""
        start = time.monotonic()
        # A few pumps wait in Redis; the others wait here, each holding no connection.
        if not self._waiting.acquire(timeout=timeout):
            return None
        try:
            left = max(0.01, timeout - (time.monotonic() - start))  # 0 would be forever
            got = self.redis.blpop([self.key("ready")], timeout=left)
        finally:
            self._waiting.release()
        return str(cast(Sequence[str], got)[1]) if got else None

    def heartbeat(self, pump_id: str) -> None:
        self.redis.zadd(self.key("pumps"), {pump_id: time.time()})

    def retire_pump(self, pump_id: str) -> bool:
        """Leave unless a stream was woken meanwhile; True when the pump is gone."""
        keys = [self.key("ready"), self.key("pumps")]
        return int(self._retire_pump(keys=keys, args=[pump_id, repr(time.time())])) == 1

    def ready_streams(self) -> list[str]:
        return cast(list[str], self.redis.lrange(self.key("ready"), 0, -1))

    # -- draining -----------------------------------------------------------------------
    def acquire_lease(self, stream: str, seconds: float) -> str | None:
        token = ids.unique_hex(64)
        ok = self.redis.set(self.key("lease", stream), token, nx=True, px=int(seconds * 1000))
        return token if ok else None

    def release_lease(self, stream: str, token: str) -> None:
        self._release(keys=[self.key("lease", stream)], args=[token])

    def take(
        self,
        stream: str,
        token: str,
        lease_seconds: float,
        now: float,
        peek: int,
        *,
        acquire: bool,
        records: bool = False,
    ) -> Take:
        """(Take the lease,) peek `peek` events and begin the head's delivery attempt; with
        `records`, also read the head's conversation (the stream's owner) and its author's
        user record, which a message's delivery needs, in the same round trip."""
        _, owner = split_stream(stream)
        r = self._take(
            keys=[
                self.key("lease", stream),
                self.key("head", stream),
                self.queue_key(stream),
                self.key("kick", stream),
                self.conv_key(owner) if records else self.key("none"),
            ],
            args=[
                token,
                int(lease_seconds * 1000),
                repr(now),
                peek,
                1 if acquire else 0,
                self.user_key("") if records else "",
            ],
        )
        return Take.parse(r, records)

    def let_go(self, stream: str, token: str) -> tuple[int, float]:
        """Release the lease; returns (events still waiting, due time of a deferred head)."""
        left, due = self._let_go(
            keys=[self.key("lease", stream), self.queue_key(stream), self.key("due")],
            args=[token, stream],
        )
        return int(left), float(due or 0)

    def peek(self, stream: str, n: int) -> list[Event]:
        raw = cast(list[str], self.redis.lrange(self.queue_key(stream), 0, n - 1))
        return [Event.from_json(r) for r in raw]

    def length(self, stream: str) -> int:
        return int(self.redis.llen(self.queue_key(stream)))

    def begin(
        self, stream: str, token: str, head_id: str, lease_seconds: float, now: float
    ) -> Head:
        """`take` for a caller that already holds the lease and knows the head's id."""
        taken = self.take(stream, token, lease_seconds, now, 1, acquire=False)
        if taken.head is None or taken.events[0].id != head_id:
            return Head(LOST, 0, 0, 0.0, 0.0)
        return taken.head

    def ack(
        self,
        stream: str,
        token: str,
        head_id: str,
        n: int,
        *,
        outputs: Iterable[Event] = (),
        record: str = "",
        updates: Mapping[str, str] | None = None,
        index: tuple[str, str] | None = None,
        delivered: Sequence[Event] = (),
        attempts: int = 1,
        now: float | None = None,
        then: int = 0,
        lease_seconds: float = 0.0,
        records: bool = False,
    ) -> Acked | None:
        """Drop the first `n` events as delivered and append `outputs`, atomically.

        `updates` are written to the hash `record` (a full key); `index` is (key, value) to SET.
        `delivered` are those events (counted in P:stats, with their latency at `now`, and
        recorded in the conversation's history with `attempts`).
        With `then` > 0 and events left, the next step's `take` (peek `then`, renew the
        lease to `lease_seconds`, `records`) runs in the same round trip: the drain goes on
        with `Acked.next`. Returns None when the lease was lost or the head moved (nothing
        written). No events left: the lease is released already (`let_go` is not needed).
        """
        now = time.time() if now is None else now
        kind, _ = split_stream(stream)
        ints, floats = stats.delivered_increments(kind, (e.at for e in delivered), now)
        hist = (
            [stats.history_entry(now, stats.DELIVERED, attempts, stream, e) for e in delivered]
            if stats.records(stream, stats.DELIVERED)
            else []
        )
        outs = list(outputs)
        flat: list[str] = [x for kv in (updates or {}).items() for x in kv]
        keys = [
            self.queue_key(stream),
            self.key("head", stream),
            self.key("lease", stream),
            self.key("pending"),
            self.key("due"),
            record or self.key("none"),
            index[0] if index else self.key("none"),
            self.key("stats"),
            self.history_key(stream),
            self.key("ready"),
            self.key("pumps"),
            self.key("kick", stream),
            self.conv_key(split_stream(stream)[1]) if records else self.key("none"),
        ]
        args: list[Any] = [
            token,
            n,
            head_id,
            stream,
            KICK_TTL_MS,
            json.dumps(flat),
            index[1] if index else "",
            json.dumps([x for kv in ints.items() for x in kv]),
            json.dumps([x for kv in floats.items() for x in kv]),
            json.dumps(hist),
            stats.HISTORY_CAP,
            *self._wake_args(),
            # Only a head that was put off before can be in the due schedule.
            1 if attempts > 1 else 0,
            then,
            int(lease_seconds * 1000),
            self.user_key("") if records else "",
        ]
        for ev in outs:
            keys += [self.queue_key(ev.stream), self.key("kick", ev.stream)]
            args += [ev.stream, ev.to_json()]
        r = self._ack(keys=keys, args=args)
        if int(r[0]) != 1:
            return None
        return Acked(str(r[1]), int(r[2]), Take.parse(r[3:], records) if len(r) > 3 else None)

    def defer(
        self,
        stream: str,
        token: str,
        head_id: str,
        due: float,
        error: str,
        response: str,
        now: float,
        *,
        unsure: bool = False,
        fault: bool = False,
    ) -> bool:
        """Put the head off until `due`; `unsure`: the failed try may have been applied;
        `fault`: it failed with an unexpected error (counted in the head's `faults`)."""
        r = self._defer(
            keys=[
                self.key("lease", stream),
                self.key("head", stream),
                self.key("due"),
                self.key("stats"),
            ],
            args=[
                token,
                head_id,
                repr(due),
                error[:2000],
                response[:4000],
                repr(now),
                stream,
                stats.counter(stats.RETRIED, split_stream(stream)[0]),
                "1" if unsure else "0",
                "1" if fault else "0",
            ],
        )
        return int(r) == 1

    def dead_letter(
        self,
        stream: str,
        token: str,
        head_id: str,
        reason: str,
        response: str,
        now: float,
        *,
        event: Event | None = None,
    ) -> str | None:
        """Move the head event to the dead letters; returns the dead-letter id.

        `event` (the head) puts a line in its conversation's history.
        """
        dlq_id = f"d_{head_id}"
        entry = json.dumps(
            {"stream": stream, "reason": reason[:2000], "response": response[:4000], "at": now}
        )
        before, after = "", ""
        if event is not None and stats.records(stream, stats.DEAD_LETTERED):
            # The Lua script puts the attempt count (only it knows it) between the halves.
            before, after = stats.history_halves(now, stats.DEAD_LETTERED, stream, event)
        r = self._dead_letter(
            keys=[
                self.queue_key(stream),
                self.key("head", stream),
                self.key("lease", stream),
                self.key("pending"),
                self.key("due"),
                self.key("dlq"),
                self.key("dlq", "order"),
                self.key("stats"),
                self.history_key(stream),
            ],
            args=[
                token,
                head_id,
                stream,
                dlq_id,
                entry,
                repr(now),
                stats.counter(stats.DEAD_LETTERED, split_stream(stream)[0]),
                before,
                after,
                stats.HISTORY_CAP,
            ],
        )
        return dlq_id if int(r) == 1 else None

    def head_state(self, stream: str) -> dict[str, str]:
        return cast(dict[str, str], self.redis.hgetall(self.key("head", stream)))

    def is_leased(self, stream: str) -> bool:
        return bool(self.redis.exists(self.key("lease", stream)))

    def due_streams(self, now: float, limit: int = 500) -> list[str]:
        """Streams whose deferred head is due, removed from the schedule as they are taken."""
        key = self.key("due")
        taken: list[str] = []
        for s in cast(list[str], self.redis.zrangebyscore(key, "-inf", now, start=0, num=limit)):
            if self.redis.zrem(key, s):
                taken.append(s)
        return taken

    def pending_streams(self) -> list[str]:
        return [str(s) for s in self.redis.sscan_iter(self.key("pending"), count=1000)]

    def deferred_until(self, stream: str) -> float:
        due = self.redis.zscore(self.key("due"), stream)
        return float(due) if due is not None else 0.0

    # -- dead letters -------------------------------------------------------------------
    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        ids = cast(
            list[str], self.redis.zrange(self.key("dlq", "order"), offset, offset + limit - 1)
        )
        if not ids:
            return []
        raws = cast(list[str | None], self.redis.hmget(self.key("dlq"), ids))
        return [DeadLetter.from_json(i, r) for i, r in zip(ids, raws, strict=True) if r]

    def get_dead_letter(self, dlq_id: str) -> DeadLetter | None:
        raw = cast(str | None, self.redis.hget(self.key("dlq"), dlq_id))
        return DeadLetter.from_json(dlq_id, raw) if raw else None

    def count_dead_letters(self) -> int:
        return int(self.redis.zcard(self.key("dlq", "order")))

    def replay(self, dlq_id: str, *, lease_seconds: float, wait: float = 30.0) -> str | None:
        """Put a dead letter back at the head of its stream (its place in the order).

        Takes the stream's lease first so no drain is mid-delivery while the head changes.
        Returns the stream (to wake a worker for), None when there is no such dead letter;
        raises TimeoutError when the stream stayed busy for `wait` seconds.
        """
        dl = self.get_dead_letter(dlq_id)
        if dl is None:
            return None
        deadline = time.monotonic() + wait
        while (token := self.acquire_lease(dl.stream, lease_seconds)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {dl.stream} stayed busy for {wait:g}s")
            time.sleep(0.05)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.lpush(self.queue_key(dl.stream), dl.event.to_json())
            pipe.sadd(self.key("pending"), dl.stream)
            pipe.delete(self.key("head", dl.stream))
            pipe.hdel(self.key("dlq"), dlq_id)
            pipe.zrem(self.key("dlq", "order"), dlq_id)
            pipe.hincrby(
                self.key("stats"), stats.counter(stats.REPLAYED, split_stream(dl.stream)[0])
            )
            if stats.records(dl.stream, stats.REPLAYED):
                hist = self.history_key(dl.stream)
                entry = stats.history_entry(
                    time.time(), stats.REPLAYED, dl.attempts, dl.stream, dl.event
                )
                pipe.rpush(hist, entry)
                pipe.ltrim(hist, -stats.HISTORY_CAP, -1)
            pipe.execute()
        finally:
            self.release_lease(dl.stream, token)
        return dl.stream

    def purge_dead_letter(self, dlq_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.key("dlq"), dlq_id)
        pipe.zrem(self.key("dlq", "order"), dlq_id)
        return bool(pipe.execute()[0])

    # -- observing ----------------------------------------------------------------------
    def stats(self) -> dict[str, str]:
        """The P:stats counters (field names: bridge/stats.py)."""
        return cast(dict[str, str], self.redis.hgetall(self.key("stats")))

    def history(self, cid: str) -> list[dict[str, Any]]:
        """What happened to the conversation's last events, oldest first."""
        raw = cast(list[str], self.redis.lrange(self.key("hist", cid), 0, -1))
        return [stats.parse_history(r) for r in raw]
