"""The Celery app: broker settings that keep DESIGN.md §6's traps shut, and the beat schedule."""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from bridge.config import Settings

DRAIN = "hitl.drain"
PUMP = "hitl.pump"
QUEUE = "hitl"
#: Beat: due retries are woken this often; pending streams are swept this often.
WAKE_EVERY = 1.0
SWEEP_EVERY = 30.0


def make_celery(settings: Settings, *, poll_interval: float = 0.0) -> Celery:
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
        worker_hijack_root_logger=False,
        beat_schedule=_schedule(poll_interval),
        # Beat's schedule lives in memory: every entry is an interval that may simply start
        # over after a restart. The default keeps a pickle (shelve) file, at a fixed path in
        # /tmp in our Procfile before: instances on one host collided on it, and any local
        # user who created it first could have beat unpickle their code.
        beat_scheduler="celery.beat:Scheduler",
    )
    if settings.broker_url.startswith("rediss://"):
        reqs = {
            "required": ssl.CERT_REQUIRED,
            "optional": ssl.CERT_OPTIONAL,
            "none": ssl.CERT_NONE,
        }[settings.redis_ssl_cert_reqs]
        app.conf.broker_use_ssl = {"ssl_cert_reqs": reqs}
    return app


def _schedule(poll_interval: float) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "wake-due-retries": {"task": "hitl.wake", "schedule": WAKE_EVERY},
        "sweep-pending-streams": {"task": "hitl.sweep", "schedule": SWEEP_EVERY},
    }
    if poll_interval > 0:
        schedule["poll-helpdesk"] = {"task": "hitl.poll", "schedule": poll_interval}
    return schedule


class CeleryDispatch:
    """Starts the bridge's tasks through `app`'s broker (bridge.runtime.Dispatch)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def drain(self, stream: str, countdown: float) -> None:
        self.app.send_task(DRAIN, args=[stream], queue=QUEUE, countdown=countdown or None)

    def pump(self, pump_id: str) -> None:
        self.app.send_task(PUMP, args=[pump_id], queue=QUEUE)


class PerProcess:
    """Builds a value lazily, once per process: Redis connections must not cross a fork.
    Thread-safe, for the threads pool."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._pid = -1
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._value = self._build()
                    self._pid = os.getpid()
        return self._value
