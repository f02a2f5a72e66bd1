"""Instructions per ingress request, counted by callgrind: `python -m benchmarks.instructions`.

Timings on a shared 2-core VM move by ±10 % from one run to the next, which hides a change
worth 2 %. An instruction count does not move: callgrind counts what the process executes
(user space only: system calls, other processes and Redis itself are not counted), the same
from run to run within a fraction of a percent, whatever else the machine is doing.

Each side runs in a process of its own without an HTTP server: WSGI calls straight into the
app, against a redis-server this script starts (AOF, as in production) and with prometheus
in multiprocess mode, as under gunicorn. Sides:

- `trivial`: benchmarks/trivial_app.py's `/trivial` (parse the JSON body, answer `{"ok": true}`);
- `stored`: its `/stored` (the same plus one Redis PING);
- `bridge`: `botSendsMessage` on the bridge's app, over 200 conversations. No worker runs, so
  the bridge is told that no pump may start: a request that wakes a stream would otherwise
  publish a Celery task now and then (whenever a wake-up lapses), which is not the cost of
  accepting a message.

Each side runs twice, with 200 and with 1,200 requests after the same set-up; the difference
divided by 1,000 is the figure per request (start-up and set-up cancel out). About 5 minutes
on 2 cores; needs valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = ("trivial", "stored", "bridge")
FEW, MANY = 200, 1200
DOCUMENT = json.dumps(
    {
        "type": "botSendsMessage",
        "remoteConversationId": "c_0123456789abcdefghij",
        "remoteUserId": "u_0123456789abcdefghij",
        "payload": {"text": "Hello, I would like to change my delivery address please."},
    }
).encode()

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def post(app: WSGIApp, path: str, body: bytes) -> tuple[str, bytes]:
    """One POST straight into a WSGI app: (status line, body)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
    }
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], answer


def requests_for(side: str) -> tuple[WSGIApp, list[tuple[str, bytes]]]:
    """The app of `side`, set up, and the requests to send to it in turn."""
    if side in ("trivial", "stored"):
        from benchmarks.trivial_app import app as trivial

        return trivial.wsgi_app, [(f"/{side}", DOCUMENT)]
    from bridge.app import create_app
    from bridge.web import EXTENSION

    flask_app = create_app()
    flask_app.extensions[EXTENSION].store.announce_pumps(0)
    app = flask_app.wsgi_app
    base = f"/botpress/{os.environ['BRIDGE_SECRET']}/"
    bodies = []
    for i in range(200):
        user = {"type": "createRemoteUser", "payload": {"name": f"u{i}"}}
        uid = json.loads(post(app, base + "createRemoteUser", json.dumps(user).encode())[1])["id"]
        conv = {"type": "createRemoteConversation", "payload": {"title": f"c{i}"}}
        body = post(app, base + "createRemoteConversation", json.dumps(conv).encode())[1]
        message = json.loads(DOCUMENT)
        message.update(remoteConversationId=json.loads(body)["id"], remoteUserId=uid)
        bodies.append((base + "botSendsMessage", json.dumps(message).encode()))
    return app, bodies


def run_side(side: str, n: int) -> None:
    app, sends = requests_for(side)
    for i in range(n):
        path, body = sends[i % len(sends)]
        status, answer = post(app, path, body)
        if not status.startswith("200"):
            raise SystemExit(f"{side}: {status} {answer[:200]!r}")


def count(side: str, n: int, env: dict[str, str], out: Path) -> int:
    """Instructions callgrind counted for a whole `--side` process sending `n` requests."""
    # A key prefix of its own: runs go two at a time against one Redis.
    env = {**env, "REDIS_KEY_PREFIX": f"{side}{n}"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out / f'{side}-{n}.out'}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--side",
            side,
            "--requests",
            str(n),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{side} under callgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:  # one measured process, started by the run below
        run_side(args.side, args.requests)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2

    from benchmarks.run import ADMIN, SECRET
    from tests.support.redis_server import RedisServer

    server = RedisServer(persistent=True).start()
    out = Path(tempfile.mkdtemp(prefix="hitl-callgrind-"))
    try:
        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN,
            "BOTPRESS_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "HELPDESK": "inbox",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(out),
            "PYTHONPATH": str(ROOT),
        }
        runs = [(side, n) for side in SIDES for n in (FEW, MANY)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            found = pool.map(lambda run: count(run[0], run[1], env, out), runs)
            counted = dict(zip(runs, found, strict=True))
    finally:
        server.cleanup()
        shutil.rmtree(out, ignore_errors=True)
    per = {side: (counted[side, MANY] - counted[side, FEW]) / (MANY - FEW) for side in SIDES}
    print("instructions per request (callgrind, in-process, no HTTP server)")
    for side in SIDES:
        print(f"  {side:<8} {per[side]:>10,.0f}   {per[side] / per['trivial']:.2f}x trivial")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
