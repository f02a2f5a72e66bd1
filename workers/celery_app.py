"""The workers' and beat's Celery app: the broker's settings (bridge/publisher.py) plus
the beat schedule."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from bridge.config import Settings
from bridge.publisher import DRAIN, PUMP, QUEUE, CeleryDispatch, broker_app

#: Beat: due retries are woken this often; pending streams are swept this often.
WAKE_EVERY = 1.0
SWEEP_EVERY = 30.0

__all__ = ["DRAIN", "PUMP", "QUEUE", "CeleryDispatch", "PerProcess", "make_celery"]


def make_celery(settings: Settings, *, poll_interval: float = 0.0) -> Celery:
    """The workers' and beat's app: the broker's settings (bridge/publisher.py) and the
    schedule."""
    app = broker_app(settings)
    app.conf.update(
        worker_hijack_root_logger=False,
        beat_schedule=_schedule(poll_interval),
        # Beat's schedule lives in memory: every entry is an interval that may simply start
        # over after a restart. The default keeps a pickle (shelve) file, at a fixed path in
        # /tmp in our Procfile before: instances on one host collided on it, and any local
        # user who created it first could have beat unpickle their code.
        beat_scheduler="celery.beat:Scheduler",
    )
    return app


def _schedule(poll_interval: float) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "wake-due-retries": {"task": "hitl.wake", "schedule": WAKE_EVERY},
        "sweep-pending-streams": {"task": "hitl.sweep", "schedule": SWEEP_EVERY},
    }
    if poll_interval > 0:
        schedule["poll-helpdesk"] = {"task": "hitl.poll", "schedule": poll_interval}
    return schedule


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
