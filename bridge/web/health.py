"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from bridge.web import runtime
from bridge.web.errors import STORAGE_DOWN

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"ok": True})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    rt = runtime()
    try:
        rt.store.ping()
    except STORAGE_DOWN as exc:
        return jsonify({"ok": False, "redis": f"unreachable ({type(exc).__name__})"}), 503
    return jsonify({"ok": True, "redis": "ok", "helpdesk": rt.helpdesk.name}), 200
