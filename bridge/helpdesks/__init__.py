"""Helpdesk adapters, discovered through the `hitl_bridge.helpdesks` entry-point group."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from bridge.errors import ConfigError
from bridge.helpdesks.base import Helpdesk
from bridge.logs import problem_lines

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.storage import Store

GROUP = "hitl_bridge.helpdesks"
# Built-ins resolve even when the package is not installed (running from a checkout).
BUILTIN = {
    "inbox": "bridge.helpdesks.inbox:InboxHelpdesk",
    "zendesk": "bridge.helpdesks.zendesk:ZendeskHelpdesk",
    "freshdesk": "bridge.helpdesks.freshdesk:FreshdeskHelpdesk",
    "chatwoot": "bridge.helpdesks.chatwoot:ChatwootHelpdesk",
}


def available() -> dict[str, str]:
    """Adapter name -> "module:Class", plug-ins included."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def adapter_class(name: str) -> type[Helpdesk]:
    target = available().get(name)
    if target is None:
        names = ", ".join(sorted(available()))
        raise ConfigError([f"HELPDESK={name!r} is not a known helpdesk (available: {names})"])
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Helpdesk)):
        raise ConfigError([f"{target} is not a Helpdesk adapter"])
    return cls


def validated_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings with the chosen helpdesk's variables checked too; ConfigError lists all problems."""
    from bridge.config import Settings

    settings = Settings.from_env(environ)
    problems = adapter_class(settings.helpdesk).config_problems(settings.environ)
    if problems:
        raise ConfigError(problems)
    return settings


def settings_or_exit(*, json_lines: bool = False) -> Settings:
    """For a process starting up: valid settings, or one line per problem (JSON log lines
    with `json_lines`, for the Procfile's processes) and exit code 2."""
    try:
        return validated_settings()
    except ConfigError as exc:
        for line in problem_lines(exc.problems, os.environ, as_json=json_lines):
            print(line, file=sys.stderr)
        raise SystemExit(2) from None


def load(settings: Settings, store: Store) -> Helpdesk:
    """The configured adapter, its environment validated."""
    cls = adapter_class(settings.helpdesk)
    problems = cls.config_problems(settings.environ)
    if problems:
        raise ConfigError(problems)
    return cls(settings, store)
