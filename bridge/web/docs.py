"""`GET /openapi.json`: the bridge's OpenAPI description (bridge/openapi.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from bridge import openapi
from bridge.web import runtime

blueprint = Blueprint("docs", __name__)


@cache
def _document(helpdesk: str) -> dict[str, Any]:
    return openapi.build(helpdesk)


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(_document(runtime().helpdesk.name))
