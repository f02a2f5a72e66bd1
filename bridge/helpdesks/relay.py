"""Agents' files served to end users at the bridge's own signed, expiring links.

Used by helpdesks whose attachment URLs an end user cannot open later (Zendesk's private
attachments need credentials; Freshdesk's pre-signed URLs die in minutes). A link is
`<PUBLIC_BASE_URL>/files/<id>[.<id>...].<expiry>.<signature>`: the signature (HMAC-SHA256
over the ids and the expiry, keyed from BRIDGE_SECRET for one purpose) makes it a
capability for that one file until then; links made before a rotation work while
BRIDGE_SECRET_PREVIOUS holds the old secret. Nothing is stored: each request asks the
helpdesk for the file again and streams its bytes, within a size cap and a deadline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote

from flask import Blueprint, Response

from bridge import http_client as http
from bridge.config import Settings, signing_key
from bridge.web.errors import error

log = logging.getLogger(__name__)

#: Types a browser shows rather than downloads; anything else (SVG too: it can run
#: script) goes with Content-Disposition: attachment.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: Files relayed at once per web process: each holds one of its few threads.
RELAYS = 2
CHUNK = 64 * 1024

Answer = tuple[Response, int] | Response


class LinkRefused(Exception):
    """A link that names no file (404) or whose time is over (410)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _sign(purpose: str, ids: Sequence[int], expires: int, secret: str) -> str:
    text = ".".join(str(i) for i in (*ids, expires)).encode()
    mac = hmac.new(signing_key(secret, purpose), text, "sha256")
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def link(settings: Settings, purpose: str, ids: Sequence[int], *, now: float, ttl: int) -> str:
    """The bridge's link to the file `ids` name, working for `ttl` seconds from `now`."""
    expires = int(now) + ttl
    sig = _sign(purpose, ids, expires, settings.bridge_secret)
    token = ".".join(str(i) for i in (*ids, expires)) + f".{sig}"
    return f"{settings.public_base_url}/files/{token}"


def named(settings: Settings, purpose: str, token: str, count: int, *, now: float) -> list[int]:
    """The `count` ids a link's token names; LinkRefused when forged, altered or expired."""
    pattern = r"\.".join(
        [r"([1-9][0-9]{0,19})"] * count + [r"([0-9]{1,12})", r"([A-Za-z0-9_-]{43})"]
    )
    m = re.fullmatch(pattern, token)
    if m is None:
        raise LinkRefused(404, "no such file")
    *ids, expires = (int(g) for g in m.groups()[:-1])
    sig = m.groups()[-1]
    keys = [settings.bridge_secret, settings.bridge_secret_previous]
    if not any(k and hmac.compare_digest(sig, _sign(purpose, ids, expires, k)) for k in keys):
        raise LinkRefused(404, "no such file")
    if expires <= now:
        raise LinkRefused(410, "this link has expired: ask the agent to send the file again")
    return ids


def hashed(token: str) -> str:
    """A token as logs may show it: enough to match lines up, never enough to use."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def blueprint(
    name: str,
    check: Callable[[str], list[int]],
    relay: Callable[[list[int], str, threading.BoundedSemaphore], Answer],
) -> Blueprint:
    """GET /files/<token>: `check(token)` gives the ids a link names (or raises
    LinkRefused), before any slot is taken; `relay(ids, token, slot)` answers with an error
    or the file. At most RELAYS files go out at once; a file frees its slot once sent."""
    bp = Blueprint(name, __name__)
    slots = threading.BoundedSemaphore(RELAYS)

    @bp.get("/files/<token>")
    def serve(token: str) -> Answer:
        try:
            ids = check(token)
        except LinkRefused as exc:
            return error(exc.status, exc.message, None)
        if not slots.acquire(blocking=False):
            resp, status = error(503, "busy", "too many files are being sent; try again")
            resp.headers["Retry-After"] = "5"
            return resp, status
        try:
            answer = relay(ids, token, slots)
        except BaseException:
            slots.release()
            raise
        if isinstance(answer, tuple):  # an error: nothing is being sent
            slots.release()
        return answer

    return bp


def disposition(kind: str, name: str) -> str:
    how = "inline" if kind in INLINE_TYPES else "attachment"
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"{how}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def stream(
    got: http.Streamed,
    slots: threading.BoundedSemaphore,
    *,
    kind: str,
    name: str,
    cap: int,
    end: float,
    label: str,
) -> Response:
    """The file `got` is reading, sent on as it arrives: cut short past `cap` bytes or the
    monotonic deadline `end`, shown inline only for harmless pictures, never sniffed nor
    run. `label` names it in the logs."""
    length = got.headers.get("Content-Length", "").strip()
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
                    log.warning("%s cut off (%s)", label, why)
                    return
                yield chunk
        except http.TransportError as exc:
            log.warning("%s cut off (%s)", label, exc)
        finally:
            finish()

    headers = {
        "Content-Disposition": disposition(kind.split(";")[0].strip().lower(), name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    if length.isdigit():
        headers["Content-Length"] = length
    resp = Response(body(), 200, headers=headers, content_type=kind)
    resp.call_on_close(finish)
    return resp
