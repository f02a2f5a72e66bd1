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

from bridge.errors import WebhookRejected
from bridge.helpdesks import inbound

SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION = "X-Zendesk-Webhook-Invocation-Id"
MAX_SKEW = 300.0


_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


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
    signature, timestamp = inbound.header(headers, SIGNATURE), inbound.header(headers, TIMESTAMP)
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


def ticket_ids(body: bytes) -> list[str]:
    """The ids in a trigger body (`{"ticket_id": …}`) or an event body (`detail.id`)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON", status=400) from exc
    if not isinstance(data, dict):
        raise WebhookRejected("body is not a JSON object", status=400)
    if "ticket_id" in data:
        tid = inbound.positive_id(data["ticket_id"])
    elif isinstance(data.get("detail"), dict) and "id" in data["detail"]:
        tid = inbound.positive_id(data["detail"]["id"])
    else:
        raise WebhookRejected("body names no ticket (ticket_id or detail.id)", status=400)
    if tid is None:
        raise WebhookRejected("ticket id is not a positive 64-bit integer", status=400)
    return [tid]


def invocation_id(headers: Mapping[str, str]) -> str | None:
    """The id Zendesk gives each invocation of a webhook (kept across its retries)."""
    value = inbound.header(headers, INVOCATION)
    return value if 0 < len(value) <= 128 and value.isascii() and value.isprintable() else None
