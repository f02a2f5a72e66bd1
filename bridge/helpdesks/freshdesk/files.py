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

import base64
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
    from bridge.helpdesks.freshdesk.adapter import FreshdeskHelpdesk

log = logging.getLogger(__name__)

PURPOSE = "freshdesk-file"
_TOKEN_RE = re.compile(
    r"([1-9][0-9]{0,19})\.([1-9][0-9]{0,19})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})"
)
#: Types a browser shows rather than downloads (SVG can run script: downloaded).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: Files relayed at once per web process: each holds one of its few threads.
RELAYS = 2
CHUNK = 64 * 1024
#: How long relaying one file may take.
DEADLINE = 60.0


class LinkRefused(Exception):
    """A link that names no attachment (404) or whose time is over (410)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _sign(ticket_id: int, attachment_id: int, expires: int, secret: str) -> str:
    text = f"{ticket_id}.{attachment_id}.{expires}".encode()
    mac = hmac.new(signing_key(secret, PURPOSE), text, "sha256")
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def link(settings: Settings, ticket_id: int, attachment_id: int, *, now: float, ttl: int) -> str:
    """The bridge's link to one attachment of a ticket, working for `ttl` seconds."""
    expires = int(now) + ttl
    sig = _sign(ticket_id, attachment_id, expires, settings.bridge_secret)
    return f"{settings.public_base_url}/files/{ticket_id}.{attachment_id}.{expires}.{sig}"


def named(settings: Settings, token: str, *, now: float) -> tuple[int, int]:
    """The (ticket, attachment) a link's token names; LinkRefused when forged or expired."""
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        raise LinkRefused(404, "no such file")
    tid, aid, expires, sig = int(m[1]), int(m[2]), int(m[3]), m[4]
    keys = [settings.bridge_secret, settings.bridge_secret_previous]
    if not any(k and hmac.compare_digest(sig, _sign(tid, aid, expires, k)) for k in keys):
        raise LinkRefused(404, "no such file")
    if expires <= now:
        raise LinkRefused(410, "this link has expired: ask the agent to send the file again")
    return tid, aid


def _disposition(kind: str, name: str) -> str:
    how = "inline" if kind in INLINE_TYPES else "attachment"
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"{how}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def blueprint(helpdesk: FreshdeskHelpdesk) -> Blueprint:
    """GET /files/<token>: the attachment a link names, streamed from Freshdesk's storage."""
    bp = Blueprint("freshdesk_files", __name__)
    slots = threading.BoundedSemaphore(RELAYS)

    @bp.get("/files/<token>")
    def serve(token: str) -> tuple[Response, int] | Response:
        try:
            tid, aid = named(helpdesk.settings, token, now=time.time())
        except LinkRefused as exc:
            return error(exc.status, exc.message, None)
        if not slots.acquire(blocking=False):
            resp, status = error(503, "busy", "too many files are being sent; try again")
            resp.headers["Retry-After"] = "5"
            return resp, status
        try:
            answer = _relay(helpdesk, tid, aid, slots)
        except BaseException:
            slots.release()
            raise
        if isinstance(answer, tuple):  # an error: nothing is being sent
            slots.release()
        return answer

    return bp


def _relay(
    helpdesk: FreshdeskHelpdesk, tid: int, aid: int, slots: threading.BoundedSemaphore
) -> tuple[Response, int] | Response:
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
    finished = threading.Lock()

    def finish() -> None:
        # Called when the server closes the answer, read to the end or not: exactly once.
        if finished.acquire(blocking=False):
            got.close()
            slots.release()

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            while chunk := got.read(CHUNK):
                sent += len(chunk)
                if sent > cap or time.monotonic() > end:
                    log.warning("freshdesk: file %s cut off (over the size cap or deadline)", aid)
                    return
                yield chunk
        except http.TransportError as exc:
            log.warning("freshdesk: file %s cut off (%s)", aid, exc)
        finally:
            finish()

    headers = {
        "Content-Disposition": _disposition(
            kind.split(";")[0].strip().lower(), str(att.get("name") or "file")
        ),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    if length.isdigit():
        headers["Content-Length"] = length
    resp = Response(body(), 200, headers=headers, content_type=kind)
    resp.call_on_close(finish)
    return resp
