"""Agents' attachments on accounts with private attachments, served to end users at signed,
expiring links under PUBLIC_BASE_URL and relayed from Zendesk with the bridge's credentials.

A link is `<PUBLIC_BASE_URL>/files/<attachment id>.<expiry>.<signature>`: the signature
(HMAC-SHA256 over the id and the expiry, keyed from BRIDGE_SECRET) makes it a capability
for that one attachment until then. Nothing is stored: each request asks Zendesk for the
attachment (so a file deleted or flagged since is not served) and streams its bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from flask import Blueprint

from bridge.config import Settings
from bridge.errors import DeliveryError, PermanentError
from bridge.helpdesks import relay
from bridge.helpdesks.relay import RELAYS, Answer
from bridge.web.errors import error

if TYPE_CHECKING:
    from bridge.helpdesks.zendesk.adapter import ZendeskHelpdesk

log = logging.getLogger(__name__)

PURPOSE = "zendesk-file"
__all__ = ["RELAYS", "attachment_id", "blueprint", "link"]


def link(settings: Settings, attachment_id: int, *, now: float, ttl: int) -> str:
    """The bridge's link to one attachment, working for `ttl` seconds from `now`."""
    return relay.link(settings, PURPOSE, [attachment_id], now=now, ttl=ttl)


def attachment_id(settings: Settings, token: str, *, now: float) -> int:
    """The attachment a link's token names; relay.LinkRefused when forged or expired."""
    return relay.named(settings, PURPOSE, token, 1, now=now)[0]


def blueprint(helpdesk: ZendeskHelpdesk) -> Blueprint:
    """GET /files/<token>: the attachment a link names, streamed from Zendesk."""

    def check(token: str) -> list[int]:
        return relay.named(helpdesk.settings, PURPOSE, token, 1, now=time.time())

    def send(ids: list[int], token: str, slots: threading.BoundedSemaphore) -> Answer:
        return _relay(helpdesk, ids[0], helpdesk.config.max_attachment_bytes, slots, token)

    return relay.blueprint("zendesk_files", check, send)


def _relay(
    helpdesk: ZendeskHelpdesk, aid: int, cap: int, slots: threading.BoundedSemaphore, token: str
) -> Answer:
    """The answer for attachment `aid`: an error, or the file, which releases the slot
    once it has been sent."""
    tag = relay.hashed(token)
    client = helpdesk.client
    end = time.monotonic() + helpdesk.config.file_deadline
    try:
        found = client.call("GET", f"/api/v2/attachments/{aid}", what="Zendesk show attachment")
        att = found.get("attachment")
        if not isinstance(att, dict) or not att.get("content_url"):
            return error(404, "no such file", None)
        if att.get("deleted") or att.get("malware_scan_result") == "malware_found":
            return error(410, "this file is no longer available", None)
        size = att.get("size")
        if isinstance(size, int) and size > cap:
            return error(502, "file too large", f"the bridge relays files up to {cap} bytes")
        got = client.open_file(str(att.get("content_url") or ""), what="Zendesk attachment")
    except DeliveryError as exc:
        if isinstance(exc, PermanentError) and exc.status in (403, 404):
            return error(404, "no such file", None)
        log.warning("zendesk: file %s not relayed (%s)", tag, exc.reason)
        return error(502, "Zendesk did not hand over the file", "try again later")
    length = got.headers.get("Content-Length", "").strip()
    if length.isdigit() and int(length) > cap:
        got.close()
        return error(502, "file too large", f"the bridge relays files up to {cap} bytes")
    kind = got.headers.get("Content-Type") or str(att.get("content_type") or "")
    kind = kind or "application/octet-stream"
    name = str(att.get("file_name") or "file")
    return relay.stream(
        got, slots, kind=kind, name=name, cap=cap, end=end, label=f"zendesk: file {tag}"
    )
