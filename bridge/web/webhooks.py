"""Inbound helpdesk webhooks: verified by the helpdesk's own scheme, then a doorbell ring."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bridge import metrics
from bridge.errors import WebhookRejected
from bridge.web import runtime
from bridge.web.errors import error

blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/<helpdesk>")
def webhook(helpdesk: str) -> Response | tuple[Response, int]:
    rt = runtime()
    if helpdesk != rt.helpdesk.name:
        return error(404, "not found", f"this bridge runs the {rt.helpdesk.name} helpdesk")
    body = request.get_data(cache=False)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        ticket_ids = rt.helpdesk.verify_webhook(headers, body)
    except WebhookRejected as exc:
        return error(exc.status, "webhook rejected", str(exc))
    rung, unknown = [], []
    for tid in ticket_ids:
        cid = rt.store.conversation_for_ticket(tid)
        if cid is None:
            unknown.append(tid)  # not a bridge ticket (or not created yet): nothing to read
            continue
        rt.ring(cid)
        metrics.rang(cid, f"webhooks/{helpdesk}")
        rung.append(cid)
    return jsonify({"ok": True, "rung": rung, "ignored": unknown})
