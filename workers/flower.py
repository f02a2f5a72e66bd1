"""Entry point of the `flower` process (Celery's monitoring UI), which never runs open.

    python -m workers.flower [flower options...]

Refuses to start unless FLOWER_BASIC_AUTH holds `user:password` pairs (comma-separated,
passwords of 12 characters or more). Flower reads the variable itself, so the password
never appears on a command line. Listens on $PORT (default 5555).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

MIN_PASSWORD = 12


def auth_problems(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("FLOWER_BASIC_AUTH", "").strip()
    if not raw:
        return [
            "FLOWER_BASIC_AUTH is not set: Flower shows every task and can stop workers, so it "
            "only runs behind a password. Set FLOWER_BASIC_AUTH=user:password (comma-separate "
            "several pairs)"
        ]
    problems = []
    for pair in raw.split(","):
        user, sep, password = pair.strip().partition(":")
        if not sep or not user:
            problems.append("FLOWER_BASIC_AUTH must be user:password pairs, comma-separated")
        elif len(password) < MIN_PASSWORD:
            problems.append(f"FLOWER_BASIC_AUTH: {user}'s password is under {MIN_PASSWORD} chars")
    return problems


def command(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    port = environ.get("PORT", "").strip() or "5555"
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.worker",
        "flower",
        f"--port={port}",
        *argv,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    problems = auth_problems(os.environ)
    if problems:
        for line in problems:
            print(f"configuration error: {line}", file=sys.stderr)
        return 2
    cmd = command(sys.argv[1:] if argv is None else argv, os.environ)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
