"""Entry point of the `worker` and `beat` processes: `celery -A workers.worker ...`."""

from __future__ import annotations

from bridge.logs import configure as configure_logging
from bridge.logs import secrets_of
from bridge.storage import Store, connect
from workers import adapters
from workers.botpress import Botpress
from workers.celery_app import PerProcess, make_celery, publisher
from workers.context import Context
from workers.retry import RetryPolicy
from workers.tasks import register

settings = adapters.settings_or_exit()
configure_logging(settings.log_level, redact=secrets_of(settings))
_probe = Store(
    connect(settings.redis_url, ssl_cert_reqs=settings.redis_ssl_cert_reqs), settings.key_prefix
)
app = make_celery(settings, poll_interval=adapters.load(settings, _probe).poll_interval)


def _context() -> Context:
    store = Store(
        connect(settings.redis_url, ssl_cert_reqs=settings.redis_ssl_cert_reqs), settings.key_prefix
    )
    return Context(
        settings=settings,
        store=store,
        helpdesk=adapters.load(settings, store),
        publish=publisher(app),
        botpress=Botpress(settings),
        retry=RetryPolicy(settings.retry_base, settings.retry_cap, settings.retry_window),
    )


register(app, PerProcess(_context).get)
