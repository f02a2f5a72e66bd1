"""Secrets in logs (issue 14 §5): every line every Procfile process writes, gunicorn's and
Celery's own included, is one JSON object with the configured secrets redacted."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, SECRET
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.processes import Process

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "redis-pass-7Yq2mZ"


def _lines(proc: Process) -> list[str]:
    return [line for line in proc.output().splitlines() if line.strip()]


def test_every_line_of_web_worker_and_beat_is_redacted_json(
    start_web: Callable[..., tuple[str, Process]],
    workers: Callable[..., Process],
    bridge_env: dict[str, str],
    fake_botpress: FakeBotpress,
    tmp_path: Path,
) -> None:
    # Access log on: gunicorn then writes every request line, path secret included.
    base, web = start_web(GUNICORN_ACCESS_LOG="-")
    worker = workers()
    beat = Process("beat", {**bridge_env}, tmp_path)
    try:
        bp = f"{base}/botpress/{SECRET}"
        assert requests.post(f"{bp}/ping", json={"type": "ping"}, timeout=5).status_code == 200
        # A request line gunicorn refuses: it logs the line it could not parse.
        parts = urlsplit(base)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            sock.sendall(f"POST /botpress/{SECRET}/ping HTTP/1.1 junk\r\n\r\n".encode())
            sock.recv(4096)
        requests.get(f"{base}/inbox/api/conversations", timeout=5)  # 401: a logged failure
        requests.get(
            f"{base}/inbox/api/conversations",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=5,
        )
        beat.wait_for('"beat started"', timeout=30)
        time.sleep(2)  # beat sends its every-second wake-up a few times (logged below WARNING)
        assert beat.proc.poll() is None, beat.output()
        wait_until(lambda: "Invalid" in web.output(), timeout=10, what="gunicorn's complaint")
    finally:
        beat.stop(timeout=20)
        worker.stop(timeout=20)  # its shutdown notices are lines too
        time.sleep(0.2)
    webhook_id = fake_botpress.webhook_url.rstrip("/").rpartition("/")[2]
    for proc in (web, worker, beat):
        lines = _lines(proc)
        assert lines, proc.name
        for line in lines:
            record = json.loads(line)  # raises on any line that is not one JSON object
            assert {"ts", "level", "logger", "msg"} <= set(record), line
        text = proc.output()
        assert SECRET not in text and ADMIN_TOKEN not in text, proc.name
        assert len(webhook_id) < 8 or webhook_id not in text
    web_text = web.output()
    assert "[redacted]" in web_text and '"logger": "gunicorn.error"' in web_text
    assert '"logger": "gunicorn.access"' in web_text
    assert "shutdown" in worker.output().lower()


def test_a_refused_configuration_is_a_redacted_json_line(
    bridge_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **bridge_env,
        # Refused for its scheme, and written out in the problem: the password must not be.
        "REDIS_URL": f"rediz://:{REDIS_PASSWORD}@127.0.0.1:1/0",
        "RETRY_WINDOW_SECONDS": "soon",  # invalid: the process must stop at once
    }
    for name in ("web", "worker"):
        proc = Process(name, env, tmp_path, tag="-bad")
        proc.proc.wait(60)
        lines = _lines(proc)
        errors = [json.loads(line) for line in lines if "configuration error" in line]
        assert errors and all(e["level"] == "error" for e in errors), lines
        assert REDIS_PASSWORD not in proc.output() and SECRET not in proc.output()
