"""`GET /metrics` (Prometheus text format) and the per-request counters behind it."""

from __future__ import annotations

import logging
import os
import time
from typing import cast

from flask import Blueprint, Flask, Request, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from bridge import contract
from bridge.metrics import REQUEST_SECONDS, REQUESTS, RedisCollector, series
from bridge.storage import Store

blueprint = Blueprint("metrics", __name__)
log = logging.getLogger("hitl.metrics")

_COLLECTOR = "hitl_redis_collector"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def route_label(req: Request) -> str:
    """The route template, never the concrete path (which may hold the bridge's secret)."""
    rule = req.url_rule
    if rule is None:
        return "unmatched"
    route = (req.view_args or {}).get("route")
    if req.endpoint == "botpress.ingress" and route in contract.ROUTES:
        return rule.rule.replace("<route>", str(route))
    return rule.rule


#: Methods counted by name; any other (clients may send any token) counts as "other", so a
#: client cannot grow the number of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STARTED = "hitl.started"  # WSGI environ key: when the request reached the app


def init_app(app: Flask, store: Store) -> None:
    """Serve /metrics and count every request `app` answers."""
    app.register_blueprint(blueprint)
    app.extensions[_COLLECTOR] = RedisCollector(store)

    @app.before_request
    def _start() -> None:
        request.environ[_STARTED] = time.perf_counter()

    @app.after_request
    def _count(resp: Response) -> Response:
        try:
            req = cast(Request, request._get_current_object())  # type: ignore[attr-defined]
            method = req.method if req.method in METHODS else "other"
            route = route_label(req)
            series(REQUESTS, route, method, str(resp.status_code)).inc()
            started = req.environ.get(_STARTED)
            if started is not None:
                series(REQUEST_SECONDS, route).observe(time.perf_counter() - started)
        except Exception:  # counting must never break an answer
            log.exception("could not count a request")
        return resp


@blueprint.get("/metrics")
def metrics() -> Response:
    collector = current_app.extensions[_COLLECTOR]
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
