"""Freshdesk as the bridge's helpdesk (HELPDESK=freshdesk); see docs/freshdesk.md."""

from bridge.helpdesks.freshdesk.adapter import FreshdeskHelpdesk

__all__ = ["FreshdeskHelpdesk"]
