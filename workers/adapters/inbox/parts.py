"""The console's changing parts (the queue, the view counts, the open conversation) as
server-rendered HTML fragments, without Flask: the web's /console/parts and the live
process (live.py) render them with this one implementation.

The fragments (templates/console/_nav.html, _queue.html, _conversation.html) use no
`url_for` and no request: a plain Jinja2 environment on the same templates renders exactly
what Flask's does (autoescape on for .html, the filters `waited` and `web_url`).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from jinja2 import Environment, PackageLoader, select_autoescape

from bridge.storage import Store
from workers.adapters.inbox.desk import VIEWS, Desk, View, waited


def web_url(url: object) -> str:
    """`url` when it is an http(s) address a page may link to, else ''."""
    if not isinstance(url, str) or len(url) > 4096:
        return ""
    parsed = urlparse(url)
    return url if parsed.scheme in ("http", "https") and parsed.netloc else ""


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("workers.adapters.inbox", "templates"),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    env.filters["waited"] = waited
    env.filters["web_url"] = web_url
    return env


ENV = environment()
_NAV = ENV.get_template("console/_nav.html")
_QUEUE = ENV.get_template("console/_queue.html")
_CONVERSATION = ENV.get_template("console/_conversation.html")


def view_of(raw: str | None) -> View:
    return raw if raw in VIEWS else "unassigned"  # type: ignore[return-value]


def context(
    store: Store, agent: str, view: View, tid: str | None, since: int | None = None
) -> dict[str, Any]:
    """What the page shows; with `since`, the open ticket's timeline only if it changed
    after that inbox version (else its `messages` is None). Opening a ticket marks it read
    by `agent`."""
    desk = Desk(store)
    version = desk.version()  # read first: a change after it shows on the next update
    ticket = desk.ticket(tid, since=since) if tid else None
    if ticket is not None:
        desk.mark_seen(ticket["id"], agent, ticket["incoming"])
    rows, counts = desk.board(view, agent)
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
    unchanged = ctx["ticket"] is not None and ctx["ticket"]["messages"] is None
    return {
        "v": ctx["v"],
        "nav": _NAV.render(ctx),
        "queue": _QUEUE.render(ctx),
        "conversation": None if unchanged else _CONVERSATION.render(ctx),
    }


def parts(
    store: Store, agent: str, view: View, tid: str | None, since: int | None = None
) -> dict[str, Any]:
    """What GET /console/parts answers: the inbox version and the rendered fragments."""
    return render(context(store, agent, view, tid, since))
