"""Verification of the webhook requests Zendesk sends, and the ticket ids they name."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bridge.errors import WebhookRejected

SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION = "X-Zendesk-Webhook-Invocation-Id"
MAX_SKEW = 300.0


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
#: Zendesk ticket ids are 64-bit integers.
_MAX_ID_DIGITS = 19


def _epoch(timestamp: str) -> float:
    """Zendesk sends ISO 8601 with a time zone (`2024-05-01T12:00:00Z`); epoch seconds are
    accepted too. Anything else, a time without its zone included, is refused: `NaN` would
    pass any window, and a zoneless time means whatever the server's zone is."""
    if _EPOCH.fullmatch(timestamp):
        return float(timestamp)
    try:
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WebhookRejected(f"unreadable {TIMESTAMP}", status=401) from exc
    if when.tzinfo is None:
        raise WebhookRejected(f"{TIMESTAMP} has no time zone", status=401)
    return when.timestamp()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, timestamp + body)), as Zendesk computes it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(headers: Mapping[str, str], body: bytes, *, secret: str, now: float) -> list[str]:
    """Check signature and timestamp; return the ticket ids the body names (as strings)."""
    if not secret:
        raise WebhookRejected("ZENDESK_WEBHOOK_SECRET is not set", status=401)
    signature, timestamp = _header(headers, SIGNATURE), _header(headers, TIMESTAMP)
    if not signature or not timestamp:
        raise WebhookRejected(f"missing {SIGNATURE} or {TIMESTAMP}", status=401)
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRejected("signature is not base64", status=401) from exc
    expected = base64.b64decode(sign(secret, timestamp, body))
    if not hmac.compare_digest(given, expected):
        raise WebhookRejected("bad signature", status=401)
    if abs(now - _epoch(timestamp)) > MAX_SKEW:
        raise WebhookRejected("timestamp outside the 5-minute window", status=401)
    return ticket_ids(body)


def _ticket_id(value: Any) -> str | None:
    """A positive 64-bit id, from a JSON number or a string of ASCII digits (`"²"` is a
    digit to str.isdigit, and int() refuses it)."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return str(value) if 0 < value < 2**63 else None


def ticket_ids(body: bytes) -> list[str]:
    """The ids in a trigger body (`{"ticket_id": …}`) or an event body (`detail.id`)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON", status=400) from exc
    if not isinstance(data, dict):
        raise WebhookRejected("body is not a JSON object", status=400)
    if "ticket_id" in data:
        tid = _ticket_id(data["ticket_id"])
    elif isinstance(data.get("detail"), dict) and "id" in data["detail"]:
        tid = _ticket_id(data["detail"]["id"])
    else:
        raise WebhookRejected("body names no ticket (ticket_id or detail.id)", status=400)
    if tid is None:
        raise WebhookRejected("ticket id is not a positive 64-bit integer", status=400)
    return [tid]


def invocation_id(headers: Mapping[str, str]) -> str | None:
    """The id Zendesk gives each invocation of a webhook (kept across its retries)."""
    value = _header(headers, INVOCATION)
    return value if 0 < len(value) <= 128 and value.isascii() and value.isprintable() else None
