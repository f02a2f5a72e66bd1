"""The express lane: well-formed `botSendsMessage` calls answered without Flask's machinery.

Every bot message of a handed-off conversation is a `botSendsMessage` call, and Flask's
per-request work (request context, routing, request and response objects) costs a trivial
route more than the bridge's own checks and its Redis write together. So this WSGI
middleware answers the one case that carries the traffic: a POST to the exact path, with a
Content-Length body that is a JSON object `contract.usual_message` accepts. Everything
else, including every 4xx, goes on to the Flask app untouched (the body handed back as
read), which names the problem as it always did. Once the write has been tried, the answer
never goes back to Flask: a timeout may have stored the event, and a second try could
store it twice.

tests/unit/test_lane.py holds the lane to the Flask route's answers and Redis writes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.http import HTTP_STATUS_CODES

from bridge import contract, json_codec
from bridge.runtime import Runtime
from bridge.storage import NotFound
from bridge.web import botpress, errors

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ROUTE = "botSendsMessage"
#: Where the lane records the route template it answered, for the request metrics (which
#: otherwise read it from Flask's matched rule).
ROUTE_LABEL_KEY = "hitl.route"
ROUTE_LABEL = f"/botpress/<secret>/{ROUTE}"

_OK_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(botpress.OK_BODY))),
]


class MessageLane:
    """WSGI middleware in front of the Flask app (see the module's docstring)."""

    def __init__(self, app: WSGIApplication, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self._settings = runtime.settings
        self._max_body = runtime.settings.max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not (environ.get("REQUEST_METHOD") == "POST" and path.endswith(ROUTE)):
            return self.app(environ, start_response)
        # The path holds the secret: compared in constant time, by the Flask route's rule.
        prefix, _, rest = path.partition("/botpress/")
        secret, _, route = rest.rpartition("/")
        if (
            prefix
            or route != ROUTE
            or not botpress.secret_matches(secret.encode("latin-1", "replace"), self._settings)
        ):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH", "")
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        size = int(length) if length.isascii() and length.isdigit() else 0
        if not 0 < size <= self._max_body or "HTTP_TRANSFER_ENCODING" in environ:
            return self.app(environ, start_response)
        try:
            raw = environ["wsgi.input"].read(size)
        except Exception:  # the connection broke mid-body: nothing stored, Flask answers
            return self.app(environ, start_response)
        data = self._usual(raw) if len(raw) == size else None
        if data is None:  # Flask names the problem (or, for an unusual message, accepts it)
            return self._flask(environ, start_response, raw)
        try:
            botpress.accept_message(self.runtime, data)
        except NotFound:  # nothing was stored: Flask answers 404, naming the unknown id
            return self._flask(environ, start_response, raw)
        except errors.STORAGE_DOWN as exc:
            return self._error(environ, start_response, errors.storage_down(exc))
        except Exception as exc:
            return self._error(environ, start_response, errors.unexpected(exc))
        environ[ROUTE_LABEL_KEY] = ROUTE_LABEL
        start_response("200 OK", _OK_HEADERS)
        return [botpress.OK_BODY]

    @staticmethod
    def _usual(raw: bytes) -> dict[str, Any] | None:
        try:
            body = json_codec.loads_strict(raw)
        except Exception:  # not JSON, or JSON the strict reader refuses
            return None
        return contract.usual_message(body) if type(body) is dict else None

    def _flask(
        self, environ: WSGIEnvironment, start_response: StartResponse, raw: bytes
    ) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(raw)
        return self.app(environ, start_response)

    @staticmethod
    def _error(
        environ: WSGIEnvironment, start_response: StartResponse, answer: errors.Answer
    ) -> Iterable[bytes]:
        body = answer.body()
        environ[ROUTE_LABEL_KEY] = ROUTE_LABEL
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += answer.headers.items()
        # The status line as werkzeug writes it, so both paths answer alike.
        start_response(f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}", headers)
        return [body]
