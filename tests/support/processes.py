"""Runs the Procfile's processes for tests, exactly as a platform would."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bridge import procfile


class Process:
    """One Procfile process with its output in a log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, tag: str = "") -> None:
        self.name = name
        self.log = log_dir / f"{name}{tag}.log"
        self._fh = self.log.open("wb")
        self.proc = procfile.spawn(name, env, stdout=self._fh, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} never printed {text!r}:\n{self.output()[-3000:]}")

    def signal(self, sig: int) -> None:
        """Signal the whole process group (the platform's way)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        procfile.stop([self.proc], timeout)
        self._fh.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)
        self._fh.close()


def start_worker(env: dict[str, str], log_dir: Path, tag: str = "") -> Process:
    p = Process("worker", env, log_dir, tag)
    p.wait_for(" ready.", timeout=60)
    return p
