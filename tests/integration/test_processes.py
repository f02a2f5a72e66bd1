"""The Procfile's processes as a platform runs them: gunicorn web, refusal on bad config."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.conftest import SECRET
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.processes import Process
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration


def test_gunicorn_web_serves_the_contract(
    bridge_env: dict[str, str],
    tmp_path: Path,
    fake_botpress: FakeBotpress,
    workers: Callable[..., Process],
) -> None:
    port = free_port()
    web = Process("web", {**bridge_env, "PORT": str(port)}, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(f"{base}/healthz"), what="gunicorn to answer")
        bp = f"{base}/botpress/{SECRET}"
        assert requests.post(f"{bp}/ping", json={"type": "ping"}, timeout=5).json() == {"ok": True}
        cid = requests.post(
            f"{bp}/createRemoteConversation",
            json={"type": "createRemoteConversation", "payload": {"title": "t"}},
            timeout=5,
        ).json()["id"]
        r = requests.post(
            f"{bp}/botSendsMessage",
            json={
                "type": "botSendsMessage",
                "remoteConversationId": cid,
                "remoteUserId": "BOT",
                "payload": {"text": "x"},
            },
            timeout=5,
        )
        assert r.status_code == 200
        bad = requests.post(f"{bp}/botSendsMessage", data=b"{", timeout=5)
        assert bad.status_code == 400 and bad.json()["error"] == "malformed JSON"
        assert requests.get(f"{base}/readyz", timeout=5).json()["redis"] == "ok"
        workers()
        auth = {"Authorization": f"Bearer {bridge_env['ADMIN_TOKEN']}"}
        wait_until(
            lambda: (
                requests.get(f"{base}/inbox/api/conversations/{cid}", headers=auth, timeout=5)
                .json()
                .get("messages")
            ),
            what="message in inbox",
        )
    finally:
        assert web.stop(timeout=30) == 0, web.output()[-2000:]


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:  # not listening yet, or listening before a worker booted
        return False


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_processes_refuse_to_start_without_a_secret(
    bridge_env: dict[str, str], process: str
) -> None:
    from bridge import procfile

    env = {k: v for k, v in bridge_env.items() if k != "BRIDGE_SECRET"}
    env["PORT"] = str(free_port())
    proc = procfile.spawn(process, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"configuration error: BRIDGE_SECRET is not set" in out, out[-2000:]
