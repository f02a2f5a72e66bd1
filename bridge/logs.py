"""Structured logs: one JSON object per line, with the conversation and event ids.

Message text, tokens and secrets never appear at INFO: callers log ids and outcomes only.
As a safety net, `configure(redact=...)` scrubs the configured secrets (secrets_of) from
every line at every level, exception traces included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlparse

if TYPE_CHECKING:
    from bridge.config import Settings

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


#: Environment variables whose values are secrets wherever they come from (adapters' too).
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|AUTH|CREDENTIALS)", re.I)
_MIN_SECRET = 8


def secrets_in(environ: Mapping[str, str]) -> list[str]:
    """Values in `environ` that must never be logged: every variable named like a secret,
    the Botpress webhook's id (its URL's last segment) and the Redis and broker passwords;
    longest first, so a secret holding another is redacted whole. Works on an environment
    that does not validate (a process's log set-up comes before its configuration check)."""
    found = [v.strip() for k, v in environ.items() if _SECRET_NAME.search(k)]
    webhook = environ.get("BOTPRESS_WEBHOOK_URL", "").strip()
    if webhook:
        found.append(urlparse(webhook).path.rstrip("/").rpartition("/")[2])
    for name in ("REDIS_URL", "REDIS_TLS_URL", "CELERY_BROKER_URL"):
        url = environ.get(name, "").strip()
        try:
            password = urlparse(url).password if url else None
        except ValueError:  # an unreadable URL: configuration refuses it; nothing to find
            password = None
        found.append(password or "")
    return sorted({v for v in found if len(v) >= _MIN_SECRET}, key=len, reverse=True)


def secrets_of(settings: Settings) -> list[str]:
    """Values that must never be logged: configured secrets and the Botpress webhook's id."""
    found = [settings.bridge_secret, settings.admin_token or "", settings.botpress_token or ""]
    found += secrets_in(settings.environ)
    if settings.botpress_webhook_url:
        found.append(urlparse(settings.botpress_webhook_url).path.rstrip("/").rpartition("/")[2])
    password = urlparse(settings.redis_url).password
    found.append(password or "")
    return sorted({v for v in found if len(v) >= _MIN_SECRET}, key=len, reverse=True)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = [r for r in redact if r]

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(self._format(record))

    def scrub(self, line: str) -> str:
        """`line` with every secret replaced by `[redacted]`."""
        for secret in self.redact:
            line = line.replace(secret, "[redacted]")
        return line

    def _format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        stream = out.get("stream")
        if isinstance(stream, str) and ":" in stream and "conversation" not in out:
            kind, _, owner = stream.partition(":")
            out["direction"] = {"bp": "to_botpress", "in": "from_helpdesk"}.get(kind, "to_helpdesk")
            if kind in ("hd", "in", "bp"):
                out["conversation"] = owner
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def problem_lines(
    problems: Iterable[str], environ: Mapping[str, str], *, as_json: bool
) -> list[str]:
    """Configuration problems as the lines a process prints before it exits: JSON log lines
    for the Procfile's processes, plain text for a person at the command line; redacted."""
    formatter = JsonFormatter(secrets_in(environ))
    out = []
    for problem in problems:
        text = f"configuration error: {problem}"
        if as_json:
            record = logging.LogRecord("hitl.config", logging.ERROR, "", 0, text, None, None)
            out.append(formatter.format(record))
        else:
            out.append(formatter.scrub(text))
    return out


def json_handler(redact: Iterable[str] = (), stream: TextIO | None = None) -> logging.Handler:
    """A handler writing JSON lines, `redact`ed, to `stream` (stderr when None)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    return handler


def configure(level: str = "INFO", redact: Iterable[str] = ()) -> None:
    """Send the `hitl` loggers to stderr as JSON lines, `redact`ed."""
    logger = logging.getLogger("hitl")
    logger.handlers[:] = [json_handler(redact)]
    logger.setLevel(level)
    logger.propagate = False


def configure_root(level: int | str, redact: Iterable[str] = ()) -> None:
    """Every other logger of the process (Celery's, kombu's, a library's, Python's warnings)
    as JSON lines too: for processes the bridge owns, where nothing else configured logging."""
    root = logging.getLogger()
    root.handlers[:] = [json_handler(redact)]
    root.setLevel(level)
    logging.captureWarnings(True)


def gunicorn_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its error and access logs (which print request lines,
    path secret included) through the same redacting JSON formatter as the bridge's."""
    level = environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        level = "INFO"  # the configuration check reports it; logging must not fail first
    formatter = {"()": f"{__name__}.JsonFormatter", "redact": secrets_in(environ)}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }
