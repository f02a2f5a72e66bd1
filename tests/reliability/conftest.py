"""Fixtures for the fault-injection suite: a persistent redis-server, the fake Botpress on a
fixed port (so it can refuse connections and come back), a helpdesk side, and the deployment.

`helpdesk` is the inbox unless a test parametrizes it indirectly, e.g.
`@pytest.mark.parametrize("helpdesk", ["inbox", "zendesk", "freshdesk"], indirect=True)`
(any of inbox, zendesk, chatwoot, freshdesk).
`http_helpdesk` runs a test once per helpdesk reached over HTTP (faults the inbox cannot
have): Zendesk, Chatwoot, Freshdesk."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.config import Settings
from tests.conftest import ADMIN_TOKEN, SECRET
from tests.reliability.harness import Deployment
from tests.reliability.helpdesk import (
    ChatwootSide,
    FreshdeskSide,
    HelpdeskSide,
    HttpSide,
    InboxSide,
    ZendeskSide,
)
from tests.support.fake_botpress import FakeBotpress
from tests.support.fake_chatwoot import FakeChatwoot
from tests.support.fake_freshdesk import FakeFreshdesk
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
HTTP_HELPDESKS = ["zendesk", "chatwoot", "freshdesk"]


@pytest.fixture
def redis_aof() -> Iterator[RedisServer]:
    """A redis-server of this test's own, with AOF persistence (fsync every second)."""
    server = RedisServer(persistent=True).start()
    yield server
    server.cleanup()


@pytest.fixture
def botpress() -> Iterator[FakeBotpress]:
    server = FakeBotpress()
    server.start()
    yield server
    server.stop()


def base_env(redis_url: str, botpress: FakeBotpress) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS", "BOTPRESS", "ZENDESK", "FRESHDESK"))
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": botpress.webhook_url,
            "BOTPRESS_API_URL": botpress.url,
            # Short waits so a run takes seconds: backoff 0.2 s doubling to 2 s, outbound
            # calls time out after 1 s, a dead worker's leases expire after 3 s.
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_CAP_SECONDS": "2",
            "HTTP_TIMEOUT_SECONDS": "1",
            "LEASE_SECONDS": "3",
            "LOG_LEVEL": "INFO",
            "WEB_CONCURRENCY": "2",
            "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


@pytest.fixture
def helpdesk(
    request: pytest.FixtureRequest, redis_aof: RedisServer, botpress: FakeBotpress
) -> HelpdeskSide:
    """The helpdesk a test uses: the inbox (runs everywhere), or the side it is
    parametrized with."""
    side = getattr(request, "param", "inbox")
    if side != "inbox":
        return _http_side(side, request, redis_aof)
    settings = Settings.from_env(base_env(redis_aof.url, botpress))
    return InboxSide(redis_aof.url, settings)


def _http_side(name: str, request: pytest.FixtureRequest, redis_aof: RedisServer) -> HttpSide:
    if name == "zendesk":
        return ZendeskSide(request.getfixturevalue("zendesk"), redis_aof.url)
    if name == "chatwoot":
        return ChatwootSide(request.getfixturevalue("chatwoot_fake"), redis_aof.url)
    assert name == "freshdesk", name
    return FreshdeskSide(request.getfixturevalue("freshdesk"), redis_aof.url, SECRET)


@pytest.fixture
def freshdesk() -> Iterator[FakeFreshdesk]:
    """The fake Freshdesk account (tests/support/fake_freshdesk.py)."""
    fake = FakeFreshdesk().start()
    yield fake
    fake.stop()


@pytest.fixture
def chatwoot_fake() -> Iterator[FakeChatwoot]:
    """The fake Chatwoot account (tests/support/fake_chatwoot.py)."""
    fake = FakeChatwoot().start()
    yield fake
    fake.stop()


@pytest.fixture(params=HTTP_HELPDESKS)
def http_helpdesk(request: pytest.FixtureRequest, redis_aof: RedisServer) -> HttpSide:
    """Each helpdesk reached over HTTP in turn, for faults the inbox cannot have."""
    return _http_side(request.param, request, redis_aof)


@pytest.fixture
def deploy(
    redis_aof: RedisServer, botpress: FakeBotpress, tmp_path: Path
) -> Iterator[Callable[..., Deployment]]:
    """`deploy(helpdesk, workers=2)` starts web, workers and beat; all stop at the end."""
    made: list[Deployment] = []

    def make(
        helpdesk: HelpdeskSide, *, workers: int = 2, start: bool = True, **overrides: str
    ) -> Deployment:
        env = {**base_env(redis_aof.url, botpress), **helpdesk.env(), **overrides}
        d = Deployment(env, redis_aof, tmp_path)
        made.append(d)
        return d.start(workers) if start else d

    yield make
    for d in made:
        d.stop()
    print(f"process logs: {tmp_path}")
