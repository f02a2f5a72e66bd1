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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from bridge.config import Settings

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


#: Environment variables whose values are secrets wherever they come from (adapters' too).
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|AUTH|CREDENTIALS)", re.I)
_MIN_SECRET = 8


def secrets_of(settings: Settings) -> list[str]:
    """Values that must never be logged: configured secrets and the Botpress webhook's id."""
    found = [settings.bridge_secret, settings.admin_token or "", settings.botpress_token or ""]
    found += [v for k, v in settings.environ.items() if _SECRET_NAME.search(k)]
    if settings.botpress_webhook_url:
        found.append(urlparse(settings.botpress_webhook_url).path.rstrip("/").rpartition("/")[2])
    for url in (settings.redis_url, settings.environ.get("REDIS_URL", "")):
        password = urlparse(url).password if url else None
        found.append(password or "")
    return sorted({v for v in found if len(v) >= _MIN_SECRET}, key=len, reverse=True)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = [r for r in redact if r]

    def format(self, record: logging.LogRecord) -> str:
        line = self._format(record)
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


def configure(level: str = "INFO", redact: Iterable[str] = ()) -> None:
    """Send the `hitl` loggers to stderr as JSON lines, `redact`ed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact))
    logger = logging.getLogger("hitl")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
