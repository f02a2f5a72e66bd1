"""`GET /metrics` (Prometheus text format) and the per-request counters behind it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Request, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from bridge import contract
from bridge.metrics import REQUEST_SECONDS, REQUESTS, TALLY, RedisCollector
from bridge.storage import Store
from bridge.web.lane import ROUTE_LABEL_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

blueprint = Blueprint("metrics", __name__)
log = logging.getLogger("hitl.metrics")

_COLLECTOR = "hitl_redis_collector"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


#: Methods counted by name; any other (clients may send any token) counts as "other", so a
#: client cannot grow the number of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """WSGI middleware: counts every answer the app starts, by route template, method and
    status, and times it from the request's arrival.

    Wrapped around `app.wsgi_app` rather than hooked on before/after_request: Flask's hooks
    cost more than the counting itself (a coroutine check per hook, lookups through the
    request proxy), on every request.
    """

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()

        def counted_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            try:
                self._count(environ, status[:3], time.perf_counter() - started)
            except Exception:  # counting must never break an answer
                log.exception("could not count a request")
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, counted_start_response)

    def _count(self, environ: WSGIEnvironment, status: str, seconds: float) -> None:
        # The app starts its answer inside the request context, so the request (with its
        # matched rule) is still in the environ; Flask clears it when the context ends.
        # The express lane (bridge/web/lane.py) has no request: it leaves the label.
        route = environ.get(ROUTE_LABEL_KEY) or self.route_label(environ.get("werkzeug.request"))
        method = environ.get("REQUEST_METHOD", "")
        TALLY.inc(REQUESTS, route, method if method in METHODS else "other", status)
        TALLY.observe(REQUEST_SECONDS, seconds, route)

    @staticmethod
    def route_label(req: Request | None) -> str:
        """The route template, never the concrete path (which may hold the bridge's secret)."""
        if req is None or req.url_rule is None:
            return "unmatched"
        rule = req.url_rule
        route = (req.view_args or {}).get("route")
        if rule.endpoint == "botpress.ingress" and route in contract.ROUTES:
            return rule.rule.replace("<route>", str(route))
        return rule.rule


def init_app(app: Flask, store: Store) -> None:
    """Serve /metrics and count every request `app` answers."""
    app.register_blueprint(blueprint)
    app.extensions[_COLLECTOR] = RedisCollector(store)
    app.wsgi_app = RequestMetrics(app.wsgi_app)  # type: ignore[method-assign]


@blueprint.get("/metrics")
def metrics() -> Response:
    collector = current_app.extensions[_COLLECTOR]
    try:
        TALLY.flush()  # this process's latest counts; the others' are at most a second old
    except Exception:
        log.exception("metrics: could not flush the process counters")
    registry = CollectorRegistry(auto_describe=False)
    try:
        if multiprocess_dir():
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(REGISTRY)  # a registry is a collector too
    except Exception:  # a broken multiprocess dir must not cost the Redis half
        log.exception("metrics: cannot read the process counters")
    registry.register(collector)
    try:
        body = generate_latest(registry)
    except Exception:
        log.exception("metrics: exposition failed")
        body = b"# HELP hitl_redis_up 1 when Redis answered this scrape\n"
        body += b"# TYPE hitl_redis_up gauge\nhitl_redis_up 0.0\n"
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
