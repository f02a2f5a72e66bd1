"""The Botpress "Human in the Loop API" contract: request schemas and message types.

Botpress validates what it sends with schemas that drop unknown keys, and later versions
may add keys, so every schema here accepts (and keeps) keys it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

ROUTES = (
    "ping",
    "createRemoteUser",
    "createRemoteConversation",
    "botSendsMessage",
    "closeRemoteTicket",
)

_SHORT_MAX = 512  # ids and other short strings
#: C0 and C1 control characters: never part of an id, and a way to forge log lines and paths.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: How deep a body may nest objects and arrays. Botpress's deepest message (a bloc of cards)
#: is under ten levels; past a few hundred, encoders and renderers run out of stack.
MAX_DEPTH = 64
_short = validate.Length(min=1, max=_SHORT_MAX)


def _no_control(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError("must not contain control characters")


_id: list[Callable[[Any], Any]] = [_short, _no_control]


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class _Typed(_Open):
    """Every Botpress body names its route in `type`; the two must agree."""

    type = fields.String(required=True)

    def __init__(self, route: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.route = route

    @validates_schema
    def _check_type(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("type") != self.route:
            raise ValidationError(f"must be {self.route!r} on this route", "type")


class PingSchema(_Typed):
    pass


class RemoteUserPayload(_Open):
    role = fields.String(load_default="end-user", validate=validate.Length(max=64))
    name = fields.String(load_default="", validate=validate.Length(max=1024))
    pictureUrl = fields.String(allow_none=True, validate=validate.Length(max=4096))
    email = fields.String(allow_none=True, validate=validate.Length(max=512))


class CreateRemoteUserSchema(_Typed):
    payload = fields.Nested(RemoteUserPayload, required=True)


class HistoryItem(_Open):
    text = fields.String(required=True, validate=validate.Length(max=65536))
    author = fields.String(allow_none=True, validate=validate.Length(max=1024))
    timestamp = fields.Raw(allow_none=True)


class RemoteConversationPayload(_Open):
    title = fields.String(allow_none=True, validate=validate.Length(max=1024))
    description = fields.String(allow_none=True, validate=validate.Length(max=65536))
    messages = fields.List(
        fields.Nested(HistoryItem), allow_none=True, validate=validate.Length(max=500)
    )
    # Not sent by v0.2.x (its schema strips them); accepted should a later version pass them.
    messageHistory = fields.List(
        fields.Nested(HistoryItem), allow_none=True, validate=validate.Length(max=500)
    )
    userId = fields.String(allow_none=True, validate=_id)


class CreateRemoteConversationSchema(_Typed):
    payload = fields.Nested(RemoteConversationPayload, load_default=dict)


class BotSendsMessageSchema(_Typed):
    remoteConversationId = fields.String(required=True, validate=_id)
    remoteUserId = fields.String(required=True, validate=_id)
    payload = fields.Dict(required=True)  # JSON object keys are strings already

    @validates_schema
    def _check_payload(self, data: Mapping[str, Any], **_: Any) -> None:
        payload = data.get("payload")
        if isinstance(payload, Mapping):
            message_type(payload)  # raises ValidationError naming the problem


class ClosePayload(_Open):
    botpressConversationId = fields.String(required=True, validate=_id)


class CloseRemoteTicketSchema(_Typed):
    payload = fields.Nested(ClosePayload, required=True)


SCHEMAS: dict[str, type[_Typed]] = {
    "ping": PingSchema,
    "createRemoteUser": CreateRemoteUserSchema,
    "createRemoteConversation": CreateRemoteConversationSchema,
    "botSendsMessage": BotSendsMessageSchema,
    "closeRemoteTicket": CloseRemoteTicketSchema,
}


# One instance per route, built once: building a marshmallow schema deep-copies its
# declared fields, which cost more than validating a body. `load` keeps no state on the
# instance, so the instances are shared by a web process's threads.
_INSTANCES = {route: cls(route) for route, cls in SCHEMAS.items()}


def load(route: str, body: Any) -> dict[str, Any]:
    """Validate a Botpress body for `route`; raises ValidationError with field messages."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["the body must be a JSON object"]})
    if route == "botSendsMessage":
        found = usual_message(body)  # its own checks hold the nesting cap
        if found is not None:
            return found
    if not shallow(body):
        raise ValidationError({"_schema": [f"the body nests deeper than {MAX_DEPTH} levels"]})
    result: dict[str, Any] = _INSTANCES[route].load(body)
    return result


def shallow(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when `value` nests objects and arrays at most `limit` levels deep (`{}` is one)."""
    level: list[Any] = [value] if type(value) in (dict, list) else []
    for _ in range(limit):
        nested = [
            child
            for v in level
            for child in (v.values() if type(v) is dict else v)
            if type(child) in (dict, list)
        ]
        if not nested:
            return True
        level = nested
    return False


def _short_id(value: Any) -> bool:
    """What `fields.String(validate=_id)` accepts."""
    return type(value) is str and 0 < len(value) <= _SHORT_MAX and not _CONTROL.search(value)


def usual_message(body: dict[str, Any]) -> dict[str, Any] | None:
    """What BotSendsMessageSchema loads from `body`, when `body` is a well-formed message;
    None when in any doubt, for the schema to decide and name the problem.

    botSendsMessage carries every bot message of a handed-off conversation, and the schema
    costs more than the rest of the request's Python; tests/unit/test_contract.py checks
    that this answers as the schema does, on generated bodies of every shape.
    """
    payload = body.get("payload")
    if not (
        body.get("type") == "botSendsMessage"
        and _short_id(body.get("remoteConversationId"))
        and _short_id(body.get("remoteUserId"))
        and type(payload) is dict
        and shallow(body)
    ):
        return None
    try:
        message_type(payload)
    except ValidationError:
        return None
    return {**body, "payload": dict(payload)}


# --- message payloads -------------------------------------------------------------------

_STRING_KEYS = {
    "text": "text",
    "markdown": "markdown",
    "image": "imageUrl",
    "audio": "audioUrl",
    "video": "videoUrl",
    "file": "fileUrl",
}
KNOWN_KEYS = (
    "text",
    "markdown",
    "imageUrl",
    "audioUrl",
    "videoUrl",
    "fileUrl",
    "latitude/longitude",
    "items",
    "options",
    "title+actions",
)


def _require_str(payload: Mapping[str, Any], key: str) -> None:
    # Botpress's own schemas ask for `z.string().min(1)`: a text of blanks is a message.
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{key} must be a non-empty string", "payload")


def message_type(payload: Mapping[str, Any]) -> str:
    """The Botpress message type of a payload sent without its type, inferred from its keys.

    Raises ValidationError when the payload matches no Botpress message type.
    """
    if "latitude" in payload or "longitude" in payload:
        for key in ("latitude", "longitude"):
            value = payload.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"{key} must be a number", "payload")
        return "location"
    if "items" in payload:
        items = payload["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValidationError("items must be a list of objects", "payload")
        # A bloc holds typed messages; a carousel holds cards. Botpress allows either empty:
        # an empty one is taken as a carousel with no cards.
        bloc = items and all("type" in i and "payload" in i for i in items)
        return "bloc" if bloc else "carousel"
    if "options" in payload:
        options = payload["options"]
        if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
            raise ValidationError("options must be a list of objects", "payload")
        return "choice"
    if "actions" in payload and "title" in payload:
        if not isinstance(payload["actions"], list):
            raise ValidationError("actions must be a list", "payload")
        _require_str(payload, "title")
        return "card"
    for kind, key in _STRING_KEYS.items():
        if key in payload:
            _require_str(payload, key)
            return kind
    raise ValidationError(
        "payload matches no Botpress message type; expected one of: " + ", ".join(KNOWN_KEYS),
        "payload",
    )
