"""Zendesk Support as the bridge's helpdesk (HELPDESK=zendesk); see docs/zendesk.md."""

from bridge.helpdesks.zendesk.adapter import ZendeskHelpdesk

__all__ = ["ZendeskHelpdesk"]
