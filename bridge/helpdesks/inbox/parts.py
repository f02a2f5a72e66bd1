"""The console's changing parts (the queue, the view counts, the open conversation) as
server-rendered HTML fragments, without Flask: the web's /console/parts and the live
process (live.py) render them with this one implementation.

The fragments (templates/console/_nav.html, _queue.html, _conversation.html) use no
`url_for` and no request: a plain Jinja2 environment on the same templates renders exactly
what Flask's does (autoescape on for .html, the filters `waited` and `web_url`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any
from urllib.parse import urlparse

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from bridge.helpdesks.inbox.desk import VIEWS, Desk, View, waited
from bridge.storage import Store


def web_url(url: object) -> str:
    """`url` when it is an http(s) address a page may link to, else ''."""
    if not isinstance(url, str) or len(url) > 4096:
        return ""
    parsed = urlparse(url)
    return url if parsed.scheme in ("http", "https") and parsed.netloc else ""


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bridge.helpdesks.inbox", "templates"),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    env.filters["waited"] = waited
    env.filters["web_url"] = web_url
    return env


ENV = environment()
_NAV = ENV.get_template("console/_nav.html")
_QUEUE = ENV.get_template("console/_queue.html")
_ROW = ENV.get_template("console/_row.html")
_CONVERSATION = ENV.get_template("console/_conversation.html")


def view_of(raw: str | None) -> View:
    return raw if raw in VIEWS else "unassigned"  # type: ignore[return-value]


class Memo:
    """A small, thread-safe memory of recent results by key: what fifty consoles ask for
    after one change is mostly the same (the open tickets at that version, the same queue
    with the same unread marks), so it is read and rendered once, not fifty times. The
    consoles wake together: the first one computes, the others wait for its result."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.pending: dict[Hashable, threading.Event] = {}
        self.lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        while True:
            with self.lock:
                if key in self.items:
                    self.items.move_to_end(key)
                    return self.items[key]
                waiting = self.pending.get(key)
                if waiting is None:
                    done = self.pending[key] = threading.Event()
                    break
            waiting.wait(5.0)  # then look again (its maker may have failed)
        try:
            value = make()  # outside the lock: the other keys go on meanwhile
            with self.lock:
                self.items[key] = value
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
            return value
        finally:
            with self.lock:
                del self.pending[key]
            done.set()


#: Per process: the open tickets by inbox version, and rendered fragments by their inputs.
SUMMARIES = Memo(size=4)
FRAGMENTS = Memo(size=4096)


def context(
    store: Store,
    agent: str,
    view: View,
    tid: str | None,
    since: int | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """What the page shows; with `since`, the open ticket's timeline only if it changed
    after that inbox version (else its `messages` is None). Opening a ticket marks it read
    by `agent`. `version`: the inbox version, when the caller just read it."""
    desk = Desk(store)
    if version is None:
        version = desk.version()  # read first: a change after it shows on the next update
    ticket = desk.ticket(tid, since=since) if tid else None
    # Read after `version`: at worst newer than their label, never older; the next change
    # moves the version and they are read again.
    summaries = SUMMARIES.get((store.prefix, version), desk.open_summaries)
    opened = ticket["id"] if ticket is not None else None
    rows, counts, was_unread = desk.board(view, agent, summaries=summaries, opened=opened)
    # Showing it marks it read; an open ticket already read costs no write.
    if ticket is not None and (was_unread or ticket["status"] != "open"):
        desk.mark_seen(ticket["id"], agent, ticket["incoming"])
    return {
        "v": version,
        "view": view,
        "rows": rows,
        "counts": counts,
        "ticket": ticket,
        "now": time.time(),
        "agent": agent,
    }


def render(ctx: dict[str, Any]) -> dict[str, Any]:
    """{v, nav, queue, conversation}: `conversation` is None when the open ticket has not
    changed since the version asked about (the page keeps what it shows)."""
    ticket = ctx["ticket"]
    unchanged = ticket is not None and ticket["messages"] is None
    # Each fragment is keyed by everything it shows; times are shown to the second.
    second = int(ctx["now"])
    counts = tuple((v, c["total"], c["unread"]) for v, c in sorted(ctx["counts"].items()))
    rows = tuple((r["id"], r["unread"]) for r in ctx["rows"])
    current = ticket["id"] if ticket is not None else ""
    mine = ctx["agent"] if ctx["view"] == "mine" else ""
    queue_key = ("queue", ctx["v"], ctx["view"], mine, current, second, rows)

    def row(r: dict[str, Any]) -> Markup:
        # Rows differ between consoles only by their read marks and which one is open.
        is_current = r["id"] == current
        key = ("row", ctx["v"], ctx["view"], r["id"], r["unread"], is_current, second)
        html = FRAGMENTS.get(key, lambda: _ROW.render(ctx, r=r, current=is_current))
        return Markup(html)

    def queue() -> str:
        return str(_QUEUE.render(ctx, row_html=[row(r) for r in ctx["rows"]]))

    conversation = None
    if not unchanged:
        if ticket is None:
            conversation = _CONVERSATION.render(ctx)
        else:
            yours = ticket["assignee"] == ctx["agent"]
            key = ("conversation", ctx["v"], ticket["id"], len(ticket["messages"]), yours, second)
            conversation = FRAGMENTS.get(key, lambda: _CONVERSATION.render(ctx))
    return {
        "v": ctx["v"],
        "nav": FRAGMENTS.get(("nav", ctx["view"], counts), lambda: _NAV.render(ctx)),
        "queue": FRAGMENTS.get(queue_key, queue),
        "conversation": conversation,
    }


def parts(
    store: Store,
    agent: str,
    view: View,
    tid: str | None,
    since: int | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """What GET /console/parts answers: the inbox version and the rendered fragments."""
    return render(context(store, agent, view, tid, since, version))
