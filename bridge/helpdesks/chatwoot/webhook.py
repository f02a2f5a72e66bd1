"""Verification of the webhook requests Chatwoot sends, and the conversation ids they name.

Every webhook the bridge registers carries a secret token in its URL
(`/webhooks/chatwoot/<token>`), compared in constant time. Chatwoot versions that sign
their deliveries also send `X-Chatwoot-Timestamp` and `X-Chatwoot-Signature` (`sha256=`
and the hex HMAC-SHA256 of `{timestamp}.{raw body}` with the webhook's secret): when the
bridge knows that secret, the signature is required too, within a 5-minute window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from bridge.errors import WebhookRejected
from bridge.helpdesks import inbound

SIGNATURE = "X-Chatwoot-Signature"
TIMESTAMP = "X-Chatwoot-Timestamp"
DELIVERY = "X-Chatwoot-Delivery"
MAX_SKEW = 300.0
#: What the bridge marks its own messages with, in their `content_attributes`.
MARKER = "hitl_bridge"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, as Chatwoot signs."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def check_signature(headers: Mapping[str, str], body: bytes, *, secret: str, now: float) -> None:
    """A signature by `secret` over the timestamp and body, the timestamp fresh."""
    signature, timestamp = inbound.header(headers, SIGNATURE), inbound.header(headers, TIMESTAMP)
    if not signature or not timestamp:
        raise WebhookRejected(f"missing {SIGNATURE} or {TIMESTAMP}", status=401)
    if not hmac.compare_digest(signature.encode(), sign(secret, timestamp, body).encode()):
        raise WebhookRejected("bad signature", status=401)
    # Epoch seconds only: anything else (NaN, a date) would pass or break the window.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookRejected(f"unreadable {TIMESTAMP}", status=401)
    if abs(now - int(timestamp)) > MAX_SKEW:
        raise WebhookRejected("timestamp outside the 5-minute window", status=401)


def conversation_ids(body: bytes, *, account_id: int) -> list[str]:
    """The conversation a webhook body is about, when it may be news to the bridge.

    Message events name it in `conversation.id`, conversation events in `id` (both the
    conversation's number in the account). An event of another account, or a message
    that cannot be an agent's public reply (the contact's, a private note, an activity
    line, or one the bridge marked as its own), rings nothing: a doorbell per message
    the bridge writes would cost two reads each.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON", status=400) from exc
    if not isinstance(data, dict):
        raise WebhookRejected("body is not a JSON object", status=400)
    event = data.get("event")
    if not isinstance(event, str) or not event:
        raise WebhookRejected("body names no event", status=400)
    account = data.get("account")
    if (
        isinstance(account, dict)
        and "id" in account
        and inbound.positive_id(account["id"], bits=31) != str(account_id)
    ):
        return []
    if event.startswith("message_"):
        conv = data.get("conversation")
        if not isinstance(conv, dict) or "id" not in conv:
            raise WebhookRejected("message event names no conversation.id", status=400)
        cid = inbound.positive_id(conv["id"], bits=31)
        attrs = data.get("content_attributes")
        mine = isinstance(attrs, dict) and MARKER in attrs
        if (
            data.get("private") is True
            or mine
            or data.get("message_type")
            in (
                "incoming",
                "activity",
                0,
                2,
            )
        ):
            return []
    elif event.startswith("conversation_"):
        if "id" not in data:
            raise WebhookRejected("conversation event names no id", status=400)
        cid = inbound.positive_id(data["id"], bits=31)
    else:
        return []  # contact and typing events: nothing an agent said
    if cid is None:
        raise WebhookRejected("conversation id is not a positive integer", status=400)
    return [cid]


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The id Chatwoot gives one delivery, when it sends one."""
    value = inbound.header(headers, DELIVERY)
    return value if 0 < len(value) <= 128 and value.isascii() and value.isprintable() else None
