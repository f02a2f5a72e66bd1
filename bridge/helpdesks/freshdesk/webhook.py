"""The automation rule's webhook: a secret token in its URL, and the ticket ids its body names.

Freshdesk's automation rules cannot sign a webhook ("Trigger webhook" takes a URL, headers
and an optional basic-auth user; support.freshdesk.com, "Using Webhooks in automation
rules"), so the rule posts to `PUBLIC_BASE_URL/webhooks/freshdesk/<token>` and the token is
compared in constant time. The token is FRESHDESK_WEBHOOK_TOKEN, or derived from
BRIDGE_SECRET (the one of BRIDGE_SECRET_PREVIOUS too, during a rotation).
"""

from __future__ import annotations

import json

from bridge.config import Settings
from bridge.errors import WebhookRejected
from bridge.helpdesks import inbound

#: Freshdesk ticket ids are positive 64-bit integers.
MAX_IDS = 100


def derived_token(secret: str) -> str:
    """The webhook token derived from a BRIDGE_SECRET (bridge/helpdesks/inbound.py)."""
    return inbound.derived_url_token(secret, "freshdesk")


def expected_tokens(settings: Settings, configured: str) -> list[str]:
    """Tokens a genuine webhook may carry: the configured one alone, else the derived ones."""
    return inbound.url_tokens(settings, "freshdesk", configured)


def verify(url_token: str | None, body: bytes, *, tokens: list[str]) -> list[str]:
    """Check the URL's token; return the ticket ids the body names (as strings)."""
    inbound.check_url_token(url_token, tokens, "freshdesk")
    return ticket_ids(body)


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
    ids = [inbound.positive_id(v) for v in raw]
    if any(i is None for i in ids):
        raise WebhookRejected("ticket id is not a positive 64-bit integer", status=400)
    return list(dict.fromkeys(i for i in ids if i is not None))
