"""The operator API under `/admin/api/` (bearer ADMIN_TOKEN): dead letters and conversations.

The same operations as `hitl-bridge dlq ...` and `hitl-bridge conversations show`, with the
same output (bridge/reports.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from bridge import reports
from bridge.web import runtime
from bridge.web.auth import require_admin
from bridge.web.errors import error

blueprint = Blueprint("admin", __name__, url_prefix="/admin/api")

MAX_LIMIT = 500
#: How long a replay waits for a conversation's worker to finish its current delivery.
REPLAY_WAIT = 10.0


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}")
    return value


@blueprint.get("/dead-letters")
@require_admin
def list_dead_letters() -> Any:
    try:
        limit = _int_arg("limit", 100, 1, MAX_LIMIT)
        offset = _int_arg("offset", 0, 0, 10**9)
    except ValueError as exc:
        return error(400, "invalid query", str(exc))
    store = runtime().store
    total = store.count_dead_letters()
    items = [reports.dead_letter_summary(d) for d in store.dead_letters(limit, offset)]
    nxt = offset + limit if offset + limit < total else None
    return jsonify(
        {"items": items, "total": total, "offset": offset, "limit": limit, "next_offset": nxt}
    )


@blueprint.get("/dead-letters/<dlq_id>")
@require_admin
def show_dead_letter(dlq_id: str) -> Any:
    d = runtime().store.get_dead_letter(dlq_id)
    if d is None:
        return error(404, "unknown dead letter", {"id": dlq_id})
    return jsonify(reports.dead_letter_detail(d))


@blueprint.post("/dead-letters/<dlq_id>/replay")
@require_admin
def replay_dead_letter(dlq_id: str) -> Any:
    rt = runtime()
    try:
        stream = rt.store.replay(dlq_id, lease_seconds=rt.settings.lease_seconds, wait=REPLAY_WAIT)
    except TimeoutError as exc:
        resp, status = error(409, "conversation busy", str(exc))
        resp.headers["Retry-After"] = "5"
        return resp, status
    if stream is None:
        return error(404, "unknown dead letter", {"id": dlq_id})
    rt.kick(stream)
    return jsonify({"ok": True, "id": dlq_id, "stream": stream})


@blueprint.delete("/dead-letters/<dlq_id>")
@require_admin
def purge_dead_letter(dlq_id: str) -> Any:
    if not runtime().store.purge_dead_letter(dlq_id):
        return error(404, "unknown dead letter", {"id": dlq_id})
    return jsonify({"ok": True, "id": dlq_id})


@blueprint.get("/conversations/<cid>")
@require_admin
def show_conversation(cid: str) -> Any:
    report = reports.conversation_report(runtime(), cid)
    if report is None:
        return error(404, "unknown conversation", {"id": cid})
    return jsonify(report)
