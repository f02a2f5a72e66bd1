"""The end-to-end benchmark's yardstick: plain Celery, one no-op task per event.

Same broker (the benchmark's Redis), same broker settings as the bridge's Celery app
(late ack, prefetch, JSON), same worker command line and concurrency.
Run as `celery -A benchmarks.plain_celery worker ...`.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("plain", broker=os.environ["REDIS_URL"], set_as_current=False)
app.conf.update(
    task_default_queue="plain",
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(event: str) -> None:
    return None
