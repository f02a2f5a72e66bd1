"""Botpress's hitl-api integration, played: its bodies, sent to the bridge's five routes.

Calls go in-process through the app's whole WSGI stack (`current_app.wsgi_app`: the request
metrics, the express lane of bridge/web/lane.py, the Flask routes and their validation),
exactly as a network call would, but without a socket: a request to ourselves over HTTP
would hold one gunicorn thread while waiting for another, and could starve them all.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import current_app
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bridge.web import runtime


class NotAccepted(Exception):
    """The bridge answered a call with something other than 200."""

    def __init__(self, route: str, status: int, answer: Any) -> None:
        super().__init__(f"{route}: HTTP {status}")
        self.route = route
        self.status = status
        self.answer = answer


def call(route: str, body: dict[str, Any]) -> Any:
    """POST `body` to the bridge's `route` as Botpress would; its JSON answer, or NotAccepted."""
    secret = runtime().settings.bridge_secret
    builder = EnvironBuilder(
        path=f"/botpress/{secret}/{route}",
        method="POST",
        data=json.dumps(body),
        content_type="application/json",
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    app_iter, status, _ = run_wsgi_app(current_app.wsgi_app, environ, buffered=True)
    try:
        raw = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    code = int(status.split(" ", 1)[0])
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = raw[:2000].decode("utf-8", "replace")
    if code != 200:
        raise NotAccepted(route, code, answer)
    return answer


# -- the integration's bodies (DESIGN.md §2) ---------------------------------------------


def create_remote_user(name: str, email: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"role": "end-user", "name": name}
    if email:
        payload["email"] = email
    return {"type": "createRemoteUser", "payload": payload}


def create_remote_conversation(
    title: str, description: str, history: list[dict[str, Any]]
) -> dict[str, Any]:
    payload: dict[str, Any] = {"title": title, "description": description, "messages": history}
    return {"type": "createRemoteConversation", "payload": payload}


def bot_sends_message(cid: str, uid: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "botSendsMessage",
        "remoteConversationId": cid,
        "remoteUserId": uid,
        "payload": payload,
    }


def close_remote_ticket(bp_conversation_id: str) -> dict[str, Any]:
    return {"type": "closeRemoteTicket", "payload": {"botpressConversationId": bp_conversation_id}}


def bot_history(name: str) -> list[dict[str, Any]]:
    """The canned conversation the bot had before handing off."""
    now = time.time()
    first = name.split()[0] if name.split() else "there"
    lines = [
        ("bot", f"Hi {first}! I'm the shop's assistant. How can I help?"),
        ("user", "My order arrived damaged and I'd like a refund."),
        ("bot", "I'm sorry to hear that. Let me connect you with a human agent."),
    ]
    return [
        {"text": text, "author": author, "timestamp": int((now - 60 + 10 * i) * 1000)}
        for i, (author, text) in enumerate(lines)
    ]


def bot_message(kind: str, image_url: str) -> dict[str, Any] | None:
    """The payload of a canned bot message of another type than text (None: unknown kind)."""
    payloads: dict[str, dict[str, Any]] = {
        "image": {"imageUrl": image_url},
        "choice": {
            "text": "Which order is it about?",
            "options": [
                {"label": "Order 42", "value": "42"},
                {"label": "Order 43", "value": "43"},
            ],
        },
        "card": {
            "title": "Our refund policy",
            "subtitle": "Refunds within 30 days of delivery",
            "imageUrl": image_url,
            "actions": [
                {"action": "url", "label": "Read it", "value": "https://example.com/refunds"}
            ],
        },
        "location": {
            "latitude": 48.8584,
            "longitude": 2.2945,
            "title": "Our shop",
            "address": "Champ de Mars, Paris",
        },
    }
    return payloads.get(kind)


BOT_KINDS = ("image", "choice", "card", "location")
