"""Reads the Procfile and runs its processes together, the way a platform would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The Procfile's lines, for a bridge installed as a package (`pip install` puts no Procfile
#: beside it): `hitl-bridge dev` then runs these. tests/unit/test_deploy.py holds them equal
#: to the checkout's Procfile, which platforms read.
INSTALLED = {
    "web": "gunicorn --config python:bridge.gunicorn_conf bridge.wsgi:app",
    "worker": "celery -A workers.worker --quiet worker --loglevel=INFO --queues=hitl "
    "--pool=${WORKER_POOL:-gevent} --concurrency=${WORKER_CONCURRENCY:-256} "
    "--without-gossip --without-mingle --hostname=worker.$$@%h",
    "beat": "celery -A workers.worker --quiet beat --loglevel=WARNING",
    "flower": "python -m workers.flower",
    "live": "python -m bridge.helpdesks.inbox.live",
}


def home() -> Path:
    """Where the processes run: the checkout, or the current folder for an installed package."""
    return ROOT if (ROOT / "Procfile").is_file() else Path.cwd()


def parse(text: str) -> dict[str, str]:
    """Process type -> command, in order."""
    commands: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not line.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def read(path: Path | None = None) -> dict[str, str]:
    """The commands of the Procfile at `path`, else the checkout's, else INSTALLED."""
    path = path or ROOT / "Procfile"
    return parse(path.read_text()) if path.is_file() else dict(INSTALLED)


def spawn(
    name: str, env: Mapping[str, str], *, cwd: Path | None = None, **popen: object
) -> subprocess.Popen[bytes]:
    """Start one Procfile process in its own process group (so it can be signalled whole)."""
    cwd = cwd or home()
    command = read(cwd / "Procfile" if (cwd / "Procfile").is_file() else None)[name]
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        **popen,  # type: ignore[call-overload]
    )
    return proc


def run(names: Sequence[str], env: Mapping[str, str]) -> int:
    """Run the named processes, prefixing their output; stop all when one exits or on a signal."""
    procs = {n: spawn(n, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for n in names}
    width = max(map(len, names))

    def pump(name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sys.stdout.write(f"{name:<{width}} | {raw.decode(errors='replace')}")
            sys.stdout.flush()

    for n, p in procs.items():
        threading.Thread(target=pump, args=(n, p), daemon=True).start()
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    code = 0
    while not stopping.is_set():
        for n, p in procs.items():
            if p.poll() is not None:
                print(f"{n} exited with code {p.returncode}; stopping the others", flush=True)
                code = p.returncode or 1
                stopping.set()
        time.sleep(0.2)
    stop(procs.values())
    return code


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM each process group, then SIGKILL what is still there after `timeout`."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in live:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
