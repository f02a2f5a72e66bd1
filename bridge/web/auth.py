"""Bearer-token guard for the operator and agent APIs (ADMIN_TOKEN)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import request

from bridge.web import runtime
from bridge.web.errors import error

F = TypeVar("F", bound=Callable[..., Any])


def require_admin(view: F) -> F:
    """404 when ADMIN_TOKEN is unset (the API does not exist), 401 without the right token."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = runtime().settings.admin_token
        if not token:
            return error(404, "not found", "set ADMIN_TOKEN to enable this API")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            resp, status = error(401, "unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>")
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp, status
        return view(*args, **kwargs)

    return cast(F, guarded)
