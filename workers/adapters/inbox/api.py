"""The inbox's agent API, under /inbox/api/ (bearer ADMIN_TOKEN)."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, jsonify, request

from bridge.web import body, runtime
from bridge.web.auth import require_admin
from bridge.web.errors import error
from workers.adapters.inbox.adapter import InboxHelpdesk

blueprint = Blueprint("inbox", __name__, url_prefix="/inbox/api")


def _inbox() -> InboxHelpdesk:
    return cast(InboxHelpdesk, runtime().helpdesk)


@blueprint.get("/conversations")
@require_admin
def conversations() -> Any:
    status = request.args.get("status") or None
    if status not in (None, "open", "closed"):
        return error(400, "invalid request", {"status": "must be open or closed"})
    return jsonify({"conversations": _inbox().tickets(status=status)})


@blueprint.get("/conversations/<cid>")
@require_admin
def conversation(cid: str) -> Any:
    ticket = _inbox().ticket(cid)
    if ticket is None:
        return error(404, "unknown conversation", {"id": cid})
    return jsonify(ticket)


def _act(cid: str, kind: str, *, needs_text: bool) -> Any:
    raw = body.read()
    # Closing needs nothing: an empty body will do.
    data = body.json_object(raw) if raw.strip() or kind != "close" else {}
    problems: dict[str, str] = {}
    agent = data.get("agent", "agent" if kind == "close" else None)
    if not isinstance(agent, str) or not agent.strip() or len(agent) > 200:
        problems["agent"] = (
            "a non-empty string of at most 200 characters (the agent's id) is required"
        )
    text = data.get("text", "")
    if needs_text and (not isinstance(text, str) or not text.strip() or len(text) > 65536):
        problems["text"] = "a non-empty string of at most 65536 characters is required"
    if problems:
        return error(400, "invalid request", problems)
    try:
        entry = _inbox().agent_action(cid, kind, str(agent).strip(), text if needs_text else "")
    except LookupError:
        return error(404, "unknown conversation", {"id": cid})
    except ValueError as exc:
        return error(409, "conversation closed", str(exc))
    runtime().ring(cid)
    return jsonify({"ok": True, "entry": entry})


@blueprint.post("/conversations/<cid>/messages")
@require_admin
def reply(cid: str) -> Any:
    return _act(cid, "message", needs_text=True)


@blueprint.post("/conversations/<cid>/assign")
@require_admin
def assign(cid: str) -> Any:
    return _act(cid, "assign", needs_text=False)


@blueprint.post("/conversations/<cid>/close")
@require_admin
def close(cid: str) -> Any:
    return _act(cid, "close", needs_text=False)
