"""The playground's routes (listed in bridge/playground/__init__.py)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Response, abort, jsonify, render_template, request

from bridge.config import PLAYGROUND_BOT_ID, PLAYGROUND_PATH, playground_token
from bridge.playground import integration as bp
from bridge.playground.store import (
    CONVERSATION_PREFIX,
    MAX_LOG,
    RECEIVED,
    SENT,
    USER_PREFIX,
    PlaygroundStore,
    Session,
    mint,
)
from bridge.web import body, runtime
from bridge.web.errors import error

F = TypeVar("F", bound=Callable[..., Any])

blueprint = Blueprint(
    "playground",
    __name__,
    url_prefix=PLAYGROUND_PATH,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: Agents' images come from anywhere (the helpdesk's attachments, the inbox console's files),
#: so images alone may load from other https origins; everything else is this origin's.
CSP = (
    "default-src 'self'; img-src 'self' https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: Limits of what the page may send (a person typing, not a load test).
LIMITS = {"name": 200, "email": 254, "title": 200, "description": 2000, "text": 4000}


@blueprint.after_request
def security_headers(resp: Response) -> Response:
    resp.headers.update(SECURITY_HEADERS)
    if request.endpoint != "playground.static":
        resp.headers["Cache-Control"] = "no-store"
    return resp


def store() -> PlaygroundStore:
    return PlaygroundStore(runtime().store)


# -- the page --------------------------------------------------------------------------


@blueprint.get("/")
def page() -> Any:
    return render_template("playground.html")


# -- the page's API -----------------------------------------------------------------------


def page_api(view: F) -> F:
    """JSON in: a POST must say `Content-Type: application/json` (which no cross-site form
    can send, and which a cross-site script may only send after a preflight nobody answers),
    and requests the browser marks as cross-site are refused."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get("Sec-Fetch-Site", "same-origin") == "cross-site":
            return error(403, "cross-site request", "the playground's API is for its own page")
        if request.method == "POST" and request.mimetype != "application/json":
            return error(415, "unsupported media type", "send Content-Type: application/json")
        return view(*args, **kwargs)

    return cast(F, guarded)


class Invalid(ValueError):
    """A field of the page's request is not what it must be."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(why)
        self.name = name
        self.why = why


def text_field(data: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid(name, "must be a string")
    value = value.strip()
    if required and not value:
        raise Invalid(name, "must not be empty")
    if len(value) > LIMITS[name]:
        raise Invalid(name, f"must be at most {LIMITS[name]} characters")
    return value


def refused(exc: bp.NotAccepted) -> tuple[Response, int]:
    status = 503 if exc.status == 503 else 502
    return error(
        status,
        f"the bridge refused {exc.route}",
        {"status": exc.status, "answer": exc.answer},
    )


def session_or_404(bpcid: str) -> Session:
    found = store().get(bpcid)
    if found is None:
        abort(error(404, "unknown playground conversation", {"id": bpcid})[0])
    return found


def send(session: Session, route: str, call: dict[str, Any], *, ended: str = "") -> int:
    """Make one call of the integration's and log it; the log entry's number."""
    bp.call(route, call)
    return store().record(session, SENT, route, call, ended=ended)


def still_open(session: Session) -> tuple[Response, int] | None:
    if session.ended:
        return error(409, "the hand-off has ended", "start a new one")
    if store().log_length(session.id) >= MAX_LOG:
        return error(409, "this conversation is full", f"{MAX_LOG} entries; start a new one")
    return None


@blueprint.post("/api/conversations")
@page_api
def start() -> Any:
    data = body.json_object()
    try:
        name = text_field(data, "name", required=True)
        email = text_field(data, "email")
        title = text_field(data, "title")
        description = text_field(data, "description")
    except Invalid as exc:
        return error(400, "invalid request", {exc.name: exc.why})
    user_call = bp.create_remote_user(name, email)
    conv_call = bp.create_remote_conversation(title, description, bp.bot_history(name))
    try:
        user = bp.call("createRemoteUser", user_call)
        conv = bp.call("createRemoteConversation", conv_call)
    except bp.NotAccepted as exc:
        return refused(exc)
    session = Session(
        id=mint(CONVERSATION_PREFIX),
        bp_user=mint(USER_PREFIX),
        user=str(user["id"]),
        conversation=str(conv["id"]),
        name=name,
        email=email,
        title=title,
        created=time.time(),
    )
    s = store()
    s.create(session)
    s.record(session, SENT, "createRemoteUser", user_call)
    s.record(session, SENT, "createRemoteConversation", conv_call)
    return jsonify(session.public()), 201


@blueprint.get("/api/conversations/<bpcid>")
@page_api
def show(bpcid: str) -> Any:
    session = session_or_404(bpcid)
    raw = request.args.get("after", "0")
    if not (raw.isascii() and raw.isdigit()):
        return error(400, "invalid query", {"after": "must be a whole number"})
    entries = store().log(bpcid, int(raw))
    nxt = entries[-1]["n"] if entries else int(raw)
    return jsonify({**session.public(), "entries": entries, "next": nxt})


@blueprint.post("/api/conversations/<bpcid>/messages")
@page_api
def say(bpcid: str) -> Any:
    session = session_or_404(bpcid)
    data = body.json_object()
    try:
        text = text_field(data, "text", required=True)
    except Invalid as exc:
        return error(400, "invalid request", {exc.name: exc.why})
    if (closed := still_open(session)) is not None:
        return closed
    call = bp.bot_sends_message(
        session.conversation, session.user, {"text": text, "userId": session.bp_user}
    )
    try:
        n = send(session, "botSendsMessage", call)
    except bp.NotAccepted as exc:
        return refused(exc)
    return jsonify({"n": n})


@blueprint.post("/api/conversations/<bpcid>/bot")
@page_api
def bot_says(bpcid: str) -> Any:
    session = session_or_404(bpcid)
    data = body.json_object()
    kind = data.get("kind")
    base = runtime().settings.public_base_url or request.host_url.rstrip("/")
    image = f"{base}{PLAYGROUND_PATH}/static/sample.svg"
    payload = bp.bot_message(kind, image) if isinstance(kind, str) else None
    if payload is None:
        return error(400, "invalid request", {"kind": f"must be one of {', '.join(bp.BOT_KINDS)}"})
    if (closed := still_open(session)) is not None:
        return closed
    try:
        call = bp.bot_sends_message(session.conversation, "BOT", payload)
        n = send(session, "botSendsMessage", call)
    except bp.NotAccepted as exc:
        return refused(exc)
    return jsonify({"n": n})


@blueprint.post("/api/conversations/<bpcid>/end")
@page_api
def end(bpcid: str) -> Any:
    session = session_or_404(bpcid)
    body.json_object()
    if (closed := still_open(session)) is not None:
        return closed
    try:
        n = send(session, "closeRemoteTicket", bp.close_remote_ticket(session.id), ended="user")
    except bp.NotAccepted as exc:
        return refused(exc)
    return jsonify({"n": n})


# -- Botpress's webhook and API, stood in for ----------------------------------------------


def token_matches(given: str) -> bool:
    expected = playground_token(runtime().settings.bridge_secret)
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _string(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _list(value: Any) -> bool:
    return isinstance(value, list)


#: What a payload field must be: its description and its check.
KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("a non-empty string", _string),
    "number": ("a number", _number),
    "list": ("a list", _list),
}
#: Botpress message types an agent's message may have, and what each payload must hold.
MESSAGE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "text": (("text", "string"),),
    "markdown": (("markdown", "string"),),
    "image": (("imageUrl", "string"),),
    "audio": (("audioUrl", "string"),),
    "video": (("videoUrl", "string"),),
    "file": (("fileUrl", "string"),),
    "location": (("latitude", "number"), ("longitude", "number")),
    "card": (("title", "string"), ("actions", "list")),
    "carousel": (("items", "list"),),
    "choice": (("text", "string"), ("options", "list")),
    "dropdown": (("text", "string"), ("options", "list")),
    "bloc": (("items", "list"),),
}
#: Webhook route -> the body's required string fields.
WEBHOOK_FIELDS = {
    "message-from-agent": ("remoteConversationId", "remoteUserId", "messageType"),
    "agent-assigned": ("remoteConversationId", "remoteUserId"),
    "stop-hitl": ("remoteConversationId",),
}


def webhook_problems(route: str, data: dict[str, Any]) -> dict[str, str]:
    """What Botpress would refuse in a webhook body, by field (empty: acceptable)."""
    problems = {
        name: "must be a non-empty string"
        for name in WEBHOOK_FIELDS[route]
        if not _string(data.get(name))
    }
    if route != "message-from-agent" or problems:
        return problems
    fields = MESSAGE_FIELDS.get(data["messageType"])
    if fields is None:
        return {"messageType": f"must be one of {', '.join(MESSAGE_FIELDS)}"}
    payload = data.get("payload")
    if not isinstance(payload, dict):
        return {"payload": "must be an object"}
    for name, kind in fields:
        what, check = KINDS[kind]
        if not check(payload.get(name)):
            problems[f"payload.{name}"] = f"must be {what}"
    return problems


@blueprint.post("/botpress/<token>/webhook/<route>")
def webhook(token: str, route: str) -> Any:
    if not token_matches(token) or route not in WEBHOOK_FIELDS:
        abort(404)
    data = body.json_object()
    problems = webhook_problems(route, data)
    if problems:
        return error(400, "invalid request", problems)
    s = store()
    cid = data["remoteConversationId"]
    bpcid = s.for_bridge(cid)
    session = s.get(bpcid) if bpcid else None
    if session is None:
        # A hand-off the playground did not start (the README's curl walkthrough, say): taken
        # and dropped, as Botpress takes events for conversations it no longer shows; a 404
        # would only park them in the dead letters.
        return jsonify({"ok": True, "ignored": "not a playground conversation"})
    s.record(session, RECEIVED, route, data, ended="agent" if route == "stop-hitl" else "")
    return jsonify({"ok": True})


@blueprint.get("/botpress/<token>/api/v1/chat/conversations/<path:bpcid>")
def get_conversation(token: str, bpcid: str) -> Any:
    if not token_matches(token):
        abort(404)
    auth = request.headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    authorised = scheme.lower() == "bearer" and token_matches(given.strip())
    if not authorised or request.headers.get("x-bot-id") != PLAYGROUND_BOT_ID:
        return error(
            401,
            "unauthorized",
            f"send Authorization: Bearer <token> and x-bot-id: {PLAYGROUND_BOT_ID}",
        )
    session = store().get(bpcid)
    if session is None:
        return error(404, "unknown conversation", {"id": bpcid})
    return jsonify(
        {
            "conversation": {
                "id": session.id,
                "channel": "playground",
                "integration": INTEGRATION,
                "createdAt": iso(session.created),
                "tags": {f"{INTEGRATION}:externalId": session.conversation},
            }
        }
    )


#: The integration's name in Botpress's hub, which prefixes the tags it sets.
INTEGRATION = "plus/hitl-api"


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))
