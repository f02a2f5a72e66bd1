"""gunicorn settings for the `web` process (`--config python:bridge.gunicorn_conf`)."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

from bridge.logs import gunicorn_config

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Heroku sends SIGKILL 30 s after SIGTERM: finish in-flight requests well before that.
graceful_timeout = 20
timeout = 30
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# gunicorn's own lines (a bad request line prints the path, secret included) in the
# bridge's redacting JSON format, like every line of every process.
logconfig_dict = gunicorn_config(os.environ)
# gunicorn 25.1+ listens on a control socket at a fixed per-user path ($HOME/.gunicorn):
# instances on one host would share it. The bridge is driven by signals, never by gunicornc.
control_socket_disable = True

# Prometheus multiprocess mode: each gunicorn worker writes its counters to files in this
# directory and /metrics adds them up, whichever worker answers the scrape. It must be in
# the environment before any worker imports prometheus_client, hence here, at config load.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hitl-prometheus-")


def on_starting(server: Any) -> None:
    """Refuse to start on invalid configuration, one line per problem."""
    from bridge.helpdesks import settings_or_exit

    settings_or_exit(json_lines=True)
    # Counters left by a previous run would be added to this one's.
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(metrics_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(stale)


def worker_exit(server: Any, worker: Any) -> None:
    """Write what this worker counted since its last metrics flush (bridge.metrics.Tally)."""
    from bridge.metrics import TALLY

    TALLY.flush()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges must stop counting (its counters stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
