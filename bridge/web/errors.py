"""Every error answer is JSON: `{"error": <what went wrong>, "details": <which part>}`."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("hitl.web")

# Redis errors that mean "storage is unavailable right now", not "bad request".
STORAGE_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
)


def error(status: int, message: str, details: Any = None) -> tuple[Response, int]:
    return jsonify({"error": message, "details": details}), status


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        message = {413: f"request body is larger than {app.config.get('MAX_CONTENT_LENGTH')} bytes"}
        return error(status, (exc.name or "error").lower(), message.get(status, exc.description))

    def storage_down(exc: Exception) -> tuple[Response, int]:
        log.error("storage unavailable: %s", type(exc).__name__)
        resp, status = error(
            503, "storage unavailable", "Redis cannot be reached; nothing was accepted"
        )
        resp.headers["Retry-After"] = "5"
        return resp, status

    for exc_type in STORAGE_DOWN:
        app.register_error_handler(exc_type, storage_down)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error(500, "internal error", type(exc).__name__)
