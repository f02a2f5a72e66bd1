"""A whole bridge deployment on loopback, a load that remembers what was accepted, and the
checks that every accepted event arrived exactly once and in order.

`Deployment` runs the Procfile's `web` (gunicorn), `worker` (Celery) and `beat` processes
against a persistent redis-server (AOF, fsync every second: docs/reliability.md), with the
fake Botpress and the helpdesk side from tests/reliability/helpdesk.py.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

from tests.conftest import ADMIN_TOKEN, SECRET
from tests.support.processes import Process, start_worker
from tests.support.redis_server import RedisServer, free_port


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class Deployment:
    """Procfile processes on loopback; every process's output goes to a log in `log_dir`."""

    def __init__(self, env: dict[str, str], redis_server: RedisServer, log_dir: Path) -> None:
        self.redis = redis_server
        self.log_dir = log_dir
        self.port = free_port()
        self.env = {
            **env,
            "REDIS_URL": redis_server.url,
            "PORT": str(self.port),
            # Loopback only, whatever the config file binds to.
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}",
        }
        self.web: Process | None = None
        self.workers: list[Process] = []
        self.beat: Process | None = None
        self._tags: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _tag(self, name: str) -> str:
        self._tags[name] += 1
        return str(self._tags[name])

    def start_web(self) -> Process:
        self.web = Process("web", self.env, self.log_dir, self._tag("web"))
        wait_until(self._web_ready, 30, "gunicorn to answer /healthz")
        return self.web

    def _web_ready(self) -> bool:
        assert self.web is not None
        if self.web.proc.poll() is not None:
            raise AssertionError(f"web exited:\n{self.web.output()[-3000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, **overrides: str) -> Process:
        p = start_worker({**self.env, **overrides}, self.log_dir, self._tag("worker"))
        self.workers.append(p)
        return p

    def start_beat(self) -> Process:
        self.beat = Process("beat", self.env, self.log_dir, self._tag("beat"))
        self.beat.wait_for('"beat started"', timeout=30)
        return self.beat

    def start(self, workers: int = 2) -> Deployment:
        self.start_web()
        for _ in range(workers):
            self.start_worker()
        self.start_beat()
        return self

    def processes(self) -> list[Process]:
        return [p for p in [self.web, *self.workers, self.beat] if p is not None]

    def stop(self) -> None:
        for p in self.processes():
            if p.proc.poll() is None:
                p.stop(timeout=30)

    def worker_log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line the workers printed (plain Celery lines are skipped)."""
        out: list[dict[str, Any]] = []
        for p in self.workers:
            for line in p.output().splitlines():
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        return out

    def dead_letters(self) -> int:
        client = redis.Redis.from_url(self.redis.url)
        try:
            return int(client.zcard("hb:dlq:order"))
        finally:
            client.close()

    def resends(self) -> Counter[str]:
        """Stream -> how many times a worker resent a head whose send was cut short."""
        return Counter(
            str(r["stream"])
            for r in self.worker_log_lines()
            if r.get("msg") == "resending after an interrupted send"
        )


@dataclass
class Outcome:
    """What one request got: a status, or the exception that stood for one."""

    status: int | None
    error: str = ""


@dataclass
class Load:
    """Talks to the bridge the way Botpress and agents do, remembering every answer.

    Each conversation's messages are sent one after the other (Botpress sends one
    conversation's messages in order); conversations run in parallel threads.
    """

    base: str
    threads: int = 16
    timeout: float = 10.0
    users: dict[str, str] = field(default_factory=dict)  # cid -> uid
    sent: dict[str, list[tuple[str, Outcome]]] = field(default_factory=lambda: defaultdict(list))
    replies: dict[str, list[tuple[str, Outcome]]] = field(default_factory=lambda: defaultdict(list))
    _local: threading.local = field(default_factory=threading.local)

    def session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        return s

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Outcome:
        try:
            r = self.session().post(
                f"{self.base}{path}", json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return Outcome(None, type(exc).__name__)
        return Outcome(r.status_code, "" if r.status_code == 200 else r.text[:300])

    def botpress(self, route: str, body: dict[str, Any]) -> tuple[Outcome, Any]:
        try:
            r = self.session().post(
                f"{self.base}/botpress/{SECRET}/{route}", json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return Outcome(None, type(exc).__name__), None
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        return Outcome(r.status_code, "" if r.status_code == 200 else r.text[:300]), data

    def open_conversations(self, n: int) -> list[str]:
        def one(i: int) -> str:
            out, user = self.botpress(
                "createRemoteUser",
                {"type": "createRemoteUser", "payload": {"role": "end-user", "name": f"u{i}"}},
            )
            assert out.status == 200, out
            out, conv = self.botpress(
                "createRemoteConversation",
                {"type": "createRemoteConversation", "payload": {"title": f"conversation {i}"}},
            )
            assert out.status == 200, out
            self.users[conv["id"]] = user["id"]
            return str(conv["id"])

        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(one, range(n)))

    def say(self, cid: str, text: str) -> Outcome:
        uid = self.users[cid] if len(self.sent[cid]) % 3 else "BOT"
        out, _ = self.botpress(
            "botSendsMessage",
            {
                "type": "botSendsMessage",
                "remoteConversationId": cid,
                "remoteUserId": uid,
                "payload": {"text": text},
            },
        )
        self.sent[cid].append((text, out))
        return out

    def inbox_reply(self, cid: str, text: str, agent: str = "alice") -> Outcome:
        """An agent replies through the inbox's agent API (which rings the doorbell)."""
        return self.post(
            f"/inbox/api/conversations/{cid}/messages",
            {"agent": agent, "text": text},
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def reply(self, cid: str, text: str, send: Callable[[str, str], Outcome]) -> Outcome:
        """An agent reply sent by `send(cid, text)`, remembered with its answer."""
        out = send(cid, text)
        self.replies[cid].append((text, out))
        return out

    def run(
        self,
        cids: Sequence[str],
        messages: int,
        *,
        reply_every: int = 0,
        send_reply: Callable[[str, str], Outcome] | None = None,
        pace: float = 0.0,
    ) -> None:
        """Each conversation sends `messages` messages, `pace` seconds apart, and an agent
        replies (through `send_reply`) after every `reply_every` of them."""
        send = send_reply or self.inbox_reply

        def conversation(cid: str) -> None:
            for i in range(messages):
                self.say(cid, f"{cid}#m{i}")
                if reply_every and i % reply_every == reply_every - 1:
                    self.reply(cid, f"{cid}#r{i // reply_every}", send)
                if pace:
                    time.sleep(pace)

        with ThreadPoolExecutor(self.threads) as pool:
            for f in [pool.submit(conversation, cid) for cid in cids]:
                f.result()

    # -- what the bridge owes ---------------------------------------------------------------
    @staticmethod
    def _split(calls: Iterable[tuple[str, Outcome]]) -> tuple[list[str], set[str]]:
        accepted = [t for t, o in calls if o.status == 200]
        # No answer, or 503 (the write may have landed before the connection broke): such
        # an event may arrive or not, but never twice and never out of place.
        unknown = {t for t, o in calls if o.status is None or o.status == 503}
        return accepted, unknown

    def statuses(self) -> Counter[int | None]:
        return Counter(
            o.status for calls in (*self.sent.values(), *self.replies.values()) for _, o in calls
        )

    def expected_messages(self) -> dict[str, tuple[list[str], set[str]]]:
        return {cid: self._split(calls) for cid, calls in self.sent.items()}

    def expected_replies(self) -> dict[str, tuple[list[str], set[str]]]:
        return {cid: self._split(calls) for cid, calls in self.replies.items()}


_SEQ = re.compile(r"#[mr](\d+)$")


def seq(text: str) -> int:
    m = _SEQ.search(text)
    assert m, text
    return int(m.group(1))


@dataclass
class Verdict:
    """Per side: missing events, duplicates, out-of-order conversations."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    duplicates: dict[str, Counter[str]] = field(default_factory=dict)
    disordered: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)
    delivered: int = 0

    def summary(self) -> str:
        return (
            f"delivered={self.delivered} missing={sum(map(len, self.missing.values()))} "
            f"duplicates={sum(sum(c.values()) for c in self.duplicates.values())} "
            f"disordered={len(self.disordered)} unexpected={len(self.unexpected)}"
        )


def judge(expected: dict[str, tuple[list[str], set[str]]], got: dict[str, list[str]]) -> Verdict:
    """Compare what each conversation must have received (accepted, in order; the unknown
    ones at most once) with what it received."""
    v = Verdict()
    for cid, (accepted, unknown) in expected.items():
        received = got.get(cid, [])
        v.delivered += len(received)
        counts = Counter(received)
        dups = Counter({t: n - 1 for t, n in counts.items() if n > 1})
        if dups:
            v.duplicates[cid] = dups
        missing = [t for t in accepted if t not in counts]
        if missing:
            v.missing[cid] = missing
        allowed = set(accepted) | unknown
        extra = [t for t in counts if t not in allowed]
        if extra:
            v.unexpected[cid] = extra
        firsts: list[str] = []
        seen: set[str] = set()
        for t in received:
            if t not in seen:
                seen.add(t)
                firsts.append(t)
        if [seq(t) for t in firsts] != sorted(seq(t) for t in firsts):
            v.disordered[cid] = firsts
    return v


def settle(check: Callable[[], Verdict], timeout: float, what: str) -> Verdict:
    """Wait until nothing is missing, then a little longer so late duplicates show up."""
    last: list[Verdict] = []

    def done() -> bool:
        last[:] = [check()]
        return not last[0].missing

    try:
        wait_until(done, timeout, what, every=0.5)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}: {last[0].summary()} {dict(list(last[0].missing.items())[:3])}"
        ) from None
    time.sleep(1.5)
    return check()


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
