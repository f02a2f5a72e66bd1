"""Reading a helpdesk's webhook: its headers, the ids in its body, its secret URL token.

Helpdesks that cannot sign their webhooks (Freshdesk's automation rules, older Chatwoot)
post to `/webhooks/<helpdesk>/<token>`. The token is the helpdesk's own setting when one
is given, else derived from BRIDGE_SECRET (so the web and a `setup` command agree on it
without storing it, and a token seen in the helpdesk's settings gives BRIDGE_SECRET away
to no one); during a rotation, the one derived from BRIDGE_SECRET_PREVIOUS works too.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any

from bridge.config import Settings, signing_key
from bridge.errors import WebhookRejected


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, whatever the case of its name ('' when absent)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


def positive_id(value: Any, *, bits: int = 63) -> str | None:
    """A positive id below 2**bits from a JSON number or a string of ASCII digits (`"²"` is a
    digit to str.isdigit, and int() refuses it); None for anything else."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= len(str(2**bits))):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return str(value) if 0 < value < 2**bits else None


def derived_url_token(bridge_secret: str, helpdesk: str) -> str:
    """The URL token derived from a BRIDGE_SECRET for one helpdesk."""
    key = signing_key(bridge_secret, f"{helpdesk} webhook url")
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def url_tokens(settings: Settings, helpdesk: str, configured: str) -> list[str]:
    """The tokens a genuine webhook may carry, the one to register first: the configured
    one alone, else those derived from the current and the previous BRIDGE_SECRET."""
    if configured:
        return [configured]
    secrets = [settings.bridge_secret, settings.bridge_secret_previous]
    return [derived_url_token(s, helpdesk) for s in secrets if s]


def check_url_token(url_token: str | None, tokens: list[str], helpdesk: str) -> None:
    """WebhookRejected unless the URL's token is one of `tokens` (401 when there is none,
    403 when it is wrong). Every candidate is compared, in constant time: the time taken
    says nothing about which came close."""
    if not url_token:
        raise WebhookRejected(
            f"the {helpdesk} webhook URL needs its token: /webhooks/{helpdesk}/<token>",
            status=401,
        )
    given = url_token.encode()
    if not any([hmac.compare_digest(given, t.encode()) for t in tokens]):
        raise WebhookRejected("wrong secret token in the webhook URL", status=403)
