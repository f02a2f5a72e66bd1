"""Agents' attachments on accounts with private attachments, served to end users at signed,
expiring links under PUBLIC_BASE_URL and relayed from Zendesk with the bridge's credentials.

A link is `<PUBLIC_BASE_URL>/files/<attachment id>.<expiry>.<signature>`: the signature
(HMAC-SHA256 over the id and the expiry, keyed from BRIDGE_SECRET) makes it a capability
for that one attachment until then. Nothing is stored: each request asks Zendesk for the
attachment (so a file deleted or flagged since is not served) and streams its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from flask import Blueprint, Response

from bridge import http_client as http
from bridge.config import Settings, signing_key
from bridge.errors import DeliveryError, PermanentError
from bridge.web.errors import error

if TYPE_CHECKING:
    from bridge.helpdesks.zendesk.adapter import ZendeskHelpdesk

log = logging.getLogger(__name__)

PURPOSE = "zendesk-file"
_TOKEN_RE = re.compile(r"([1-9][0-9]{0,19})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
#: Types a browser shows rather than downloads; anything else (SVG too: it can run
#: script) goes with Content-Disposition: attachment.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: Files relayed at once per web process: each holds one of its few threads.
RELAYS = 2
CHUNK = 64 * 1024


class LinkRefused(Exception):
    """A link that names no attachment (404) or whose time is over (410)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _sign(attachment_id: int, expires: int, secret: str) -> str:
    mac = hmac.new(signing_key(secret, PURPOSE), f"{attachment_id}.{expires}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def link(settings: Settings, attachment_id: int, *, now: float, ttl: int) -> str:
    """The bridge's link to one attachment, working for `ttl` seconds from `now`."""
    expires = int(now) + ttl
    token = f"{attachment_id}.{expires}.{_sign(attachment_id, expires, settings.bridge_secret)}"
    return f"{settings.public_base_url}/files/{token}"


def attachment_id(settings: Settings, token: str, *, now: float) -> int:
    """The attachment a link's token names; LinkRefused when forged, altered or expired."""
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        raise LinkRefused(404, "no such file")
    aid, expires, sig = int(m.group(1)), int(m.group(2)), m.group(3)
    keys = [settings.bridge_secret, settings.bridge_secret_previous]
    if not any(k and hmac.compare_digest(sig, _sign(aid, expires, k)) for k in keys):
        raise LinkRefused(404, "no such file")
    if expires <= now:
        raise LinkRefused(410, "this link has expired: ask the agent to send the file again")
    return aid


def _disposition(kind: str, name: str) -> str:
    how = "inline" if kind in INLINE_TYPES else "attachment"
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    return f"{how}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _hashed(token: str) -> str:
    """A token as logs may show it: enough to match lines up, never enough to use."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def blueprint(helpdesk: ZendeskHelpdesk) -> Blueprint:
    """GET /files/<token>: the attachment a link names, streamed from Zendesk."""
    bp = Blueprint("zendesk_files", __name__)
    slots = threading.BoundedSemaphore(RELAYS)
    cap = helpdesk.config.max_attachment_bytes

    @bp.get("/files/<token>")
    def serve(token: str) -> tuple[Response, int] | Response:
        try:
            aid = attachment_id(helpdesk.settings, token, now=time.time())
        except LinkRefused as exc:
            return error(exc.status, exc.message, None)
        if not slots.acquire(blocking=False):
            resp, status = error(503, "busy", "too many files are being sent; try again")
            resp.headers["Retry-After"] = "5"
            return resp, status
        try:
            answer = _relay(helpdesk, aid, cap, slots, _hashed(token))
        except BaseException:
            slots.release()
            raise
        if isinstance(answer, tuple):  # an error: nothing is being sent
            slots.release()
        return answer

    return bp


def _relay(
    helpdesk: ZendeskHelpdesk, aid: int, cap: int, slots: threading.BoundedSemaphore, tag: str
) -> tuple[Response, int] | Response:
    """The answer for attachment `aid`: an error, or the file, which releases the slot
    once it has been sent."""
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

    finished = threading.Lock()

    def finish() -> None:
        # Called when the server closes the answer, read to the end or not (a HEAD request,
        # a client that went away): exactly once.
        if finished.acquire(blocking=False):
            got.close()
            slots.release()

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            while chunk := got.read(CHUNK):
                sent += len(chunk)
                if sent > cap or time.monotonic() > end:
                    # Cut short: the client sees a body shorter than announced.
                    why = "over the size cap" if sent > cap else "over the deadline"
                    log.warning("zendesk: file %s cut off (%s)", tag, why)
                    return
                yield chunk
        except http.TransportError as exc:
            log.warning("zendesk: file %s cut off (%s)", tag, exc)
        finally:
            finish()

    headers = {
        "Content-Disposition": _disposition(kind.split(";")[0].strip().lower(), name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    if length.isdigit():
        headers["Content-Length"] = length
    resp = Response(body(), 200, headers=headers, content_type=kind)
    resp.call_on_close(finish)
    return resp
