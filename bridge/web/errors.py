"""Every error answer is JSON: `{"error": <what went wrong>, "details": <which part>}`."""

from __future__ import annotations

import json
import logging
from typing import Any, NamedTuple

import redis
from flask import Flask, Response
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


class Answer(NamedTuple):
    """An error answer, for Flask (`response`) or a bare WSGI caller (bridge.web.lane)."""

    status: int
    message: str
    details: Any
    headers: dict[str, str]

    def body(self) -> bytes:
        return error_body(self.message, self.details)

    def response(self) -> tuple[Response, int]:
        resp, status = error(self.status, self.message, self.details)
        resp.headers.update(self.headers)
        return resp, status


def error_body(message: str, details: Any = None) -> bytes:
    """The JSON body of an error answer (compact, as Flask's jsonify writes it)."""
    text = json.dumps({"error": message, "details": details}, separators=(",", ":"))
    return f"{text}\n".encode()


def error(status: int, message: str, details: Any = None) -> tuple[Response, int]:
    return Response(error_body(message, details), status, mimetype="application/json"), status


def storage_down(exc: Exception) -> Answer:
    """The answer when Redis cannot take a request's write (or read) right now."""
    log.error("storage unavailable: %s", type(exc).__name__)
    details = "Redis cannot be reached; nothing was accepted"
    return Answer(503, "storage unavailable", details, {"Retry-After": "5"})


def unexpected(exc: Exception) -> Answer:
    """The answer to a bug: logged with its traceback, named by its type only."""
    log.exception("unhandled error")
    return Answer(500, "internal error", type(exc).__name__, {})


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        message = {413: f"request body is larger than {app.config.get('MAX_CONTENT_LENGTH')} bytes"}
        name = getattr(exc, "message", None) or (exc.name or "error").lower()
        return error(status, name, message.get(status, exc.description))

    for exc_type in STORAGE_DOWN:
        app.register_error_handler(exc_type, lambda exc: storage_down(exc).response())
    app.register_error_handler(Exception, lambda exc: unexpected(exc).response())
