"""Publishing the bridge's wake-ups (start a pump, retry a stream) to Celery's broker.

Every process publishes: the web and the CLI as they accept events, the workers as their
deliveries produce more. This is the one place the broker's settings live (DESIGN.md §6's
traps kept shut); workers/celery_app.py adds what only workers and beat need.
"""

from __future__ import annotations

import ssl

from celery import Celery

from bridge.config import Settings

DRAIN = "hitl.drain"
PUMP = "hitl.pump"
QUEUE = "hitl"


def broker_app(settings: Settings) -> Celery:
    """A Celery app that publishes to (and, in a worker, consumes from) the broker."""
    app = Celery("hitl_bridge", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task here is only a wake-up: every event lives in its Redis stream until it is
        # delivered, and beat re-wakes what a lost task would have drained (due retries
        # every second, pumps whose heartbeat stopped, pending streams every 30 s). So
        # tasks are acked as they start: no redelivery after a visibility timeout
        # (kombu#337), and no late-ack tasks to cancel on a broker connection loss, where
        # Celery 5.7's restore of unacked messages kills the worker (celery#9250).
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        # Publishing is rare (a pump start, a retry countdown) and brief: two pooled broker
        # connections per process instead of ten, since hosted Redis plans cap clients
        # (Heroku's smallest at 20). Publishers wait for a free one, never forever: a pump
        # that fails to start is forgotten and beat starts another (bridge/runtime.py).
        broker_pool_limit=2,
        broker_pool_acquire_timeout=5.0,
        broker_connection_retry_on_startup=True,
        # Redis broker: countdowns stay under 30 s (long waits live in Redis), far below
        # this. RabbitMQ ignores it (its consumer timeout, 30 min by default, is far too).
        broker_transport_options={"visibility_timeout": 3600},
    )
    if settings.broker_url.startswith("rediss://"):
        reqs = {
            "required": ssl.CERT_REQUIRED,
            "optional": ssl.CERT_OPTIONAL,
            "none": ssl.CERT_NONE,
        }[settings.redis_ssl_cert_reqs]
        app.conf.broker_use_ssl = {"ssl_cert_reqs": reqs}
    return app


class CeleryDispatch:
    """Starts the bridge's tasks through `app`'s broker (bridge.runtime.Dispatch)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def drain(self, stream: str, countdown: float) -> None:
        self.app.send_task(DRAIN, args=[stream], queue=QUEUE, countdown=countdown or None)

    def pump(self, pump_id: str) -> None:
        self.app.send_task(PUMP, args=[pump_id], queue=QUEUE)
