"""The README's "Try a hand-off" walkthrough, run as written (issue 15: a newcomer's path).

The shell block is taken from README.md and run with bash in a folder laid out as
`./scripts/dev` leaves a checkout: `.hitl-bridge/env` (the secrets and the running Redis's
REDIS_URL) and `.venv/bin/hitl-bridge`. Only the web's address differs (a free port, not
8000), since tests never take a fixed port.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, SECRET
from tests.integration.test_end_to_end import wait_until
from tests.support.fake_botpress import FakeBotpress
from tests.support.processes import Process
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try a hand-off with the inbox", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README's walkthrough has no sh block"
    return block.group(1)


def test_the_readme_walkthrough_works_as_written(
    bridge_env: dict[str, str],
    workers: Callable[..., Process],
    fake_botpress: FakeBotpress,
    tmp_path: Path,
) -> None:
    port = free_port()
    web = Process("web", {**bridge_env, "PORT": str(port)}, tmp_path)
    try:
        workers()
        wait_until(lambda: "Booting worker" in web.output(), what="web to start")
        # As scripts/dev leaves a checkout.
        state = tmp_path / "checkout" / ".hitl-bridge"
        state.mkdir(parents=True)
        (state / "env").write_text(
            f"BRIDGE_SECRET={SECRET}\nADMIN_TOKEN={ADMIN_TOKEN}\n"
            f"REDIS_URL={bridge_env['REDIS_URL']}\n"
        )
        venv_bin = tmp_path / "checkout" / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        (venv_bin / "hitl-bridge").symlink_to(Path(sys.executable).parent / "hitl-bridge")
        script = walkthrough().replace("http://localhost:8000", f"http://localhost:{port}")
        # The other shell: only what a terminal has, plus the README's `. .hitl-bridge/env`.
        env = {"PATH": bridge_env["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
        wait_until(
            lambda: (
                subprocess.run(
                    ["curl", "-sf", f"http://localhost:{port}/healthz"], capture_output=True
                ).returncode
                == 0
            ),
            what="web to answer",
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f"set -a; . .hitl-bridge/env; set +a\n{script}"],
            cwd=tmp_path / "checkout",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert '{"ok":true}' in done.stdout and "Refund" in done.stdout, done.stdout
        assert done.stdout.rstrip().endswith("ok"), done.stdout
        [got] = fake_botpress.wait_for(1)
        assert got["route"] == "message-from-agent"
        assert got["body"]["payload"] == {"text": "Hello Ada, how can I help?"}
        assert got["body"]["remoteUserId"] == "agent:inbox:alice"
    finally:
        web.stop(timeout=20)
