"""Agents' attachments served to end users at the bridge's own signed, expiring links.

Freshdesk gives a conversation's attachments as `attachment_url`, a pre-signed storage URL
that stops working after a short while (minutes), while an end user may open a chat's file
days later. With PUBLIC_BASE_URL set, the bridge sends
`<PUBLIC_BASE_URL>/files/<ticket id>.<attachment id>.<expiry>.<signature>` instead (HMAC-
SHA256 over ticket, attachment and expiry, keyed from BRIDGE_SECRET; links made before a
rotation work while BRIDGE_SECRET_PREVIOUS holds the old one). Nothing is stored: each
request reads the ticket's conversations for a fresh `attachment_url` of that attachment
(an agent's public entry's only) and streams its bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from flask import Blueprint

from bridge import http_client as http
from bridge.config import Settings
from bridge.errors import DeliveryError, PermanentError
from bridge.helpdesks import relay
from bridge.helpdesks.relay import Answer
from bridge.web.errors import error

if TYPE_CHECKING:
    from bridge.helpdesks.freshdesk.adapter import FreshdeskHelpdesk

log = logging.getLogger(__name__)

PURPOSE = "freshdesk-file"
#: How long relaying one file may take.
DEADLINE = 60.0


def link(settings: Settings, ticket_id: int, attachment_id: int, *, now: float, ttl: int) -> str:
    """The bridge's link to one attachment of a ticket, working for `ttl` seconds."""
    return relay.link(settings, PURPOSE, [ticket_id, attachment_id], now=now, ttl=ttl)


def blueprint(helpdesk: FreshdeskHelpdesk) -> Blueprint:
    """GET /files/<token>: the attachment a link names, streamed from Freshdesk's storage."""

    def check(token: str) -> list[int]:
        return relay.named(helpdesk.settings, PURPOSE, token, 2, now=time.time())

    def send(ids: list[int], token: str, slots: threading.BoundedSemaphore) -> Answer:
        return _relay(helpdesk, ids[0], ids[1], slots)

    return relay.blueprint("freshdesk_files", check, send)


def _relay(
    helpdesk: FreshdeskHelpdesk, tid: int, aid: int, slots: threading.BoundedSemaphore
) -> Answer:
    """The answer for attachment `aid` of ticket `tid`: an error, or the file, which
    releases the slot once sent."""
    cap = helpdesk.config.max_attachment_bytes
    end = time.monotonic() + DEADLINE
    try:
        att = helpdesk.agent_attachment(str(tid), aid)
        if att is None:
            return error(404, "no such file", None)
        size = att.get("size")
        if isinstance(size, int) and size > cap:
            return error(502, "file too large", f"the bridge relays files up to {cap} bytes")
        try:
            # A pre-signed URL: its signature is the credential, the API key never goes.
            got = helpdesk.client.http.stream(
                str(att["attachment_url"]), timeout=helpdesk.client.timeout, credentials=False
            )
        except http.TransportError as exc:
            log.warning("freshdesk: file %s of ticket %s not relayed (%s)", aid, tid, exc)
            return error(502, "Freshdesk did not hand over the file", "try again later")
    except DeliveryError as exc:
        if isinstance(exc, PermanentError) and exc.status in (403, 404):
            return error(404, "no such file", None)
        log.warning("freshdesk: file %s of ticket %s not relayed (%s)", aid, tid, exc.reason)
        return error(502, "Freshdesk did not hand over the file", "try again later")
    length = got.headers.get("Content-Length", "").strip()
    if got.status_code != 200 or (length.isdigit() and int(length) > cap):
        got.close()
        return error(502, "Freshdesk did not hand over the file", "try again later")
    kind = str(att.get("content_type") or "") or got.headers.get("Content-Type") or ""
    kind = kind or "application/octet-stream"
    name = str(att.get("name") or "file")
    label = f"freshdesk: file {aid} of ticket {tid}"
    return relay.stream(got, slots, kind=kind, name=name, cap=cap, end=end, label=label)
