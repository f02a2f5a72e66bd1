"""Flask blueprints, one per concern, and the accessor for the process's Runtime."""

from __future__ import annotations

from typing import cast

from flask import current_app

from bridge.runtime import Runtime

EXTENSION = "hitl_bridge"


def runtime() -> Runtime:
    """The Runtime the app factory attached to the current app."""
    return cast(Runtime, current_app.extensions[EXTENSION])
