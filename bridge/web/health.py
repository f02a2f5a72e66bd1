"""Liveness and readiness probes.

`/readyz` answers 503 when Redis cannot be reached (nothing could be accepted) or the
helpdesk's configuration is invalid. It never calls the helpdesk itself: a helpdesk outage
only delays delivery (DESIGN.md invariant 2), so it must not take the web out of service,
and probes arrive every few seconds. `hitl-bridge check` verifies the credentials.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from bridge.errors import ConfigError
from bridge.web import runtime
from bridge.web.errors import STORAGE_DOWN

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"ok": True})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    from bridge.helpdesks import adapter_class

    rt = runtime()
    body: dict[str, object] = {"ok": True, "redis": "ok", "helpdesk": rt.helpdesk.name}
    try:
        problems = adapter_class(rt.settings.helpdesk).config_problems(rt.settings.environ)
    except ConfigError as exc:
        problems = exc.problems
    body["helpdesk_config"] = problems or "ok"
    try:
        rt.store.ping()
    except STORAGE_DOWN as exc:
        body["redis"] = f"unreachable ({type(exc).__name__})"
    body["ok"] = body["redis"] == "ok" and not problems
    return jsonify(body), 200 if body["ok"] else 503
