"""The inbox's agent API, under /inbox/api/ (bearer ADMIN_TOKEN): for scripts and bots;
people use the console."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from bridge.helpdesks.inbox.desk import Desk, DeskError
from bridge.web import body, runtime
from bridge.web.auth import require_admin
from bridge.web.errors import error

blueprint = Blueprint("inbox", __name__, url_prefix="/inbox/api")


def _desk() -> Desk:
    return Desk(runtime().store)


@blueprint.get("/conversations")
@require_admin
def conversations() -> Any:
    status = request.args.get("status") or None
    if status not in (None, "open", "closed"):
        return error(400, "invalid request", {"status": "must be open or closed"})
    return jsonify({"conversations": _desk().tickets(status=status)})


@blueprint.get("/conversations/<cid>")
@require_admin
def conversation(cid: str) -> Any:
    ticket = _desk().ticket(cid)
    if ticket is None:
        return error(404, "unknown conversation", {"id": cid})
    return jsonify(ticket)


def _act(cid: str, kind: str) -> Any:
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
    if kind in ("message", "note") and (
        not isinstance(text, str) or not text.strip() or len(text) > 65536
    ):
        problems["text"] = "a non-empty string of at most 65536 characters is required"
    assignee = data.get("assignee", "")
    if kind == "assign" and (not isinstance(assignee, str) or len(assignee) > 200):
        problems["assignee"] = "the agent to give the conversation to (default: `agent`)"
    if problems:
        return error(400, "invalid request", problems)
    try:
        action = _desk().act(
            cid, kind, str(agent).strip(), text=str(text), assignee=str(assignee).strip()
        )
    except DeskError as exc:
        if exc.status == 404:
            return error(404, "unknown conversation", {"id": cid})
        if exc.status == 409:
            return error(409, "conversation closed", str(exc))
        return error(exc.status, "invalid request", str(exc))
    if action.rings:
        runtime().ring(cid)
    return jsonify({"ok": True, "entry": action.entry})


@blueprint.post("/conversations/<cid>/messages")
@require_admin
def reply(cid: str) -> Any:
    return _act(cid, "message")


@blueprint.post("/conversations/<cid>/notes")
@require_admin
def note(cid: str) -> Any:
    return _act(cid, "note")


@blueprint.post("/conversations/<cid>/assign")
@require_admin
def assign(cid: str) -> Any:
    return _act(cid, "assign")


@blueprint.post("/conversations/<cid>/close")
@require_admin
def close(cid: str) -> Any:
    return _act(cid, "close")
