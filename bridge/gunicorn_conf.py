"""gunicorn settings for the `web` process (`--config python:bridge.gunicorn_conf`)."""

from __future__ import annotations

import os
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Heroku sends SIGKILL 30 s after SIGTERM: finish in-flight requests well before that.
graceful_timeout = 20
timeout = 30
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"


def on_starting(server: Any) -> None:
    """Refuse to start on invalid configuration, one line per problem."""
    from workers.adapters import settings_or_exit

    settings_or_exit()
