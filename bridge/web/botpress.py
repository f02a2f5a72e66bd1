"""The five routes Botpress's HITL API integration calls (DESIGN.md §2).

The base URL configured in Botpress ends with the secret segment, because Botpress sends
no authentication header: `https://bridge.example.com/botpress/<BRIDGE_SECRET>`.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from flask import Blueprint, Response, abort, jsonify
from marshmallow import ValidationError

from bridge import contract, ids, json_codec, metrics
from bridge import events as ev
from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.storage import Conversation, NotFound, User
from bridge.web import body, runtime
from bridge.web.errors import error

blueprint = Blueprint("botpress", __name__)
log = logging.getLogger("hitl.web")

_PROFILE_KEYS = {"role", "name", "pictureUrl", "email"}


@blueprint.post("/botpress/<secret>/<route>")
def ingress(secret: str, route: str) -> Any:
    rt = runtime()
    # Wrong secret: as if the route did not exist, before reading anything.
    if not secret_matches(secret.encode(), rt.settings):
        abort(404)
    if route not in contract.ROUTES:
        abort(404)
    raw = body.read()
    try:
        loaded = json_codec.loads_strict(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error(400, "malformed JSON", "the request body must be a JSON object")
    try:
        data = contract.load(route, loaded)
    except ValidationError as exc:
        return error(400, "invalid request", exc.messages)
    try:
        return HANDLERS[route](rt, data)
    except NotFound as exc:
        return error(404, f"unknown {exc.what}", {exc.what: data.get(exc.what)})


#: Seconds between two log lines about calls made with BRIDGE_SECRET_PREVIOUS.
PREVIOUS_NOTE_EVERY = 60.0
_previous_noted = 0.0


def secret_matches(given: bytes, settings: Settings) -> bool:
    """Whether `given` is BRIDGE_SECRET (or, while a rotation lasts, BRIDGE_SECRET_PREVIOUS);
    compared in constant time. Calls still made with the previous secret are logged, at
    most once a minute per process: when they stop, the rotation is over."""
    global _previous_noted
    if hmac.compare_digest(given, settings.bridge_secret.encode()):
        return True
    previous = settings.bridge_secret_previous
    if previous is None or not hmac.compare_digest(given, previous.encode()):
        return False
    now = time.monotonic()
    if now - _previous_noted >= PREVIOUS_NOTE_EVERY:
        _previous_noted = now
        log.warning("a Botpress call used BRIDGE_SECRET_PREVIOUS; the rotation is not over")
    return True


#: The body of `{"ok": true}` answers, serialised once.
OK_BODY = b'{"ok":true}\n'


def ok() -> Response:
    """`{"ok": true}`, the answer of the routes that return nothing else (serialised once)."""
    return Response(OK_BODY, mimetype="application/json")


def ping(rt: Runtime, data: dict[str, Any]) -> Response:
    rt.store.ping()  # saying "ok" while storage is down would hide a broken setup
    return ok()


def create_remote_user(rt: Runtime, data: dict[str, Any]) -> Response:
    p = data["payload"]
    user = User(
        id=ids.user_id(),
        name=p.get("name") or "",
        email=p.get("email") or "",
        picture_url=p.get("pictureUrl") or "",
        role=p.get("role") or "end-user",
        extra={k: v for k, v in p.items() if k not in _PROFILE_KEYS},
    )
    event = ev.Event(ev.USER_UPSERT, ev.stream(ev.USER, user.id), {"user": user.id})
    rt.start(rt.store.create_user(user, event))
    metrics.accepted(event, "createRemoteUser")
    return jsonify({"id": user.id})


def create_remote_conversation(rt: Runtime, data: dict[str, Any]) -> Any:
    p = data.get("payload") or {}
    user_id = p.get("userId") or ""
    if user_id and rt.store.user(user_id) is None:
        user_id = ""  # a Botpress id we never minted: the requester is learned later
    conv = Conversation(
        id=ids.conversation_id(),
        created_at=time.time(),
        title=p.get("title") or "",
        description=p.get("description") or "",
    )
    history = p.get("messages") or p.get("messageHistory") or []
    event = ev.Event(
        ev.CONVERSATION_CREATE,
        ev.stream(ev.TO_HELPDESK, conv.id),
        {
            "title": conv.title,
            "description": conv.description,
            "user_id": user_id,
            "history": [
                {
                    "text": h["text"],
                    "author": h.get("author") or "",
                    "timestamp": h.get("timestamp"),
                }
                for h in history
            ],
        },
    )
    rt.start(rt.store.create_conversation(conv, event))
    metrics.accepted(event, "createRemoteConversation")
    return jsonify({"id": conv.id})


def bot_sends_message(rt: Runtime, data: dict[str, Any]) -> Response:
    accept_message(rt, data)
    return ok()


def accept_message(rt: Runtime, data: dict[str, Any]) -> None:
    """Store a validated botSendsMessage body as a message event (bridge.web.lane calls
    this too); raises NotFound, with nothing stored, when its conversation or author is
    unknown."""
    cid, uid, payload = data["remoteConversationId"], data["remoteUserId"], data["payload"]
    event = ev.Event(
        ev.MESSAGE,
        ev.stream(ev.TO_HELPDESK, cid),
        {
            "author": uid,
            "type": contract.message_type(payload),
            "payload": payload,
        },
    )
    require = [("remoteConversationId", rt.store.conv_key(cid))]
    if uid != "BOT":
        require.append(("remoteUserId", rt.store.user_key(uid)))
    rt.append(event, require=require)
    metrics.accepted(event, "botSendsMessage")


def close_remote_ticket(rt: Runtime, data: dict[str, Any]) -> Response:
    bp_cid = data["payload"]["botpressConversationId"]
    cid = rt.store.conversation_for_botpress(bp_cid)
    if cid:
        event = ev.Event(
            ev.CONVERSATION_CLOSE,
            ev.stream(ev.TO_HELPDESK, cid),
            {"botpress_conversation_id": bp_cid},
        )
        rt.append(event, require=[("conversation", rt.store.conv_key(cid))])
    else:
        # Resolved by a worker through the Botpress API, never guessed here.
        event = ev.Event(
            ev.CLOSE_RESOLVE,
            ev.stream(ev.RESOLVE, bp_cid),
            {"botpress_conversation_id": bp_cid},
        )
        rt.append(event)
    metrics.accepted(event, "closeRemoteTicket")
    return ok()


HANDLERS = {
    "ping": ping,
    "createRemoteUser": create_remote_user,
    "createRemoteConversation": create_remote_conversation,
    "botSendsMessage": bot_sends_message,
    "closeRemoteTicket": close_remote_ticket,
}
