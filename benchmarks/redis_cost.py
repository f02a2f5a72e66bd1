"""Redis commands and round trips per delivered event: `python -m benchmarks.redis_cost`.

Redis is the one piece every worker shares, so what a delivery costs there sets how far the
bridge scales out (issue 16). This drains events in-process, exactly as a pump does
(workers/drain.py `pump`), against a redis-server of its own and an instant fake Botpress,
and counts:

- commands: Redis's own count (`INFO commandstats`), commands run inside scripts included;
- round trips: requests the process sent and waited for (a pipeline is one, a script call
  is one), counted at the connection.

Two kinds of event are measured: agent messages to Botpress (`bp` streams, no helpdesk
call) and end-user messages to the built-in inbox (`hd` streams; the inbox's own writes are
Redis commands too), one event per conversation at a time (the steady trickle of a live
deployment, the costliest case: nothing is shared between events).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge import events as ev  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.helpdesks import load  # noqa: E402
from bridge.helpdesks.base import Changes, Helpdesk  # noqa: E402
from bridge.storage import Conversation, Store, User  # noqa: E402
from tests.support.fake_botpress import FakeBotpress  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from workers import drain  # noqa: E402
from workers.botpress import Botpress  # noqa: E402
from workers.context import Context  # noqa: E402
from workers.retry import RetryPolicy  # noqa: E402

SECRET = "bench-secret-0123456789"


class Counted:
    """Counts requests sent on a redis-py client's connections (a pipeline counts once)."""

    def __init__(self, client: redis.Redis) -> None:
        self.trips = 0
        pool = client.connection_pool
        original = pool.connection_class
        counter = self

        class Connection(original):  # type: ignore[misc, valid-type]
            def send_packed_command(self, command: Any, check_health: bool = True) -> None:
                counter.trips += 1
                super().send_packed_command(command, check_health)

        pool.connection_class = Connection
        pool.reset()


class NullHelpdesk(Helpdesk):
    """A helpdesk that takes everything and writes nothing: what remains is the bridge's
    own cost (the inbox's writes to Redis are the helpdesk's work, as Zendesk's API calls)."""

    name = "null"

    def upsert_user(self, user: User, *, maybe_applied: bool) -> str:
        return user.id

    def create_ticket(
        self, conv: Conversation, request: Any, *, idempotency_key: str, maybe_applied: bool
    ) -> str:
        return conv.id

    def append_messages(
        self, conv: Conversation, author: Any, messages: Any, *, maybe_applied: bool
    ) -> None:
        pass

    def close_ticket(self, conv: Conversation, *, event_id: str, maybe_applied: bool) -> None:
        pass

    def changes_since(self, conv: Conversation, cursor: str) -> Changes:
        return Changes([], cursor)


class Recorded:
    """A dispatch that starts nothing: the measurement drives the pump itself."""

    def drain(self, stream: str, countdown: float) -> None:
        pass

    def pump(self, pump_id: str) -> None:
        pass


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def measure(
    kind: str, n: int, url: str, botpress: FakeBotpress, helpdesk: str = "inbox"
) -> tuple[float, float]:
    """(Redis commands, round trips) per delivered event of `kind` (`bp` or `hd`)."""
    settings = Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "REDIS_URL": url,
            "BOTPRESS_WEBHOOK_URL": botpress.webhook_url,
            "HELPDESK": "inbox",
            "LOG_LEVEL": "WARNING",
        }
    )
    admin = redis.Redis.from_url(url, decode_responses=True)
    admin.flushall()
    # A pump leaves as soon as nothing is woken: its idle waits are not delivery work.
    drain.PUMP_IDLE_SECONDS = 0.0
    store = Store.from_settings(settings)
    ctx = Context(
        settings=settings,
        store=store,
        helpdesk=load(settings, store) if helpdesk == "inbox" else NullHelpdesk(settings, store),
        dispatch=Recorded(),
        botpress=Botpress(settings),
        retry=RetryPolicy(1.0, 60.0, 3600.0),
    )
    for i in range(n):  # conversations and their tickets, delivered before counting
        user = User(id=f"u_{i:05d}", name=f"user {i}")
        store.create_user(
            user, ev.Event(ev.USER_UPSERT, ev.stream(ev.USER, user.id), {"user": user.id})
        )
        conv = Conversation(id=f"c_{i:05d}", created_at=time.time(), title=f"c{i}")
        create = ev.Event(
            ev.CONVERSATION_CREATE,
            ev.stream(ev.TO_HELPDESK, conv.id),
            {"title": "t", "description": "", "user_id": user.id, "history": []},
        )
        store.create_conversation(conv, create)
    _drain_all(ctx, store)
    # One message each first, then the measured ones: a conversation's first message also
    # records its requester, once; the measured ones are what every later message costs.
    _send(store, kind, n)
    _drain_all(ctx, store)
    _send(store, kind, n)
    counted = Counted(store.redis)
    store.redis.ping()  # the new connection's handshake is not delivery work
    counted.trips = 0
    before = commands(admin)
    delivered = drain.pump(ctx, "bench-pump")  # everything is woken: one pump takes it all
    used = commands(admin) - before - 1  # the INFO call's own neighbour: none but itself
    assert delivered == n, (delivered, n)
    # A pump's own start and leave (a heartbeat, a wait that finds nothing, the retire
    # script) are paid once per pump, whatever it delivers: measured alone, not counted.
    trips, before = counted.trips, commands(admin)
    assert drain.pump(ctx, "bench-pump") == 0
    idle_cmds, idle_trips = commands(admin) - before - 1, counted.trips - trips
    return (used - idle_cmds) / n, (trips - idle_trips) / n


def _send(store: Store, kind: str, n: int) -> None:
    for i in range(n):
        cid, uid = f"c_{i:05d}", f"u_{i:05d}"
        if kind == "bp":
            data = {"agent_id": "a", "message_type": "text", "payload": {"text": "hi"}}
            store.append(ev.Event(ev.AGENT_MESSAGE, ev.stream(ev.TO_BOTPRESS, cid), data))
        else:
            data = {"author": uid, "type": "text", "payload": {"text": "hello"}}
            store.append(ev.Event(ev.MESSAGE, ev.stream(ev.TO_HELPDESK, cid), data))


def _drain_all(ctx: Context, store: Store) -> int:
    delivered = 0
    while store.ready_streams():
        pump_id = store.ensure_pump() or "bench-pump"
        delivered += drain.pump(ctx, pump_id)
    return delivered


#: (stream kind, helpdesk, what): the bridge's own cost, and with the inbox's writes.
CASES = (
    ("bp", "inbox", "agent message -> Botpress"),
    ("hd", "null", "user message -> a helpdesk (the bridge's own)"),
    ("hd", "inbox", "user message -> the inbox (its writes included)"),
)


def main() -> int:
    server = RedisServer().start()
    botpress = FakeBotpress()
    botpress.start()
    try:
        for kind, helpdesk, what in CASES:
            cmds, trips = measure(kind, 1000, server.url, botpress, helpdesk)
            print(f"  redis  {what:<48} {cmds:5.1f} commands, {trips:3.1f} round trips / event")
    finally:
        botpress.stop()
        server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
