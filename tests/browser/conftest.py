"""Browser tests: the `browser` and `page` fixtures of tests/support/browser.py, and the
bridge they drive (`running_bridge`): web and a Celery worker on a Redis database of their own."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import requests

from tests.conftest import ADMIN_TOKEN, SECRET
from tests.integration.test_end_to_end import wait_until
from tests.support.browser import browser, page
from tests.support.processes import Process, start_worker
from tests.support.redis_server import RedisServer, free_port

__all__ = ["browser", "page", "running_bridge"]

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_bridge(
    redis_server: RedisServer, logs: Path, db: int, *, live: bool = True, **extra: str
) -> Iterator[tuple[str, str]]:
    """web, worker and live (the consoles' event streams, on a port of its own: another
    origin, as `./scripts/dev` runs it) with the inbox helpdesk; yields the base URL and the
    Redis URL. Without `live`, no live process runs: the pages find no stream on their own
    origin and poll the web. Each caller takes its own Redis database: Celery's queue name is
    the same for all, and a worker must never take another bridge's tasks."""
    if redis_server.proc is None:
        redis_server.start()
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{db}"
    redis.Redis.from_url(redis_url).flushdb()
    port, live_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS", "BOTPRESS", "ZENDESK", "PLAYGROUND", "PUBLIC_BASE_URL"))
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "HELPDESK": "inbox",
            "PUBLIC_BASE_URL": base,
            "PORT": str(port),
            "LIVE_PORT": str(live_port),
            "WEB_CONCURRENCY": "1",
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_CAP_SECONDS": "2",
            "HTTP_TIMEOUT_SECONDS": "5",
            "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **extra,
        }
    )
    if live:
        env.setdefault("CONSOLE_EVENTS_URL", f"http://127.0.0.1:{live_port}/console/events")
    worker = start_worker(env, logs)
    web = Process("web", env, logs)
    streams = Process("live", env, logs) if live else None
    try:
        if streams is not None:
            streams.wait_for("live: listening")

        def up() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=60, what="web to answer")
        yield base, redis_url
    finally:
        if streams is not None:
            streams.stop(timeout=20)
        web.stop(timeout=20)
        worker.stop(timeout=20)
