"""Open agent consoles, simulated: what console.js does, for the ingress benchmark.

    python -m benchmarks.consoles --port P [--live-port L] [--consoles 50] [--tickets 30]
                                  [--messages 20]

The web at 127.0.0.1:P must run with HELPDESK=inbox, and this process needs the bridge's
environment (REDIS_URL, BRIDGE_SECRET, ...). It seeds the inbox with `--tickets` open
tickets of `--messages` messages each (through the inbox adapter, as a worker delivering
hand-offs writes them), adds one agent per console and signs each in through
/console/login (its own session cookie). Then it prints `ready` and obeys its stdin, one
command a line:

    start idle | start busy   open the consoles (busy: the inbox changes every second)
    stop                      close them; prints one JSON line of what was done

While open, each console does what console.js does. With `--live-port` (the live process,
as console.js does when its stream works): one server-sent event stream per console,
GET /console/events on the live process, opened at `start` (which answers `open` once every
console has its first event: the consoles were open before the round), then reading events
and keep-alive comments until `stop`. Without it (console.js polling, where there is no
live process): on its own keep-alive connection, GET /console/live every 500 ms (a tick is
skipped while the previous one is in flight), and GET /console/parts when `v` moved (with
`since`, the version it shows) or its last refresh is 30 s old (without: a full redraw).
Raw asyncio HTTP/1.1 with prebuilt request bytes, like loadgen.py: this process shares the
machine's cores with the web it loads.

Busy: one end-user message is appended to a seeded ticket every second (through
`InboxHelpdesk.append_messages`, the write a worker does), so every console fetches
/console/parts about once a second (polling) or receives one event a second (streams). The
delay from each write to each console's parts answer or event carrying it is reported for
the writes made at least a second before `stop` (a console that had not seen such a write
by then counts as infinitely late).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from bridge.config import Settings
from bridge.helpdesks.base import Author, HistoryMessage, OutboundMessage, TicketRequest
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.helpdesks.inbox.agents import Agents
from bridge.helpdesks.inbox.login import COOKIE
from bridge.storage import Conversation, Store, User

PASSWORD = "bench-console-password"
#: console.js: how often a console asks /console/live, and when it redraws anyway.
POLL_S = 0.5
STALE_S = 30.0
#: Busy: one change to the inbox this often.
CHANGE_S = 1.0
#: Changes made at least this long before `stop` count for the delays.
SETTLED_S = 1.0
_V = re.compile(rb'"v":\s*(\d+)')


def seed(inbox: InboxHelpdesk, tickets: int, messages: int) -> list[Conversation]:
    """`tickets` open hand-offs, each with a little bot history and `messages` messages."""
    convs = []
    now = time.time()
    for i in range(tickets):
        user = User(f"u_console{i:03d}", name=f"Customer {i}", email=f"c{i}@example.com")
        inbox.upsert_user(user, maybe_applied=False)
        cid = f"c_console{i:03d}"
        conv = Conversation(cid, created_at=now - 600 + i, title=f"Order {i}", ticket_id=cid)
        convs.append(conv)
        if inbox.timeline.redis.exists(inbox.timeline.k("ticket", cid)):
            continue  # seeded by an earlier run on this Redis
        history = [
            HistoryMessage("Hello, how can I help?", "BOT"),
            HistoryMessage("A human, please"),
        ]
        request = TicketRequest(f"Order {i}: delivery address", "Wants it changed", history, user)
        inbox.create_ticket(conv, request, idempotency_key=cid, maybe_applied=False)
        for k in range(messages):
            who = Author("end_user", user) if k % 2 == 0 else Author("bot")
            text = f"Message {k}: I would like to change the delivery address of order {i}."
            msg = OutboundMessage(f"e_seed_{i}_{k}", "text", {"text": text}, now)
            inbox.append_messages(conv, who, [msg], maybe_applied=False)
    return convs


def sign_in(port: int, agent: str) -> str:
    """The session cookie's value of `agent`, signed in through the login form."""
    s = requests.Session()
    base = f"http://127.0.0.1:{port}/console"
    page = s.get(f"{base}/login", timeout=10).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:300]
    form = {"agent": agent, "password": PASSWORD, "csrf": found.group(1)}
    resp = s.post(f"{base}/login", data=form, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    return str(s.cookies[COOKIE])


def get(port: int, path: str, cookie: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
        f"Cookie: {COOKIE}={cookie}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()


class Conn:
    """One keep-alive connection: send prebuilt bytes, read the status and body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            n = name.strip().lower()
            if n == b"content-length":
                length = int(value)
            elif n == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Console:
    port: int
    cookie: str
    query: str
    version: int = -1
    last_refresh: float = 0.0

    def __post_init__(self) -> None:
        self.live = get(self.port, "/console/live", self.cookie)

    def parts(self, full: bool) -> bytes:
        """console.js: `since` the version shown, but a full redraw when it is 30 s old."""
        since = "" if full else f"&since={self.version}"
        return get(self.port, f"/console/parts?{self.query}{since}", self.cookie)


@dataclass
class Stats:
    live: int = 0
    parts: int = 0
    #: Streams: events with parts, keep-alive comments, bytes read.
    events: int = 0
    keepalives: int = 0
    bytes: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    #: When each version a busy inbox moved to was written (perf_counter).
    changed: dict[int, float] = field(default_factory=dict)
    #: (console, version it reached, when its parts answer came).
    seen: list[tuple[int, int, float]] = field(default_factory=list)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


class Simulator:
    def __init__(
        self,
        port: int,
        consoles: list[Console],
        inbox: InboxHelpdesk,
        convs: list[Conversation],
        live_port: int | None = None,
    ) -> None:
        self.port = port
        self.consoles = consoles
        self.inbox = inbox
        self.convs = convs
        self.changes = 0
        self.live_port = live_port

    async def _stream(
        self, i: int, c: Console, stats: Stats, stop: asyncio.Event, opened: asyncio.Event
    ) -> None:
        """console.js with the live process: one event stream, read until `stop`."""
        assert self.live_port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", self.live_port)
        try:
            writer.write(get(self.live_port, f"/console/events?{c.query}", c.cookie))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b"\r\n", 1)[0].split()[1])
            stats.count(status)
            if status != 200:
                stats.errors += 1
                opened.set()
                return
            first = True
            reading = asyncio.ensure_future(reader.readline())
            stopping = asyncio.ensure_future(stop.wait())
            while True:
                done, _ = await asyncio.wait(
                    {reading, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if reading not in done:
                    reading.cancel()
                    return
                line = reading.result()
                if not line:
                    stats.errors += 1  # the live process closed the stream
                    stopping.cancel()
                    return
                stats.bytes += len(line)
                if line.startswith(b"data:"):
                    found = _V.search(line[:64])
                    if found is not None:
                        c.version = int(found.group(1))
                        if first:
                            first = False
                            opened.set()
                        else:
                            stats.events += 1
                            stats.seen.append((i, c.version, time.perf_counter()))
                elif line.startswith(b":"):
                    stats.keepalives += 1
                reading = asyncio.ensure_future(reader.readline())
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats.errors += 1
            opened.set()
        finally:
            writer.close()

    async def _console(self, i: int, c: Console, stats: Stats, stop: asyncio.Event) -> None:
        conn = Conn(self.port)
        phase = time.perf_counter() + random.uniform(0, POLL_S)  # opened at different times
        try:
            while not stop.is_set():
                now = time.perf_counter()
                due = phase + math.ceil(max(0.0, now - phase) / POLL_S) * POLL_S
                if due > now:
                    try:
                        await asyncio.wait_for(stop.wait(), due - now)
                        return
                    except TimeoutError:
                        pass
                try:
                    status, body = await conn.send(c.live)
                    stats.live += 1
                    stats.count(status)
                    found = _V.search(body) if status == 200 else None
                    stale = time.perf_counter() - c.last_refresh > STALE_S
                    if found is None or (int(found.group(1)) == c.version and not stale):
                        continue
                    status, body = await conn.send(c.parts(stale))
                    stats.parts += 1
                    stats.count(status)
                    found = _V.search(body[:64]) if status == 200 else None
                    if found is not None:
                        c.version = int(found.group(1))
                        c.last_refresh = time.perf_counter()
                        stats.seen.append((i, c.version, c.last_refresh))
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    stats.errors += 1
                    conn.close()
        finally:
            conn.close()

    def _change(self) -> tuple[int, float]:
        """One end-user message on the next seeded ticket, as a worker writes it."""
        conv = self.convs[self.changes % len(self.convs)]
        self.changes += 1
        user = User(f"u_console{self.changes % len(self.convs):03d}")
        text = f"Any news? ({self.changes})"
        msg = OutboundMessage(f"e_busy_{time.time_ns()}", "text", {"text": text}, time.time())
        self.inbox.append_messages(conv, Author("end_user", user), [msg], maybe_applied=False)
        at = time.perf_counter()
        return self.inbox.desk.version(), at

    async def _busy(self, stats: Stats, stop: asyncio.Event) -> None:
        while not stop.is_set():
            version, at = await asyncio.to_thread(self._change)
            stats.changed[version] = at
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHANGE_S)

    async def run(self, busy: bool, stop: asyncio.Event) -> dict[str, Any]:
        stats = Stats()
        version = self.inbox.desk.version()
        now = time.perf_counter()
        for c in self.consoles:
            # As if each had been open all along: showing what there is (a change made as
            # the previous round ended is not caught up here), its last redraw 0-30 s ago.
            c.version = version
            c.last_refresh = now - random.uniform(0, STALE_S)
        if self.live_port is not None:
            # Streams: open them all first (each gets the parts at once), then the round.
            opened = [asyncio.Event() for _ in self.consoles]
            tasks = [
                asyncio.create_task(self._stream(i, c, stats, stop, opened[i]))
                for i, c in enumerate(self.consoles)
            ]
            await asyncio.gather(*(o.wait() for o in opened))
            print("open", flush=True)
        else:
            tasks = [
                asyncio.create_task(self._console(i, c, stats, stop))
                for i, c in enumerate(self.consoles)
            ]
        if busy:
            tasks.append(asyncio.create_task(self._busy(stats, stop)))
        t0 = time.perf_counter()
        await stop.wait()
        t1 = time.perf_counter()
        await asyncio.gather(*tasks)
        return {
            "seconds": t1 - t0,
            "live": stats.live,
            "parts": stats.parts,
            "events": stats.events,
            "keepalives": stats.keepalives,
            "bytes": stats.bytes,
            "errors": stats.errors,
            "statuses": stats.statuses,
            "changes": len(stats.changed),
            "delays": delays(stats, len(self.consoles), t1),
        }


def delays(stats: Stats, consoles: int, stopped: float) -> list[float]:
    """Seconds from each settled change to each console's parts answer carrying it;
    infinity for a console that never showed it."""
    settled = {v: at for v, at in stats.changed.items() if stopped - at >= SETTLED_S}
    first: dict[tuple[int, int], float] = {}
    for i, version, at in stats.seen:  # in the order the answers came
        for v in settled:
            if version >= v and (i, v) not in first:
                first[(i, v)] = at
    return [
        first[(i, v)] - at if (i, v) in first else math.inf
        for v, at in settled.items()
        for i in range(consoles)
    ]


async def serve(sim: Simulator) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    while line := (await stdin.readline()).decode().split():
        if line[0] != "start" or line[1:] not in (["idle"], ["busy"]):
            raise SystemExit(f"unknown command: {' '.join(line)}")
        stop = asyncio.Event()
        running = asyncio.create_task(sim.run(line[1] == "busy", stop))
        if (await stdin.readline()).strip() != b"stop":
            raise SystemExit("expected stop")
        stop.set()
        print(json.dumps(await running), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--live-port", type=int, help="the live process: event streams, not polls")
    ap.add_argument("--consoles", type=int, default=50)
    ap.add_argument("--tickets", type=int, default=30)
    ap.add_argument("--messages", type=int, default=20)
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    store = Store.from_settings(settings)
    inbox = InboxHelpdesk(settings, store)
    convs = seed(inbox, args.tickets, args.messages)
    agents = Agents(store)
    consoles = []
    version = inbox.desk.version()  # each page loaded now: what it shows
    for i in range(args.consoles):
        name = f"agent{i:02d}"
        if agents.version(name) is None:
            agents.add(name, PASSWORD)
        cookie = sign_in(args.port, name)
        # Half watch the unassigned queue, half all open ones; each has a conversation open.
        view = "unassigned" if i % 2 == 0 else "open"
        query = f"view={view}&c={convs[i % len(convs)].id}"
        consoles.append(Console(args.port, cookie, query, version))
    asyncio.run(serve(Simulator(args.port, consoles, inbox, convs, args.live_port)))


if __name__ == "__main__":
    main()
