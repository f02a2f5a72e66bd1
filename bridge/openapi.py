"""The bridge's OpenAPI description, generated from bridge/contract.py so it cannot drift.

Request bodies come from the marshmallow schemas that validate them (through apispec's
MarshmallowPlugin); the `type` each route insists on comes from `contract.ROUTES`. Served at
`GET /openapi.json` (bridge/web/docs.py) and used by the fuzz tests (tests/fuzz/).
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from bridge import __version__, contract

OPENAPI_VERSION = "3.0.3"


class ErrorSchema(Schema):
    """Every error answer (bridge/web/errors.py)."""

    error = fields.String(required=True, metadata={"description": "what went wrong"})
    details = fields.Raw(
        required=True, allow_none=True, metadata={"description": "which part, and why"}
    )


class IdSchema(Schema):
    id = fields.String(required=True, metadata={"description": "an id the bridge minted"})


class OkSchema(Schema):
    ok = fields.Boolean(required=True)


class ReadySchema(Schema):
    ok = fields.Boolean(required=True)
    redis = fields.String(required=True)
    helpdesk = fields.String()
    helpdesk_config = fields.Raw(metadata={"description": '"ok", or the configuration problems'})


class WebhookAnswerSchema(Schema):
    ok = fields.Boolean(required=True)
    rung = fields.List(fields.String(), required=True)
    ignored = fields.List(fields.String(), required=True)
    # A retry of a delivery already rung (its id seen in the last 10 minutes): nothing rung.
    duplicate = fields.Boolean()


# Routes whose 200 carries the id the bridge minted (DESIGN.md §2).
_ANSWERS_ID = {"createRemoteUser", "createRemoteConversation"}
_SUMMARY = {
    "ping": "Botpress checks the endpoint when the integration is saved",
    "createRemoteUser": "Register an end user; answers the user id the bridge minted",
    "createRemoteConversation": "Open a hand-off; answers the conversation id the bridge minted",
    "botSendsMessage": "A message from the end user or the bot, for the helpdesk ticket",
    "closeRemoteTicket": "The bot ended the hand-off",
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("Error")}


def _admin_paths(spec: APISpec) -> None:
    """The operator API (bridge/web/admin.py): bearer ADMIN_TOKEN, 404 while it is unset."""
    spec.components.security_scheme("admin", {"type": "http", "scheme": "bearer"})
    guarded = {"security": [{"admin": []}], "tags": ["operator"]}
    denied = {
        "401": _error("missing or wrong bearer token"),
        "404": "Error404",
        "429": _error("too many failed attempts from this address: wait Retry-After seconds"),
    }
    ident = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    page = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "integer"}}
        for name in ("limit", "offset")
    ]
    found = {"200": {"description": "found"}, **denied, "503": "Error503"}
    spec.path(
        path="/admin/api/dead-letters",
        operations={
            "get": {
                **guarded,
                "operationId": "listDeadLetters",
                "parameters": page,
                "summary": "Dead letters, oldest first",
                "responses": {**found, "400": "Error400"},
            }
        },
    )
    spec.path(
        path="/admin/api/dead-letters/{dlq_id}",
        parameters=[{**ident[0], "name": "dlq_id"}],
        operations={
            "get": {
                **guarded,
                "operationId": "showDeadLetter",
                "summary": "One dead letter",
                "responses": found,
            },
            "delete": {
                **guarded,
                "operationId": "purgeDeadLetter",
                "summary": "Drop a dead letter for good",
                "responses": found,
            },
        },
    )
    spec.path(
        path="/admin/api/dead-letters/{dlq_id}/replay",
        parameters=[{**ident[0], "name": "dlq_id"}],
        operations={
            "post": {
                **guarded,
                "operationId": "replayDeadLetter",
                "summary": "Put it back at the head of its conversation's stream",
                "responses": {**found, "409": _error("conversation busy")},
            }
        },
    )
    spec.path(
        path="/admin/api/conversations/{cid}",
        parameters=[{**ident[0], "name": "cid"}],
        operations={
            "get": {
                **guarded,
                "operationId": "showConversation",
                "summary": "Mapping, history and waiting events of a conversation",
                "responses": found,
            }
        },
    )


def build(helpdesk: str = "inbox") -> dict[str, Any]:
    """The OpenAPI document of the public routes, for a bridge running `helpdesk`."""
    spec = APISpec(
        title="Botpress HITL bridge",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "The platform side of Botpress's Human in the Loop API integration. "
                "Configure `https://<host>/botpress/<BRIDGE_SECRET>` as its endpoint base URL."
            )
        },
    )
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.schema("Id", schema=IdSchema)
    spec.components.schema("Ok", schema=OkSchema)
    spec.components.schema("Ready", schema=ReadySchema)
    spec.components.schema("WebhookAnswer", schema=WebhookAnswerSchema)
    spec.components.response("Error400", _error("malformed JSON or a body the contract rejects"))
    spec.components.response("Error404", _error("wrong secret, unknown route or unknown id"))
    spec.components.response("Error413", _error("body larger than the configured limit"))
    spec.components.response("Error503", _error("Redis unreachable: nothing was accepted"))
    secret = {
        "name": "secret",
        "in": "path",
        "required": True,
        "description": "BRIDGE_SECRET (Botpress sends no authentication header)",
        "schema": {"type": "string"},
    }
    for route, cls in contract.SCHEMAS.items():
        name = cls.__name__.removesuffix("Schema")
        spec.components.schema(name, schema=cls(route))
        # The schema checks `type` in a validator apispec cannot see; state it here.
        spec.components.schemas[name]["properties"]["type"]["enum"] = [route]
        ok = "Id" if route in _ANSWERS_ID else "Ok"
        spec.path(
            path=f"/botpress/{{secret}}/{route}",
            operations={
                "post": {
                    "operationId": route,
                    "summary": _SUMMARY.get(route, route),
                    "tags": ["botpress"],
                    "parameters": [secret],
                    "requestBody": {"required": True, "content": _json(name)},
                    "responses": {
                        "200": {"description": "accepted (durably stored)", "content": _json(ok)},
                        "400": "Error400",
                        "404": "Error404",
                        "413": "Error413",
                        "503": "Error503",
                    },
                }
            },
        )
    helpdesk_param = {
        "name": "helpdesk",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "example": helpdesk},
    }
    token_param = {
        "name": "url_token",
        "in": "path",
        "required": True,
        "description": "the secret token of helpdesks that cannot sign (Freshdesk, Chatwoot)",
        "schema": {"type": "string"},
    }
    for path, params, how in (
        ("/webhooks/{helpdesk}", [helpdesk_param], "its own signature"),
        ("/webhooks/{helpdesk}/{url_token}", [helpdesk_param, token_param], "a secret URL"),
    ):
        spec.path(
            path=path,
            operations={
                "post": {
                    "operationId": "helpdeskWebhook" + ("WithToken" if "url_token" in path else ""),
                    "summary": f"A helpdesk says tickets changed (verified by {how})",
                    "tags": ["helpdesk"],
                    "parameters": params,
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": {}}},
                    },
                    "responses": {
                        "200": {"description": "doorbells rung", "content": _json("WebhookAnswer")},
                        "400": "Error400",
                        "401": _error("signature or timestamp rejected"),
                        "403": _error("wrong token in the URL"),
                        "404": "Error404",
                        "413": "Error413",
                        "503": "Error503",
                    },
                }
            },
        )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "operationId": "healthz",
                "summary": "The process is up",
                "tags": ["operations"],
                "responses": {"200": {"description": "up", "content": _json("Ok")}},
            }
        },
    )
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "operationId": "readyz",
                "summary": "Redis is reachable",
                "tags": ["operations"],
                "responses": {
                    "200": {"description": "ready", "content": _json("Ready")},
                    "503": {"description": "not ready", "content": _json("Ready")},
                },
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics of the whole bridge",
                "tags": ["operations"],
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
    )
    _admin_paths(spec)
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["operations"],
                "responses": {"200": {"description": "OpenAPI 3 document"}},
            }
        },
    )
    return spec.to_dict()
