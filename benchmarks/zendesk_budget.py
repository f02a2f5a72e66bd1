"""The Zendesk API budget under load (issue 17): `python -m benchmarks --only zendesk`.

Hand-offs run against tests/support/fake_zendesk.py enforcing a per-minute request limit in
scaled time (a "minute" of `window` seconds; ZENDESK_RATE_LIMIT is its per-real-minute
equivalent), with the Procfile's web, worker and beat. Every conversation plays the same
script, each step waiting for the one before, as a chat does: the end user sends two
messages back to back; once both are in the ticket an agent comments in Zendesk and its
webhook rings the web process; once the reply has reached Botpress (a FakeBotpress) the
user writes again. Five times: 10 user messages and 5 agent replies per hand-off.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
import requests

from benchmarks import run as bench
from bridge import events as ev
from bridge.app import build_runtime
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_zendesk import FakeZendesk
from tests.support.redis_server import free_port

WEBHOOK_SECRET = "YmVuY2gtemVuZGVzay1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5"
API_TOKEN = "bench-zendesk-token-0123456789"
#: Script steps: two user messages, then one agent reply, this many times.
ROUNDS = 5
USER_MESSAGES = 2 * ROUNDS
_USER = re.compile(r"\bm #(\d+)")
_REPLY = re.compile(r"\br #(\d+)")


@dataclass
class Figures:
    """What one run measured."""

    handoffs: int
    seconds: float
    least: float  # the requests the fake accepted, at the limit's rate
    requests: Counter[str] = field(default_factory=Counter)  # by kind, 429s included
    limited: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unfinished: int = 0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def per_user_message(self) -> float:
        spent = self.requests["add comment"] + self.requests["recheck comments"]
        return spent / (self.handoffs * USER_MESSAGES)

    @property
    def per_agent_reply(self) -> float:
        spent = self.requests["show ticket"] + self.requests["list comments"]
        return spent / (self.handoffs * ROUNDS)


def kind(method: str, path: str, query: dict[str, str]) -> str:
    """What a request to Zendesk was for, for counting."""
    seg = path.rstrip("/").removesuffix(".json").split("/")[3:]  # after /api/v2
    if seg[:1] == ["users"]:
        return {"create_or_update": "create user", "me": "users/me"}.get(seg[-1], "other user")
    if seg == ["tickets"] and method == "POST":
        return "create ticket"
    if len(seg) == 2 and seg[0] == "tickets" and seg[1].isdigit():
        return {"PUT": "add comment", "GET": "show ticket"}.get(method, "other ticket")
    if len(seg) == 3 and seg[2] == "comments":
        # A recheck after an unsure send reads the author's latest comment; a wake-up reads
        # new comments with their inline images.
        return "list comments" if "include_inline_images" in query else "recheck comments"
    return "other"


def numbers(pattern: re.Pattern[str], texts: list[str]) -> list[int]:
    return [int(n) for text in texts for n in pattern.findall(text)]


def disorder(seen: list[int], expected: int) -> tuple[int, int, int]:
    """(lost, duplicated, out of order) of sequence numbers 0..expected-1 as received."""
    lost = len(set(range(expected)) - set(seen))
    duplicated = len(seen) - len(set(seen))
    top, late = -1, 0
    for n in seen:
        late += n < top
        top = max(top, n)
    return lost, duplicated, late


def measure(
    env: bench.Env, handoffs: int, window: float, per_window: int, timeout: float = 600
) -> Figures:
    """Run the hand-offs; see the module's docstring."""
    per_minute = round(per_window * 60 / window)
    fake = FakeZendesk(email="bench@example.com", api_token=API_TOKEN).start()
    botpress = FakeBotpress()
    botpress.start()
    agent = fake.add_agent("Alice", "alice@agents.test")
    zenv = bench.Env(env.redis_url, botpress, env.logs)
    zenv.env.update(
        HELPDESK="zendesk",
        ZENDESK_URL=fake.url,
        ZENDESK_EMAIL=fake.email,
        ZENDESK_API_TOKEN=API_TOKEN,
        ZENDESK_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ZENDESK_POLL_INTERVAL="0",  # webhooks only: polls would spend the budget too
        ZENDESK_RATE_LIMIT=str(per_minute),
    )
    bench._flush(env.redis_url)
    port = free_port()
    try:
        with (
            bench.running(bench.gunicorn(zenv, "web", "bridge", port)),
            bench.running(zenv.spawn("worker")),
            bench.running(zenv.spawn("beat")),
        ):
            bench.wait_http(port)
            bench.wait_worker(zenv, "worker")
            fake.rate_limit(per_window, window, reset_on_all=True)
            with fake.lock:
                first = len(fake.requests)  # the processes' start is not the run's
            t0 = time.monotonic()
            unfinished = _play(zenv, fake, botpress, agent, port, handoffs, t0 + timeout)
            seconds = time.monotonic() - t0
            # Anything still queued (a duplicate on its way) shows in the checks below;
            # what never arrives counts as lost.
            with contextlib.suppress(RuntimeError):
                bench._wait_drained(redis.Redis.from_url(env.redis_url), timeout=30)
    finally:
        botpress.stop()
        fake.stop()
    with fake.lock:
        requests_ = fake.requests[first:]
        limited = fake.limited
    fig = Figures(
        handoffs=handoffs,
        seconds=seconds,
        least=(len(requests_) - limited) * window / per_window,
        limited=limited,
        unfinished=unfinished,
    )
    fig.requests.update(kind(r.method, r.path, r.query) for r in requests_)
    tickets = {t.get("external_id"): tid for tid, t in fake.tickets.items()}
    replies = botpress.texts()
    for i in range(handoffs):
        cid = _cid(i)
        texts = [str(c["body"]) for c in fake.comments(tickets[cid])] if cid in tickets else []
        for seen, expected in (
            (numbers(_USER, texts), USER_MESSAGES),
            (numbers(_REPLY, replies.get(cid, [])), ROUNDS),
        ):
            lost, duplicated, late = disorder(seen, expected)
            fig.lost += lost
            fig.duplicated += duplicated
            fig.out_of_order += late
    return fig


def _cid(i: int) -> str:
    return f"c_b{i:06d}"  # as benchmarks/run.py's _seed names them


def _play(
    env: bench.Env,
    fake: FakeZendesk,
    botpress: FakeBotpress,
    agent: int,
    port: int,
    handoffs: int,
    deadline: float,
) -> int:
    """Every conversation's script, step by step; returns how many did not finish."""
    rt = build_runtime(bench._settings(env))
    web = requests.Session()
    pairs = bench._seed(env, handoffs)
    # Per conversation: the rounds done (a reply reached Botpress), and whether its two
    # messages of this round are in Zendesk yet (then the agent has replied).
    done = dict.fromkeys((cid for _, cid in pairs), 0)
    answered = dict.fromkeys(done, False)
    users = dict((cid, uid) for uid, cid in pairs)
    received: Counter[str] = Counter()
    seen_comments: dict[str, int] = {}
    read = 0

    def write(cid: str) -> None:
        k = 2 * done[cid]
        for n in (k, k + 1):
            data = {"author": users[cid], "type": "text", "payload": {"text": f"m #{n}"}}
            rt.append(ev.Event(ev.MESSAGE, ev.stream(ev.TO_HELPDESK, cid), data))

    for cid in done:
        write(cid)
    while done and time.monotonic() < deadline:
        with fake.lock:
            tickets = {t.get("external_id"): tid for tid, t in fake.tickets.items()}
            waiting = [c for c in done if not answered[c] and c in tickets]
            # Only tickets with new comments are read again: the fake serves under this lock.
            comments = {c: fake.comments(tickets[c]) for c in waiting}
        arrived = {}
        for cid, items in comments.items():
            if len(items) != seen_comments.get(cid):
                seen_comments[cid] = len(items)
                arrived[cid] = len(numbers(_USER, [str(c["body"]) for c in items]))
        for cid, n in arrived.items():
            if n >= 2 * (done[cid] + 1):
                # The ticket is the bridge's once the store maps it (a webhook before
                # that is ignored), which is before its comments can be in it.
                fake.agent_comment(tickets[cid], agent, f"r #{done[cid]}")
                headers, body = fake.webhook_request(tickets[cid], secret=WEBHOOK_SECRET)
                r = web.post(
                    f"http://127.0.0.1:{port}/webhooks/zendesk", data=body, headers=headers
                )
                if r.status_code != 200:
                    raise RuntimeError(f"the webhook was refused: {r.status_code} {r.text[:200]}")
                answered[cid] = True
        with botpress.lock:
            new = botpress.received[read:]
            read += len(new)
        for call in new:
            if call["route"] == "message-from-agent":
                received[call["body"]["remoteConversationId"]] += 1
        for cid in [c for c in done if answered[c] and received[c] > done[c]]:
            done[cid] += 1
            answered[cid] = False
            if done[cid] == ROUNDS:
                del done[cid]
            else:
                write(cid)
        time.sleep(0.05)
    return len(done)
