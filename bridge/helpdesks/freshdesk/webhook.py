"""The automation rule's webhook: a secret token in its URL, and the ticket ids its body names.

Freshdesk's automation rules cannot sign a webhook ("Trigger webhook" takes a URL, headers
and an optional basic-auth user; support.freshdesk.com, "Using Webhooks in automation
rules"), so the rule posts to `PUBLIC_BASE_URL/webhooks/freshdesk/<token>` and the token is
compared in constant time. The token is FRESHDESK_WEBHOOK_TOKEN, or derived from
BRIDGE_SECRET (the one of BRIDGE_SECRET_PREVIOUS too, during a rotation).
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

from bridge.config import Settings, signing_key
from bridge.errors import WebhookRejected

PURPOSE = "freshdesk-webhook"
#: Freshdesk ticket ids are positive 64-bit integers.
_MAX_ID_DIGITS = 19
MAX_IDS = 100


def derived_token(secret: str) -> str:
    """The webhook token derived from a BRIDGE_SECRET: it names no secret, and a token
    seen in Freshdesk's rule cannot be turned back into BRIDGE_SECRET."""
    mac = hmac.new(signing_key(secret, PURPOSE), b"freshdesk webhook token", "sha256").digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def expected_tokens(settings: Settings, configured: str) -> list[str]:
    """Tokens a genuine webhook may carry: the configured one alone, else the derived ones."""
    if configured:
        return [configured]
    secrets = [settings.bridge_secret, settings.bridge_secret_previous]
    return [derived_token(s) for s in secrets if s]


def verify(url_token: str | None, body: bytes, *, tokens: list[str]) -> list[str]:
    """Check the URL's token; return the ticket ids the body names (as strings)."""
    if not url_token:
        raise WebhookRejected(
            "the Freshdesk webhook URL needs its token: /webhooks/freshdesk/<token>", status=401
        )
    given = url_token.encode()
    # Every candidate compared, none skipped: the time taken says nothing about which.
    matched = [hmac.compare_digest(given, t.encode()) for t in tokens]
    if not any(matched):
        raise WebhookRejected("wrong webhook token", status=403)
    return ticket_ids(body)


def _ticket_id(value: Any) -> str | None:
    """A positive 64-bit id from a JSON number or a string of ASCII digits."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return str(value) if 0 < value < 2**63 else None


def ticket_ids(body: bytes) -> list[str]:
    """The ids in the rule's body: `{"ticket_id": …}` (what `freshdesk setup` prints),
    `{"ticket_ids": […]}`, or Freshdesk's simple mode, `{"freshdesk_webhook":
    {"ticket_id": …}}`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON", status=400) from exc
    if not isinstance(data, dict):
        raise WebhookRejected("body is not a JSON object", status=400)
    if isinstance(data.get("freshdesk_webhook"), dict):
        data = data["freshdesk_webhook"]
    if "ticket_id" in data:
        raw = [data["ticket_id"]]
    elif isinstance(data.get("ticket_ids"), list) and 0 < len(data["ticket_ids"]) <= MAX_IDS:
        raw = data["ticket_ids"]
    else:
        raise WebhookRejected("body names no ticket (ticket_id)", status=400)
    ids = [_ticket_id(v) for v in raw]
    if any(i is None for i in ids):
        raise WebhookRejected("ticket id is not a positive 64-bit integer", status=400)
    return list(dict.fromkeys(i for i in ids if i is not None))
