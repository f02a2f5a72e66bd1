"""Reading request bodies: whole and exactly as declared, or a 400 with nothing done.

Every route that takes a body reads it here. A body cut short, or framed so that the server
cannot read it (a malformed chunked encoding), is refused before anything looks at it: a
request its client gave up on must never be stored, since the client's retry would store
it a second time.
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest, HTTPException

from bridge import contract, json_codec


class MalformedJSON(BadRequest):
    """400 "malformed JSON": the body is not a JSON object the bridge can take."""

    message = "malformed JSON"


def read() -> bytes:
    """The request's whole body; raises BadRequest when it is shorter than its
    Content-Length or cannot be read (RequestEntityTooLarge past MAX_CONTENT_LENGTH)."""
    try:
        raw = request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception as exc:
        # The WSGI server refused the framing as it read (gunicorn raises its own parse
        # errors from wsgi.input): the client's fault, whatever the server calls it.
        raise BadRequest(f"the request body could not be read ({type(exc).__name__})") from None
    declared = request.content_length
    if declared is not None and len(raw) != declared:
        raise BadRequest(
            f"the request body ended after {len(raw)} of the {declared} bytes its "
            "Content-Length announced; nothing was accepted"
        )
    return raw


def json_object(raw: bytes | None = None) -> dict[str, Any]:
    """The body (or `raw`) as a JSON object at most contract.MAX_DEPTH deep; BadRequest
    naming the problem otherwise."""
    try:
        body = json_codec.loads_strict(read() if raw is None else raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedJSON("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise MalformedJSON("the request body must be a JSON object")
    if not contract.shallow(body):
        raise MalformedJSON(f"the request body nests deeper than {contract.MAX_DEPTH} levels")
    return body
