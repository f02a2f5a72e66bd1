"""The Flask app factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bridge import playground
from bridge.config import Settings
from bridge.logs import configure as configure_logging
from bridge.logs import secrets_of
from bridge.runtime import Runtime
from bridge.storage import Store
from bridge.web import EXTENSION, admin, botpress, docs, errors, health, webhooks
from bridge.web import metrics as web_metrics
from bridge.web.lane import MessageLane


def build_runtime(settings: Settings) -> Runtime:
    """Storage, helpdesk adapter and task publisher for a web or CLI process."""
    from bridge import helpdesks
    from bridge.publisher import CeleryDispatch, broker_app

    store = Store.from_settings(settings)
    return Runtime(
        settings, store, helpdesks.load(settings, store), CeleryDispatch(broker_app(settings))
    )


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """A configured app; `runtime` lets tests supply their own storage and publisher."""
    if runtime is None:
        runtime = build_runtime(settings or Settings.from_env())
    app = Flask("bridge")
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = runtime
    errors.register(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(botpress.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(admin.blueprint)
    if runtime.settings.playground:
        app.register_blueprint(playground.blueprint)
    if runtime.settings.proxy_hops:
        # Only the entries the trusted proxies appended: anything before is the client's word.
        hops = runtime.settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.wsgi_app = MessageLane(app.wsgi_app, runtime)  # type: ignore[method-assign]
    web_metrics.init_app(app, runtime.store)  # outside the lane: it counts the lane's answers
    app.register_blueprint(docs.blueprint)
    extra = runtime.helpdesk.blueprint()
    if extra is not None:
        app.register_blueprint(extra)
    configure_logging(runtime.settings.log_level, redact=secrets_of(runtime.settings))
    return app
