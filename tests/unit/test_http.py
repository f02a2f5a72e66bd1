"""Outbound HTTP sessions (workers/http.py)."""

from __future__ import annotations

from typing import Any

from workers import http


def test_keep_alive_pools_follow_the_sends_in_flight() -> None:
    """Issue 16: a connection per send in flight stays open; requests' default (10) would
    open and drop a new one for every call above it."""
    from bridge.config import Settings
    from workers.botpress import Botpress

    def pool_size(session: Any) -> int:
        return int(session.get_adapter("https://x.example/")._pool_maxsize)

    assert pool_size(http.session()) == http.POOL_SIZE
    assert pool_size(http.session(256)) == 256
    env = {"BRIDGE_SECRET": "Kx3_9vQ-Lm2pZr8T", "WORKER_CONCURRENCY": "200"}
    assert pool_size(Botpress(Settings.from_env(env)).session) == 200
