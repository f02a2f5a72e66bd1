"""The integration tests run twice: with Celery's broker on the bridge's Redis (the default)
and on RabbitMQ (`CELERY_BROKER_URL=amqp://…`), events staying in Redis both times."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rabbitmq import Unavailable, VirtualHost
from workers.celery_app import QUEUE


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[VirtualHost | str]:
    """A vhost of this run's own, or why there is none."""
    try:
        vhost = VirtualHost()
    except Unavailable as exc:
        yield str(exc)
        return
    yield vhost
    vhost.delete()


@pytest.fixture(params=["redis-broker", "rabbitmq-broker"])
def bridge_env(
    request: pytest.FixtureRequest, bridge_env: dict[str, str], rabbitmq: VirtualHost | str
) -> dict[str, str]:
    if request.param == "redis-broker":
        return bridge_env
    if isinstance(rabbitmq, str):
        pytest.skip(f"RabbitMQ broker: {rabbitmq}")
    rabbitmq.purge(QUEUE)
    return {**bridge_env, "CELERY_BROKER_URL": rabbitmq.url}
