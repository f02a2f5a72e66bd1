"""Entry point of the `worker` and `beat` processes: `celery -A workers.worker ...`."""

from __future__ import annotations

import logging
import os
import signal
import threading

import celery.apps.worker
import redis
from celery.signals import (
    beat_init,
    setup_logging,
    task_prerun,
    worker_init,
    worker_shutting_down,
)

from bridge import helpdesks as adapters
from bridge.logs import JsonFormatter, configure_root, secrets_of
from bridge.logs import configure as configure_logging
from bridge.storage import Store
from workers.botpress import Botpress
from workers.celery_app import CeleryDispatch, PerProcess, make_celery
from workers.context import Context
from workers.drain import STOPPING
from workers.retry import RetryPolicy
from workers.tasks import register

log = logging.getLogger("hitl.worker")
settings = adapters.settings_or_exit(json_lines=True)
configure_logging(settings.log_level, redact=secrets_of(settings))
# Before Celery starts (it warns about the user it runs as before it sets up logging).
configure_root(settings.log_level, redact=secrets_of(settings))
_probe = Store.from_settings(settings)
app = make_celery(settings, poll_interval=adapters.load(settings, _probe).poll_interval)


def _context() -> Context:
    store = Store.from_settings(settings)
    return Context(
        settings=settings,
        store=store,
        helpdesk=adapters.load(settings, store),
        dispatch=CeleryDispatch(app),
        botpress=Botpress(settings),
        retry=RetryPolicy(settings.retry_base, settings.retry_cap, settings.retry_window),
    )


register(app, PerProcess(_context).get)


def _celery_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Celery's, kombu's and every library's lines as the bridge's redacted JSON lines.

    A receiver of this signal replaces Celery's own logging set-up altogether (and with it
    the redirection of stdout into its loggers), in the worker and in beat alike.
    """
    configure_root(loglevel or settings.log_level, redact=secrets_of(settings))


setup_logging.connect(_celery_logging, weak=False)
_formatter = JsonFormatter(secrets_of(settings))


def _say(msg: object, f: object = None) -> None:
    """Celery's worker prints its shutdown notices from its signal handlers with
    `celery.apps.worker.safe_say`, past logging: the same notices as JSON lines, written
    with one unbuffered write (no logging lock taken inside a signal handler)."""
    record = logging.LogRecord(
        "celery.apps.worker", logging.WARNING, "", 0, str(msg).strip(), None, None
    )
    os.write(2, (_formatter.format(record) + "\n").encode())


# Celery is capped below 6 (pyproject.toml); tests/security/test_process_logs.py fails if
# a worker's shutdown prints anything but JSON again.
celery.apps.worker.safe_say = _say


def _announce_pumps(**_: object) -> None:
    """This worker's PUMPS becomes the limit every process reserves pumps under (the web
    too, which never knows the workers' concurrency). Beat's wake-up repeats it each
    second (workers/tasks.py), so a Redis that is down now only delays it."""
    try:
        _probe.announce_pumps(settings.pumps)
    except redis.RedisError as exc:
        log.warning("could not announce the pump limit", extra={"error": type(exc).__name__})


worker_init.connect(_announce_pumps, weak=False)


def _beat_started(sender: object = None, **_: object) -> None:
    """Beat logs from WARNING up (its every-second sends would flood INFO): this one line
    says it runs, and what it schedules."""
    log.info("beat started", extra={"schedule": sorted(app.conf.beat_schedule)})


beat_init.connect(_beat_started, weak=False)


def _stop_gently_on_sigterm(**_: object) -> None:
    """Heroku (and a `kill` of the process group) sends SIGTERM to every process of the
    worker, pool children included; billiard's handler then exits the child mid-send.
    Instead, a child finishes the event in hand and hands its stream back, and the
    parent's warm shutdown waits for it and returns unstarted tasks to the queue.

    Installed as each task starts (billiard resets SIGTERM after worker_process_init);
    the flag only concerns the task in hand, so the next task starts with it clear.
    Tasks of the gevent and threads pools run in greenlets or threads of the main process,
    which take no signal handlers of their own: those pools stop through
    `_stop_on_shutdown` instead.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    STOPPING.clear()
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: object) -> None:
    STOPPING.set()


task_prerun.connect(_stop_gently_on_sigterm, weak=False)


def _stop_on_shutdown(**_: object) -> None:
    """Warm shutdown began in this process: with the gevent and threads pools the pumps run
    here, so each finishes the event in hand and hands its stream back, and the pool waits
    for them (prefork: no effect here, the children got SIGTERM themselves)."""
    STOPPING.set()


worker_shutting_down.connect(_stop_on_shutdown, weak=False)
