"""Fixtures of the security suite: the fast ones of tests/unit (fakeredis storage, a recording
publisher) and `start_web`, the Procfile's gunicorn `web` on a free port (real Redis from
tests/conftest.py), for attacks that only a real HTTP server shows."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_end_to_end import wait_until
from tests.support.processes import Process
from tests.support.redis_server import free_port
from tests.unit.conftest import app, bp, client, ctx, published, runtime, settings, store

__all__ = ["app", "bp", "client", "ctx", "published", "runtime", "settings", "store"]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.fixture
def start_web(
    bridge_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., tuple[str, Process]]]:
    """`start_web(**env)` runs the Procfile's `web` with `bridge_env` and `env`; returns its
    base URL, once it answers, and the process."""
    started: list[Process] = []

    def start(**env: str) -> tuple[str, Process]:
        port = free_port()
        proc = Process("web", {**bridge_env, "PORT": str(port), **env}, tmp_path, str(port))
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), timeout=30, what=f"web on {url}:\n{proc.output()[-2000:]}")
        return url, proc

    yield start
    for proc in started:
        proc.stop(timeout=20)
