"""nginx with deploy/nginx.conf in front of a test's `web`, rendered and run as documented."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx.conf"
#: The template's only variables: envsubst is told to replace these and nothing else.
VARIABLES = ("PORT", "UPSTREAM", "LIVE_UPSTREAM")


def render(port: int | str, upstream: str, live_upstream: str = "127.0.0.1:9") -> str:
    """The template rendered with envsubst, as the docs and the nginx image do it."""
    envsubst = shutil.which("envsubst")
    if envsubst is None:
        raise RuntimeError("envsubst is not installed (scripts/test installs gettext-base)")
    return subprocess.run(
        [envsubst, " ".join(f"${{{name}}}" for name in VARIABLES)],
        input=TEMPLATE.read_text(),
        env={
            "PATH": os.environ.get("PATH", ""),
            "PORT": str(port),
            "UPSTREAM": upstream,
            "LIVE_UPSTREAM": live_upstream,
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def nginx_binary() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH may lack.
    path = f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin"
    binary = shutil.which("nginx", path=path)
    if binary is None:
        raise RuntimeError("nginx is not installed (scripts/test installs it: ensure_nginx)")
    return binary


class Nginx:
    """nginx in the foreground, its prefix in a private directory; access log on stdout
    (`access_log()`), error log on stderr (`error_log()`)."""

    def __init__(self, upstream: str, live_upstream: str = "127.0.0.1:9") -> None:
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="hitl-nginx-"))
        # Run as root (CI), nginx's workers drop to `nobody` and must reach their temp dirs.
        self.prefix.chmod(0o755)
        conf = self.prefix / "nginx.conf"
        conf.write_text(render(self.port, upstream, live_upstream))
        self._out = (self.prefix / "access.log").open("wb")
        self._err = (self.prefix / "error.log").open("wb")
        # As the image runs it: in the foreground, the template's paths under the prefix.
        command = [nginx_binary(), "-p", f"{self.prefix}/", "-c", str(conf), "-e", "stderr"]
        self.proc = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )
        self._wait_listening()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(self.address, timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not start:\n{self.error_log()}")

    def access_log(self) -> str:
        return (self.prefix / "access.log").read_text(errors="replace")

    def error_log(self) -> str:
        return (self.prefix / "error.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        self._err.close()
        shutil.rmtree(self.prefix, ignore_errors=True)
