"""Ids the bridge mints: opaque, unique, URL-safe (DESIGN.md invariant 2)."""

from __future__ import annotations

import random
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
    return f"e_{int(time.time() * 1000):x}{unique_hex(40)}"


def unique_hex(bits: int) -> str:
    """`bits` random bits as hex digits: unique, not secret (event and pump ids, leases).

    Drawn from the process's random generator, which Python reseeds from the OS in every
    forked child. `secrets` reads the OS on every call, and that read lets go of the GIL:
    under load, a thread switch the ingress paid twice per request.
    """
    return f"{random.getrandbits(bits):0{bits // 4}x}"
