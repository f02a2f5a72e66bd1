"""Structured logs: one JSON object per line, with the conversation and event ids.

Message text, tokens and secrets never appear at INFO: callers log ids and outcomes only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
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


def configure(level: str = "INFO") -> None:
    """Send the `hitl` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hitl")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
