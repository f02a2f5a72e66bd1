"""Where the helpdesk adapters lived before issue 18: they are in bridge/helpdesks now.

Kept so code written against the old paths still imports (a third-party adapter's
`from workers.adapters.base import Helpdesk`, an entry point naming
`workers.adapters.zendesk:ZendeskHelpdesk`). New code imports bridge.helpdesks.
"""

from __future__ import annotations

import importlib
import sys

from bridge.helpdesks import (
    BUILTIN,
    GROUP,
    adapter_class,
    available,
    load,
    settings_or_exit,
    validated_settings,
)

__all__ = [
    "BUILTIN",
    "GROUP",
    "adapter_class",
    "available",
    "load",
    "settings_or_exit",
    "validated_settings",
]

# The old submodule paths name the new modules themselves (one class, one registry).
for _name in ("base", "inbox", "zendesk"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"bridge.helpdesks.{_name}")
