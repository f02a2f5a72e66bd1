"""Inbound helpdesk webhooks: verified by the helpdesk's own scheme, then a doorbell ring."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bridge import metrics
from bridge.errors import WebhookRejected
from bridge.web import body, runtime
from bridge.web.errors import error

blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/<helpdesk>")
@blueprint.post("/webhooks/<helpdesk>/<url_token>")
def webhook(helpdesk: str, url_token: str | None = None) -> Response | tuple[Response, int]:
    """A helpdesk's webhook. Helpdesks that cannot sign (Freshdesk, older Chatwoot) post to
    `/webhooks/<helpdesk>/<secret token>`; the adapter compares the token."""
    rt = runtime()
    if helpdesk != rt.helpdesk.name:
        return error(404, "not found", f"this bridge runs the {rt.helpdesk.name} helpdesk")
    raw = body.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    # Passed only when present: adapters written for signatures alone take two arguments.
    extra = {} if url_token is None else {"url_token": url_token}
    if extra and not _takes_url_token(rt.helpdesk.verify_webhook):
        return error(404, "not found", f"the {helpdesk} helpdesk takes no token in its URL")
    try:
        ticket_ids = rt.helpdesk.verify_webhook(headers, raw, **extra)
    except WebhookRejected as exc:
        return error(exc.status, "webhook rejected", str(exc))
    # Verified first: an unsigned request can neither ring nor use up a delivery id.
    delivery = rt.helpdesk.delivery_id(headers)
    if delivery and rt.store.webhook_seen(helpdesk, delivery):
        return jsonify({"ok": True, "duplicate": True, "rung": [], "ignored": []})
    rung, unknown = [], []
    for tid in ticket_ids:
        cid = rt.store.conversation_for_ticket(tid)
        if cid is None:
            unknown.append(tid)  # not a bridge ticket (or not created yet): nothing to read
            continue
        rt.ring(cid)
        metrics.rang(cid, f"webhooks/{helpdesk}")
        rung.append(cid)
    # Remembered once rung: a delivery that failed half-way is rung again by its retry.
    if delivery:
        rt.store.remember_webhook(helpdesk, delivery)
    return jsonify({"ok": True, "rung": rung, "ignored": unknown})


@cache
def _takes_url_token(verify: Callable[..., Any]) -> bool:
    return "url_token" in inspect.signature(verify).parameters
