"""Bearer-token guard for the operator and agent APIs (ADMIN_TOKEN), with failed attempts
throttled per client address so the token cannot be guessed at line speed."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, request

from bridge.web import runtime
from bridge.web.errors import error

F = TypeVar("F", bound=Callable[..., Any])

#: Failed credential attempts a client address may make per window before it gets 429s.
MAX_FAILURES = 20
WINDOW_SECONDS = 60


def client_address() -> str:
    """Who is knocking: the peer's address, or the one the trusted proxies saw (PROXY_HOPS,
    applied by the app factory)."""
    return request.remote_addr or "unknown"


def throttled(scope: str) -> tuple[Response, int] | None:
    """A 429 when the client spent its failed attempts for this window, else None."""
    count, left = runtime().store.failures(scope, client_address())
    if count < MAX_FAILURES:
        return None
    resp, status = error(
        429,
        "too many failed attempts",
        f"{count} failed attempts from this address; try again in {left or WINDOW_SECONDS}s",
    )
    resp.headers["Retry-After"] = str(left or WINDOW_SECONDS)
    return resp, status


def failed(scope: str) -> None:
    """Count one failed attempt of this client."""
    runtime().store.count_failure(scope, client_address(), WINDOW_SECONDS)


def require_admin(view: F) -> F:
    """404 when ADMIN_TOKEN is unset (the API does not exist), 401 without the right token,
    429 (with Retry-After) once a client address failed MAX_FAILURES times in a minute."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = runtime().settings.admin_token
        if not token:
            return error(404, "not found", "set ADMIN_TOKEN to enable this API")
        # Checked before the token: a client over the limit learns nothing from its guess.
        refused = throttled("bearer")
        if refused is not None:
            return refused
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            failed("bearer")
            resp, status = error(401, "unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>")
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp, status
        return view(*args, **kwargs)

    return cast(F, guarded)
