"""Zendesk Support as the bridge's helpdesk (HELPDESK=zendesk); see docs/zendesk.md."""

from workers.adapters.zendesk.adapter import ZendeskHelpdesk

__all__ = ["ZendeskHelpdesk"]
