"""Verification of the webhook requests Zendesk sends, and the ticket ids they name."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
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


def _epoch(timestamp: str) -> float:
    """Zendesk sends ISO 8601 (`2024-05-01T12:00:00Z`); epoch seconds are accepted too."""
    try:
        return float(timestamp)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise WebhookRejected(f"unreadable {TIMESTAMP}", status=401) from exc


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
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value.strip()))
    return None


def ticket_ids(body: bytes) -> list[str]:
    """The ids in a trigger body (`{"ticket_id": …}`) or an event body (`detail.id`)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
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
        raise WebhookRejected("ticket id is not a positive integer", status=400)
    return [tid]
