"""Console sign-in: a signed session cookie per agent, and CSRF tokens for every change.

The cookie (Flask's signed session, keyed by a key derived from BRIDGE_SECRET) holds the
agent's name, the version of their password (agents.py: a password change ends every
session it granted), and the session's CSRF token. It is HttpOnly and SameSite=Lax, and
Secure whenever the request came over https (behind a proxy: PROXY_HOPS). It lasts
SESSION_HOURS; signing out drops it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSessionInterface

from bridge.config import Settings

SESSION_HOURS = 12
COOKIE = "hitl_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, Secure exactly when the request was https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request.is_secure)

    def should_set_cookie(self, app: Flask, session: Any) -> bool:
        # Open consoles ask /console/live twice a second: signing the cookie anew for each
        # answer would cost more than the answer. The other requests renew it.
        if request.path == "/console/live" and not session.modified:
            return False
        return bool(super().should_set_cookie(app, session))


def _key(secret: str) -> str:
    # Its own key, not BRIDGE_SECRET itself: a cookie signature says nothing about the path secret.
    return hmac.new(secret.encode(), b"hitl-bridge console session", hashlib.sha256).hexdigest()


def configure(app: Flask, settings: Settings) -> None:
    """Give the app the console's session cookie."""
    app.secret_key = _key(settings.bridge_secret)
    if settings.bridge_secret_previous:
        # Sessions signed before a rotation stay valid until they expire.
        app.config["SECRET_KEY_FALLBACKS"] = [_key(settings.bridge_secret_previous)]
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.session_interface = ConsoleSessions()


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session[CSRF_FIELD] = token
        session.permanent = True
    return token


def csrf_ok(req: Request) -> bool:
    """Whether a state-changing request carries this session's token (form field or header)
    and, when the browser says where it came from, came from this origin."""
    expected = session.get(CSRF_FIELD)
    given = req.headers.get(CSRF_HEADER) or req.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not given:
        return False
    origin = req.headers.get("Origin")
    # The host only: behind a proxy that terminates TLS the scheme may differ.
    if origin and urlparse(origin).netloc != req.host:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def sign_in(name: str, version: int) -> None:
    """Start a fresh session for the agent (a new CSRF token too: no fixation)."""
    session.clear()
    session.permanent = True
    session["agent"] = name
    session["v"] = version
    session[CSRF_FIELD] = secrets.token_urlsafe(24)


def sign_out() -> None:
    session.clear()


def claimed() -> tuple[str, int] | None:
    """The agent and password version the cookie names (checked against the agents by
    the caller), None without a session."""
    name: Any = session.get("agent")
    version: Any = session.get("v")
    if isinstance(name, str) and isinstance(version, int):
        return name, version
    return None
