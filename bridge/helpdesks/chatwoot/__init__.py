"""Chatwoot as the bridge's helpdesk (HELPDESK=chatwoot); see docs/chatwoot.md."""

from bridge.helpdesks.chatwoot.adapter import ChatwootHelpdesk

__all__ = ["ChatwootHelpdesk"]
