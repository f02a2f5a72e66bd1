"""Ids the bridge mints: opaque, unique, URL-safe (DESIGN.md invariant 2)."""

from __future__ import annotations

import secrets
import time


def mint(kind: str) -> str:
    """A new id such as `c_Jx3...`: a one-letter kind, then 96 random bits."""
    return f"{kind}_{secrets.token_urlsafe(12)}"


def user_id() -> str:
    return mint("u")


def conversation_id() -> str:
    return mint("c")


def event_id() -> str:
    """Event ids sort by creation time (ms), which makes logs and dead letters readable."""
    return f"e_{int(time.time() * 1000):x}{secrets.token_hex(5)}"
